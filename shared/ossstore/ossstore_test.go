package ossstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	osscred "github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/osssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ossstore"
)

const (
	region = "cn-hangzhou"
	bucket = "hbr-ledger"
)

var (
	installer = callers.Principal{Name: "install", Credentials: cloudauth.Credentials{
		AccessKeyID: "STS.NTinstall", AccessKeySecret: "install-Secret/with+odd=chars", SecurityToken: "CAIS-install-token+/="}}
	poller = callers.Principal{Name: "poller", Credentials: cloudauth.Credentials{
		AccessKeyID: "LTAIpoller", AccessKeySecret: "poller-Secret"}}
	// secrets must never appear in an error text.
	secrets = []string{
		installer.Credentials.AccessKeySecret, installer.Credentials.SecurityToken,
		poller.Credentials.AccessKeySecret, "wrong-Secret", "wrong-token",
	}
)

type env struct {
	sim  *osssim.Server
	base string
}

func newEnv(t *testing.T, opts osssim.Options) env {
	t.Helper()
	opts.Principals = callers.Set{installer, poller}
	sim := osssim.New(opts)
	base, err := sim.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close() })
	sim.CreateBucket(bucket)
	return env{sim: sim, base: base}
}

// client builds a Client as a function invocation would.
func (e env) client(t *testing.T, cred cloudauth.Credentials, edit ...func(*ossstore.Config)) *ossstore.Client {
	t.Helper()
	cfg := ossstore.Config{Endpoint: e.base, Region: region, Bucket: bucket, Timeout: 5 * time.Second}
	for _, f := range edit {
		f(&cfg)
	}
	c, err := ossstore.New(cfg, cred)
	require.NoError(t, err)
	return c
}

// sdk is the raw SDK client, for what the adapter does not do (bucket
// settings, oversized objects).
func (e env) sdk() *oss.Client {
	c := installer.Credentials
	return oss.NewClient(oss.NewConfig().
		WithRegion(region).
		WithEndpoint(e.base).
		WithUsePathStyle(true).
		WithCredentialsProvider(osscred.NewStaticCredentialsProvider(c.AccessKeyID, c.AccessKeySecret, c.SecurityToken)))
}

// assertClassified checks the kind and code of err and that its text has no
// secret in it.
func assertClassified(t *testing.T, err error, kind fault.Kind, code string) {
	t.Helper()
	require.Error(t, err)
	assert.Equal(t, kind, fault.KindOf(err), "kind of %v", err)
	assert.Equal(t, code, fault.CodeOf(err), "code of %v", err)
	assertNoSecret(t, err)
}

func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	for _, s := range secrets {
		assert.NotContains(t, err.Error(), s)
		assert.NotContains(t, fmt.Sprintf("%+v", err), s)
	}
}

func TestNew(t *testing.T) {
	good := ossstore.Config{Region: region, Bucket: bucket}
	tests := []struct {
		name       string
		edit       func(*ossstore.Config)
		cred       cloudauth.Credentials
		scheme     string
		host       string
		wantFailed bool
	}{
		{name: "default endpoint", scheme: "https", host: "oss-cn-hangzhou.aliyuncs.com"},
		{name: "bare host", edit: func(c *ossstore.Config) { c.Endpoint = "oss-cn-hangzhou.aliyuncs.com" },
			scheme: "https", host: "oss-cn-hangzhou.aliyuncs.com"},
		{name: "internal host", edit: func(c *ossstore.Config) { c.Endpoint = "oss-cn-hangzhou-internal.aliyuncs.com" },
			scheme: "https", host: "oss-cn-hangzhou-internal.aliyuncs.com"},
		{name: "https URL", edit: func(c *ossstore.Config) { c.Endpoint = "https://oss-cn-hangzhou.aliyuncs.com/" },
			scheme: "https", host: "oss-cn-hangzhou.aliyuncs.com"},
		{name: "loopback http", edit: func(c *ossstore.Config) { c.Endpoint = "http://127.0.0.1:9000" },
			scheme: "http", host: "127.0.0.1:9000"},
		{name: "localhost http", edit: func(c *ossstore.Config) { c.Endpoint = "http://localhost:9000" },
			scheme: "http", host: "localhost:9000"},
		{name: "IPv6 loopback http", edit: func(c *ossstore.Config) { c.Endpoint = "http://[::1]:9000" },
			scheme: "http", host: "[::1]:9000"},
		{name: "http to the cloud", edit: func(c *ossstore.Config) { c.Endpoint = "http://oss-cn-hangzhou.aliyuncs.com" }, wantFailed: true},
		{name: "http to a private address", edit: func(c *ossstore.Config) { c.Endpoint = "http://10.0.0.1:80" }, wantFailed: true},
		{name: "other scheme", edit: func(c *ossstore.Config) { c.Endpoint = "ftp://oss-cn-hangzhou.aliyuncs.com" }, wantFailed: true},
		{name: "endpoint with a path", edit: func(c *ossstore.Config) { c.Endpoint = "https://oss-cn-hangzhou.aliyuncs.com/bucket" }, wantFailed: true},
		{name: "bad port", edit: func(c *ossstore.Config) { c.Endpoint = "oss-cn-hangzhou.aliyuncs.com:99999" }, wantFailed: true},
		{name: "bad host", edit: func(c *ossstore.Config) { c.Endpoint = "oss_cn.aliyuncs.com" }, wantFailed: true},
		{name: "no region", edit: func(c *ossstore.Config) { c.Region = "" }, wantFailed: true},
		{name: "bad region", edit: func(c *ossstore.Config) { c.Region = "CN Hangzhou" }, wantFailed: true},
		{name: "upper-case bucket", edit: func(c *ossstore.Config) { c.Bucket = "Ledger" }, wantFailed: true},
		{name: "short bucket", edit: func(c *ossstore.Config) { c.Bucket = "ab" }, wantFailed: true},
		{name: "bucket ending in '-'", edit: func(c *ossstore.Config) { c.Bucket = "ledger-" }, wantFailed: true},
		{name: "negative timeout", edit: func(c *ossstore.Config) { c.Timeout = -time.Second }, wantFailed: true},
		{name: "no secret", cred: cloudauth.Credentials{AccessKeyID: "LTAIx"}, wantFailed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			if tt.edit != nil {
				tt.edit(&cfg)
			}
			cred := tt.cred
			if cred == (cloudauth.Credentials{}) {
				cred = installer.Credentials
			}
			c, err := ossstore.New(cfg, cred)
			if tt.wantFailed {
				assertClassified(t, err, fault.Invalid, "")
				var fe *fault.Error
				require.ErrorAs(t, err, &fe)
				assert.Equal(t, "oss.New", fe.Op)
				return
			}
			require.NoError(t, err)
			scheme, host := c.Endpoint()
			assert.Equal(t, tt.scheme, scheme)
			assert.Equal(t, tt.host, host)
			assert.Equal(t, bucket, c.Bucket())
		})
	}
}

func TestCreateGetAndConflict(t *testing.T) {
	e := newEnv(t, osssim.Options{})
	store := e.client(t, installer.Credentials)
	ctx := context.Background()

	require.NoError(t, store.Create(ctx, "instances/i-1", []byte(`{"owner":"job-1"}`)))
	got, err := store.Get(ctx, "instances/i-1")
	require.NoError(t, err)
	assert.JSONEq(t, `{"owner":"job-1"}`, string(got))

	err = store.Create(ctx, "instances/i-1", []byte(`{"owner":"job-2"}`))
	assertClassified(t, err, fault.Permanent, "FileAlreadyExists")
	assert.ErrorIs(t, err, ledger.ErrExists)
	var apiErr *ossstore.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusConflict, apiErr.HTTPStatus)
	assert.Len(t, apiErr.RequestID, 24)
	var fe *fault.Error
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "oss.PutObject", fe.Op)

	got, err = store.Get(ctx, "instances/i-1")
	require.NoError(t, err)
	assert.JSONEq(t, `{"owner":"job-1"}`, string(got), "the losing create changed nothing")

	_, err = store.Get(ctx, "instances/i-2")
	assertClassified(t, err, fault.Permanent, "NoSuchKey")
	assert.ErrorIs(t, err, ledger.ErrNotFound)
	assert.NotErrorIs(t, err, ledger.ErrExists)
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "oss.GetObject", fe.Op)

	assert.Equal(t, map[string]int{"oss.PutObject": 2, "oss.GetObject": 3}, e.sim.Calls())
}

// Delete frees a key for the next create (the ledger releases an intent
// whose install call started no task); a missing key is no error.
func TestDeleteFreesTheKey(t *testing.T) {
	e := newEnv(t, osssim.Options{})
	store := e.client(t, installer.Credentials)
	ctx := context.Background()
	require.NoError(t, store.Create(ctx, "g000001/intent-01", []byte(`{"attempt":1}`)))
	require.NoError(t, store.Delete(ctx, "g000001/intent-01"))
	_, err := store.Get(ctx, "g000001/intent-01")
	assert.ErrorIs(t, err, ledger.ErrNotFound)
	require.NoError(t, store.Create(ctx, "g000001/intent-01", []byte(`{"attempt":1}`)), "the key is free again")
	require.NoError(t, store.Delete(ctx, "g000001/never-written"), "deleting a missing object is no error")
	err = store.Delete(ctx, "/absolute")
	assertClassified(t, err, fault.Invalid, "")
}

func TestConcurrentCreatesHaveOneWinner(t *testing.T) {
	e := newEnv(t, osssim.Options{})
	const n = 32
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			store := e.client(t, installer.Credentials) // one per invocation
			errs[i] = store.Create(context.Background(), "instances/i-race", fmt.Appendf(nil, `{"owner":"job-%d"}`, i))
		}()
	}
	wg.Wait()
	winners := 0
	for _, err := range errs {
		if err == nil {
			winners++
			continue
		}
		assert.ErrorIs(t, err, ledger.ErrExists)
		assert.True(t, fault.Is(err, fault.Permanent))
	}
	assert.Equal(t, 1, winners)
	assert.Len(t, e.sim.Objects(bucket, "instances/"), 1)
}

func TestListPages(t *testing.T) {
	e := newEnv(t, osssim.Options{})
	ctx := context.Background()
	store := e.client(t, poller.Credentials)

	const n = 2500
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("instances/i-%05d", i)
	}
	// Seeded in-process: 2500 signed PutObjects would only slow the test.
	for _, k := range append(slices.Clone(want), "jobs/j-1", "instance") {
		require.NoError(t, e.sim.PutObject(bucket, k, []byte(`{}`)))
	}
	require.NoError(t, store.Create(ctx, "instances/i-02500x", []byte(`{}`)), "and one through the adapter")
	want = append(want, "instances/i-02500x")

	var got []string
	var sizes []int
	after := ""
	for {
		keys, more, err := store.List(ctx, "instances/", after, ossstore.MaxList)
		require.NoError(t, err)
		sizes = append(sizes, len(keys))
		got = append(got, keys...)
		if !more {
			break
		}
		after = keys[len(keys)-1]
	}
	assert.Equal(t, []int{1000, 1000, 501}, sizes)
	assert.Equal(t, want, got, "every key once, in byte order, nothing outside the prefix")

	tests := []struct {
		name, prefix, after string
		max                 int
		keys                []string
		more                bool
	}{
		{"start in the middle", "instances/", "instances/i-02497", 10, want[2498:], false},
		{"start between keys", "instances/", "instances/i-01000x", 2, want[1001:1003], true},
		{"exact page end", "instances/", "instances/i-02490", 10, want[2491:], false},
		{"other prefix", "jobs/", "", 5, []string{"jobs/j-1"}, false},
		{"no prefix", "", "instances/i-02500x", 5, []string{"jobs/j-1"}, false},
		{"nothing", "none/", "", 5, []string{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, more, err := store.List(ctx, tt.prefix, tt.after, tt.max)
			require.NoError(t, err)
			assert.Equal(t, tt.keys, keys)
			assert.Equal(t, tt.more, more)
		})
	}
}

func TestInvalidInputSendsNothing(t *testing.T) {
	e := newEnv(t, osssim.Options{})
	store := e.client(t, installer.Credentials)
	ctx := context.Background()
	long := strings.Repeat("k", ossstore.MaxKeyBytes+1)
	tests := []struct {
		name string
		call func() error
	}{
		{"empty key", func() error { return store.Create(ctx, "", []byte("{}")) }},
		{"leading slash", func() error { return store.Create(ctx, "/instances/i-1", []byte("{}")) }},
		{"leading backslash", func() error { _, err := store.Get(ctx, `\instances`); return err }},
		{"key too long", func() error { _, err := store.Get(ctx, long); return err }},
		{"key not UTF-8", func() error { _, err := store.Get(ctx, "instances/\xff"); return err }},
		{"body too big", func() error { return store.Create(ctx, "k", make([]byte, ossstore.MaxObjectBytes+1)) }},
		{"page size 0", func() error { _, _, err := store.List(ctx, "", "", 0); return err }},
		{"page size 1001", func() error { _, _, err := store.List(ctx, "", "", 1001); return err }},
		{"prefix too long", func() error { _, _, err := store.List(ctx, long, "", 10); return err }},
		{"startAfter too long", func() error { _, _, err := store.List(ctx, "", long, 10); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertClassified(t, tt.call(), fault.Invalid, "")
		})
	}
	assert.Empty(t, e.sim.Calls())
	require.NoError(t, store.Create(ctx, strings.Repeat("k", ossstore.MaxKeyBytes), []byte("{}")), "the longest key is fine")
}

func TestAuthenticationErrorsArePermanent(t *testing.T) {
	wrongSecret := installer.Credentials
	wrongSecret.AccessKeySecret = "wrong-Secret"
	noToken := installer.Credentials
	noToken.SecurityToken = ""
	wrongToken := installer.Credentials
	wrongToken.SecurityToken = "wrong-token"
	unknown := cloudauth.Credentials{AccessKeyID: "LTAInobody", AccessKeySecret: "wrong-Secret"}
	tests := []struct {
		name string
		cred cloudauth.Credentials
		code string
	}{
		{"wrong secret", wrongSecret, "SignatureDoesNotMatch"},
		{"STS key without its token", noToken, "InvalidSecurityToken"},
		{"wrong token", wrongToken, "InvalidSecurityToken"},
		{"unknown key", unknown, "InvalidAccessKeyId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, osssim.Options{})
			store := e.client(t, tt.cred)
			ctx := context.Background()
			err := store.Create(ctx, "instances/i-1", []byte("{}"))
			assertClassified(t, err, fault.Permanent, tt.code)
			_, err = store.Get(ctx, "instances/i-1")
			assertClassified(t, err, fault.Permanent, tt.code)
			assert.NotErrorIs(t, err, ledger.ErrNotFound)
			_, _, err = store.List(ctx, "", "", 10)
			assertClassified(t, err, fault.Permanent, tt.code)
			assert.Empty(t, e.sim.Objects(bucket, ""))
			assert.Equal(t, map[string]int{"oss.PutObject": 1, "oss.GetObject": 1, "oss.ListObjectsV2": 1},
				e.sim.CallsBy()[""], "a permanent error is not retried")
		})
	}
}

func TestServiceTroubleIsRetryable(t *testing.T) {
	ctx := context.Background()
	get := func(s *ossstore.Client) error { _, err := s.Get(ctx, "instances/i-1"); return err }
	list := func(s *ossstore.Client) error { _, _, err := s.List(ctx, "", "", 10); return err }
	create := func(s *ossstore.Client) error { return s.Create(ctx, "instances/i-2", []byte("{}")) }
	tests := []struct {
		name     string
		faults   osssim.Faults
		call     func(*ossstore.Client) error
		code     string // "" = success expected
		attempts map[string]int
	}{
		{"throttled get, three attempts", osssim.Faults{ThrottleRate: 1}, get, "TotalQpsLimitExceeded", map[string]int{"oss.GetObject": 3}},
		{"429 list", osssim.Faults{ThrottleRate: 1, ThrottleStatus: 429}, list, "QpsLimitExceeded", map[string]int{"oss.ListObjectsV2": 3}},
		{"5xx get", osssim.Faults{ServerErrorRate: 1}, get, "InternalError", map[string]int{"oss.GetObject": 3}},
		{"throttled create, one attempt", osssim.Faults{ThrottleRate: 1}, create, "TotalQpsLimitExceeded", map[string]int{"oss.PutObject": 1}},
		{"5xx create, one attempt", osssim.Faults{ServerErrorNext: 1}, create, "InternalError", map[string]int{"oss.PutObject": 1}},
		{"one throttle, then a get succeeds", osssim.Faults{ThrottleNext: 1}, get, "", map[string]int{"oss.GetObject": 2}},
		{"two 5xx, then a list succeeds", osssim.Faults{ServerErrorNext: 2}, list, "", map[string]int{"oss.ListObjectsV2": 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, osssim.Options{})
			store := e.client(t, installer.Credentials)
			require.NoError(t, store.Create(ctx, "instances/i-1", []byte("{}")))
			e.sim.SetFaults(tt.faults)
			err := tt.call(store)
			if tt.code == "" {
				assert.NoError(t, err)
			} else {
				assertClassified(t, err, fault.Retryable, tt.code)
				var apiErr *ossstore.APIError
				require.ErrorAs(t, err, &apiErr)
				assert.GreaterOrEqual(t, apiErr.HTTPStatus, 429)
			}
			calls := e.sim.Calls()
			calls["oss.PutObject"]-- // the setup's create
			if calls["oss.PutObject"] == 0 {
				delete(calls, "oss.PutObject")
			}
			assert.Equal(t, tt.attempts, calls)
		})
	}
}

func TestLostReplyLeavesCreateUncertain(t *testing.T) {
	e := newEnv(t, osssim.Options{})
	store := e.client(t, installer.Credentials)
	ctx := context.Background()
	e.sim.SetFaults(osssim.Faults{ErrorAfterEffectNext: 1})
	err := store.Create(ctx, "instances/i-1", []byte(`{"owner":"me"}`))
	assertClassified(t, err, fault.Retryable, "InternalError")
	assert.Len(t, e.sim.Objects(bucket, ""), 1, "OSS stored it all the same")

	// Retrying blindly reports the caller's own write as a conflict: the
	// ledger has to read the entry back to know who owns it.
	err = store.Create(ctx, "instances/i-1", []byte(`{"owner":"me"}`))
	assert.ErrorIs(t, err, ledger.ErrExists)
	got, err := store.Get(ctx, "instances/i-1")
	require.NoError(t, err)
	assert.JSONEq(t, `{"owner":"me"}`, string(got))
}

func TestDeadlinesAndCancellation(t *testing.T) {
	// A latency far beyond every deadline below: a call that waited for the
	// answer (or retried) would take at least half of it.
	const latency = 4 * time.Second
	tests := []struct {
		name    string
		timeout time.Duration // Config.Timeout
		ctx     func() (context.Context, context.CancelFunc)
		kind    fault.Kind
		target  error
	}{
		{"ctx deadline", 5 * time.Second, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, fault.Retryable, context.DeadlineExceeded},
		{"Config.Timeout", 100 * time.Millisecond, func() (context.Context, context.CancelFunc) {
			return context.Background(), func() {}
		}, fault.Retryable, context.DeadlineExceeded},
		{"ctx cancelled during the call", 5 * time.Second, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			return ctx, cancel
		}, fault.Permanent, context.Canceled},
	}
	for _, tt := range tests {
		for _, op := range []string{"create", "get", "list"} {
			t.Run(tt.name+"/"+op, func(t *testing.T) {
				e := newEnv(t, osssim.Options{Latency: latency})
				store := e.client(t, poller.Credentials, func(c *ossstore.Config) { c.Timeout = tt.timeout })
				ctx, cancel := tt.ctx()
				defer cancel()
				start := time.Now()
				var err error
				switch op {
				case "create":
					err = store.Create(ctx, "instances/i-1", []byte("{}"))
				case "get":
					_, err = store.Get(ctx, "instances/i-1")
				case "list":
					_, _, err = store.List(ctx, "", "", 10)
				}
				assert.Less(t, time.Since(start), latency/2, "the call ends with its deadline, without retrying")
				assertClassified(t, err, tt.kind, "")
				assert.True(t, fault.IsContext(err))
				assert.ErrorIs(t, err, tt.target)
			})
		}
	}

	t.Run("ctx already done", func(t *testing.T) {
		e := newEnv(t, osssim.Options{})
		store := e.client(t, poller.Credentials)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := store.Get(ctx, "instances/i-1")
		assertClassified(t, err, fault.Permanent, "")
		assert.ErrorIs(t, err, context.Canceled)
		ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		err = store.Create(ctx, "instances/i-1", []byte("{}"))
		assertClassified(t, err, fault.Retryable, "")
		assert.Empty(t, e.sim.Calls(), "nothing was sent")
	})
}

func TestTransportFailureIsRetryable(t *testing.T) {
	e := newEnv(t, osssim.Options{})
	store := e.client(t, installer.Credentials)
	require.NoError(t, e.sim.Close())
	_, err := store.Get(context.Background(), "instances/i-1")
	assertClassified(t, err, fault.Retryable, "")
	assert.False(t, fault.IsContext(err))
	assert.Contains(t, err.Error(), "transport")
}

func TestLatencyIsFelt(t *testing.T) {
	const latency = 100 * time.Millisecond
	e := newEnv(t, osssim.Options{Latency: latency})
	store := e.client(t, installer.Credentials)
	ctx := context.Background()
	start := time.Now()
	require.NoError(t, store.Create(ctx, "instances/i-1", []byte("{}")))
	assert.GreaterOrEqual(t, time.Since(start), latency)

	e.sim.SetLatency(2 * latency)
	start = time.Now()
	_, err := store.Get(ctx, "instances/i-1")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 2*latency)
}

func TestCallsAreAttributedToPrincipals(t *testing.T) {
	e := newEnv(t, osssim.Options{})
	ctx := context.Background()
	install := e.client(t, installer.Credentials)
	poll := e.client(t, poller.Credentials)
	require.NoError(t, install.Create(ctx, "instances/i-1", []byte("{}")))
	assert.ErrorIs(t, install.Create(ctx, "instances/i-1", []byte("{}")), ledger.ErrExists)
	_, err := poll.Get(ctx, "instances/i-1")
	require.NoError(t, err)
	_, _, err = poll.List(ctx, "instances/", "", 100)
	require.NoError(t, err)
	assert.Equal(t, map[string]map[string]int{
		"install": {"oss.PutObject": 2},
		"poller":  {"oss.GetObject": 1, "oss.ListObjectsV2": 1},
	}, e.sim.CallsBy())
}

// TestVersionedBucketIgnoresForbidOverwrite shows why the ledger's bucket
// must never be versioned: OSS then lets a second create overwrite the
// first, and two jobs would both believe they own the instance.
func TestVersionedBucketIgnoresForbidOverwrite(t *testing.T) {
	for _, status := range []oss.VersioningStatusType{oss.VersionEnabled, oss.VersionSuspended} {
		t.Run(string(status), func(t *testing.T) {
			e := newEnv(t, osssim.Options{})
			ctx := context.Background()
			_, err := e.sdk().PutBucketVersioning(ctx, &oss.PutBucketVersioningRequest{
				Bucket:                  oss.Ptr(bucket),
				VersioningConfiguration: &oss.VersioningConfiguration{Status: status},
			})
			require.NoError(t, err)
			store := e.client(t, installer.Credentials)
			require.NoError(t, store.Create(ctx, "instances/i-1", []byte(`{"owner":"job-1"}`)))
			require.NoError(t, store.Create(ctx, "instances/i-1", []byte(`{"owner":"job-2"}`)), "no conflict on a versioned bucket")
			got, err := store.Get(ctx, "instances/i-1")
			require.NoError(t, err)
			assert.JSONEq(t, `{"owner":"job-2"}`, string(got), "the first owner was silently overwritten")
		})
	}
}

func TestOversizedObjectIsRefused(t *testing.T) {
	e := newEnv(t, osssim.Options{})
	ctx := context.Background()
	_, err := e.sdk().PutObject(ctx, &oss.PutObjectRequest{
		Bucket: oss.Ptr(bucket), Key: oss.Ptr("instances/big"),
		Body: strings.NewReader(strings.Repeat("x", ossstore.MaxObjectBytes+1)),
	})
	require.NoError(t, err)
	_, err = e.client(t, poller.Credentials).Get(ctx, "instances/big")
	assertClassified(t, err, fault.Permanent, "")
	assert.Contains(t, err.Error(), "not a ledger entry")
}

func TestMissingBucketIsPermanent(t *testing.T) {
	e := newEnv(t, osssim.Options{})
	store := e.client(t, installer.Credentials, func(c *ossstore.Config) { c.Bucket = "no-such-bucket" })
	err := store.Create(context.Background(), "instances/i-1", []byte("{}"))
	assertClassified(t, err, fault.Permanent, "NoSuchBucket")
	assert.False(t, errors.Is(err, ledger.ErrNotFound), "a missing bucket is not a missing entry")
}

func TestKeysWithOddCharactersRoundTrip(t *testing.T) {
	e := newEnv(t, osssim.Options{})
	store := e.client(t, installer.Credentials)
	ctx := context.Background()
	keys := []string{"instances/a b", "instances/a+b", "instances/a%2Fb", "instances/ä/ö?x=1&y", "instances/~*'()"}
	for _, k := range keys {
		require.NoError(t, store.Create(ctx, k, []byte(k)), k)
		got, err := store.Get(ctx, k)
		require.NoError(t, err, k)
		assert.Equal(t, k, string(got))
	}
	listed, more, err := store.List(ctx, "instances/", "", 100)
	require.NoError(t, err)
	assert.False(t, more)
	want := slices.Clone(keys)
	slices.Sort(want)
	assert.Equal(t, want, listed)
}

// The instance ledger over the real SDK and the emulator: announcements of
// one instance made at once from 16 goroutines (as 16 function invocations
// would) elect exactly one owner, and the others name it.
func TestLedgerOverTheWireElectsOneOwner(t *testing.T) {
	e := newEnv(t, osssim.Options{})
	l := &ledger.Ledger{Store: e.client(t, installer.Credentials), Prefix: "hbr-autoinstall/ledger/", Account: "1234567890",
		Lease: 30 * time.Minute, StaleIntent: time.Minute}
	const n = 16
	decisions := make([]ledger.Decision, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := l.Claim(context.Background(), ledger.Announcement{Region: "cn-hangzhou", Instance: "i-bp1wire00000000001",
				Job: fmt.Sprintf("j-%02d", i), Trigger: "ecs:Instance:StateChange", EventTime: time.Now(), Via: fmt.Sprintf("ev-%02d", i)})
			assert.NoError(t, err)
			decisions[i] = d
		}()
	}
	wg.Wait()
	owners := map[string]bool{}
	owned := 0
	for _, d := range decisions {
		owners[d.Owner.Job] = true
		if d.Kind == ledger.Owned {
			owned++
		}
	}
	assert.Equal(t, 1, owned)
	assert.Len(t, owners, 1, "every announcement names the one owner")
}
