package provision

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	osscred "github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/osssim"
)

const ledgerBucket = "hbr-autoinstall-ledger-1234567890123456-cn-hangzhou"

// newOSS starts an OSS emulator for region that accepts testCreds.
func newOSS(t *testing.T, region string) (*osssim.Server, string) {
	t.Helper()
	sim := osssim.New(osssim.Options{Region: region,
		Principals: callers.Set{{Name: "operator", Credentials: testCreds}}})
	url, err := sim.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close() })
	return sim, url
}

// rewriting serves sim behind a front that may replace an answer: edit
// gets each request and the emulator's recorded answer, and returns the
// answer to send.
func rewriting(t *testing.T, sim *osssim.Server, edit func(r *http.Request, status int, body []byte) (int, []byte)) string {
	t.Helper()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, r)
		status, body := edit(r, rec.Code, rec.Body.Bytes())
		for k, v := range rec.Header() {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(front.Close)
	return front.URL
}

func bucketClient(t *testing.T, url, region string) *BucketClient {
	t.Helper()
	c, err := NewBucketClient(testCreds, url, region, 5*time.Second)
	require.NoError(t, err)
	return c
}

// rawSDK is the SDK itself, to set up and read what the adapter does not.
func rawSDK(url, region string) *oss.Client {
	return oss.NewClient(oss.NewConfig().WithRegion(region).WithEndpoint(url).WithUsePathStyle(true).
		WithCredentialsProvider(osscred.NewStaticCredentialsProvider(testAK, testSecret, "")))
}

func lifecycle(t *testing.T, c *oss.Client, bucket string) []oss.LifecycleRule {
	t.Helper()
	res, err := c.GetBucketLifecycle(context.Background(), &oss.GetBucketLifecycleRequest{Bucket: oss.Ptr(bucket)})
	require.NoError(t, err)
	return res.LifecycleConfiguration.Rules
}

func rule(id, prefix string, days int32) oss.LifecycleRule {
	return oss.LifecycleRule{ID: oss.Ptr(id), Prefix: oss.Ptr(prefix), Status: oss.Ptr("Enabled"),
		Expiration: &oss.LifecycleRuleExpiration{Days: oss.Ptr(days)}}
}

type ruleView struct {
	ID, Prefix, Status string
	Days               int32
}

func view(rules []oss.LifecycleRule) []ruleView {
	out := make([]ruleView, len(rules))
	for i, r := range rules {
		out[i] = ruleView{ID: oss.ToString(r.ID), Prefix: oss.ToString(r.Prefix), Status: oss.ToString(r.Status)}
		if r.Expiration != nil && r.Expiration.Days != nil {
			out[i].Days = *r.Expiration.Days
		}
	}
	return out
}

var ledgerSpec = BucketSpec{Region: "cn-hangzhou", Name: ledgerBucket, Prefix: DefaultLedgerPrefix, ExpiryDays: 90}

// TestEnsureLedgerConverges ensures the ledger bucket through the SDK,
// twice, from several starting points: the first run writes only what
// differs, the second writes nothing.
func TestEnsureLedgerConverges(t *testing.T) {
	t.Parallel()
	ours := ruleView{ID: LedgerRuleID, Prefix: DefaultLedgerPrefix, Status: "Enabled", Days: 90}
	logs := ruleView{ID: "expire-logs", Prefix: "logs/", Status: "Enabled", Days: 7}
	tests := []struct {
		name      string
		setup     func(t *testing.T, sim *osssim.Server, sdk *oss.Client)
		want      BucketResult
		wantRules []ruleView
		wantPuts  []string // write calls of the first run
	}{
		{"no bucket", func(*testing.T, *osssim.Server, *oss.Client) {},
			BucketResult{Bucket: Created, Lifecycle: Created}, []ruleView{ours}, []string{"oss.PutBucket", "oss.PutBucketLifecycle"}},
		{"bucket without lifecycle", func(_ *testing.T, sim *osssim.Server, _ *oss.Client) { sim.CreateBucket(ledgerBucket) },
			BucketResult{Bucket: Unchanged, Lifecycle: Created}, []ruleView{ours}, []string{"oss.PutBucketLifecycle"}},
		{"another rule is kept", func(t *testing.T, sim *osssim.Server, sdk *oss.Client) {
			sim.CreateBucket(ledgerBucket)
			_, err := sdk.PutBucketLifecycle(context.Background(), &oss.PutBucketLifecycleRequest{Bucket: oss.Ptr(ledgerBucket),
				LifecycleConfiguration: &oss.LifecycleConfiguration{Rules: []oss.LifecycleRule{rule("expire-logs", "logs/", 7)}}})
			require.NoError(t, err)
		}, BucketResult{Bucket: Unchanged, Lifecycle: Created}, []ruleView{logs, ours}, []string{"oss.PutBucketLifecycle"}},
		{"our rule with other days is replaced", func(t *testing.T, sim *osssim.Server, sdk *oss.Client) {
			sim.CreateBucket(ledgerBucket)
			_, err := sdk.PutBucketLifecycle(context.Background(), &oss.PutBucketLifecycleRequest{Bucket: oss.Ptr(ledgerBucket),
				LifecycleConfiguration: &oss.LifecycleConfiguration{Rules: []oss.LifecycleRule{
					rule(LedgerRuleID, DefaultLedgerPrefix, 30), rule("expire-logs", "logs/", 7)}}})
			require.NoError(t, err)
		}, BucketResult{Bucket: Unchanged, Lifecycle: Updated}, []ruleView{logs, ours}, []string{"oss.PutBucketLifecycle"}},
		{"our rule disabled is enabled", func(t *testing.T, sim *osssim.Server, sdk *oss.Client) {
			sim.CreateBucket(ledgerBucket)
			off := rule(LedgerRuleID, DefaultLedgerPrefix, 90)
			off.Status = oss.Ptr("Disabled")
			_, err := sdk.PutBucketLifecycle(context.Background(), &oss.PutBucketLifecycleRequest{Bucket: oss.Ptr(ledgerBucket),
				LifecycleConfiguration: &oss.LifecycleConfiguration{Rules: []oss.LifecycleRule{off}}})
			require.NoError(t, err)
		}, BucketResult{Bucket: Unchanged, Lifecycle: Updated}, []ruleView{ours}, []string{"oss.PutBucketLifecycle"}},
		{"all in place", func(t *testing.T, sim *osssim.Server, sdk *oss.Client) {
			sim.CreateBucket(ledgerBucket)
			_, err := sdk.PutBucketLifecycle(context.Background(), &oss.PutBucketLifecycleRequest{Bucket: oss.Ptr(ledgerBucket),
				LifecycleConfiguration: &oss.LifecycleConfiguration{Rules: []oss.LifecycleRule{rule(LedgerRuleID, DefaultLedgerPrefix, 90)}}})
			require.NoError(t, err)
		}, BucketResult{Bucket: Unchanged, Lifecycle: Unchanged}, []ruleView{ours}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, url := newOSS(t, "cn-hangzhou")
			sdk := rawSDK(url, "cn-hangzhou")
			tt.setup(t, sim, sdk)
			before := sim.Calls()
			c := bucketClient(t, url, "cn-hangzhou")

			got, err := c.EnsureLedger(context.Background(), ledgerSpec)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.wantPuts, writes(before, sim.Calls()))
			assert.Equal(t, tt.wantRules, view(lifecycle(t, sdk, ledgerBucket)))
			info, err := c.Info(context.Background(), ledgerBucket)
			require.NoError(t, err)
			assert.Equal(t, BucketInfo{Name: ledgerBucket, Location: "oss-cn-hangzhou", ACL: "private"}, info)
			assert.False(t, info.Versioned())

			before = sim.Calls()
			got, err = c.EnsureLedger(context.Background(), ledgerSpec)
			require.NoError(t, err)
			assert.Equal(t, BucketResult{Bucket: Unchanged, Lifecycle: Unchanged}, got)
			assert.Empty(t, writes(before, sim.Calls()), "a second run writes nothing")
		})
	}
}

// writes lists the write operations called between two Calls snapshots.
func writes(before, after map[string]int) []string {
	var out []string
	for _, op := range []string{"oss.PutBucket", "oss.PutBucketVersioning", "oss.PutBucketLifecycle", "oss.DeleteBucketLifecycle"} {
		if after[op] > before[op] {
			out = append(out, op)
		}
	}
	return out
}

// TestEnsureLedgerRefusesUnfitBuckets: an existing bucket that cannot hold
// the ledger is reported with the reason, and nothing is written to it.
func TestEnsureLedgerRefusesUnfitBuckets(t *testing.T) {
	t.Parallel()
	publicRead := func(r *http.Request, status int, body []byte) (int, []byte) {
		if r.URL.Query().Has("bucketInfo") {
			body = bytes.ReplaceAll(body, []byte("<Grant>private</Grant>"), []byte("<Grant>public-read</Grant>"))
		}
		return status, body
	}
	tests := []struct {
		name       string
		versioning string
		edit       func(*http.Request, int, []byte) (int, []byte)
		region     string
		want       error
		wantCode   string
	}{
		{"versioning enabled", osssim.VersioningEnabled, nil, "cn-hangzhou", ErrVersioned, "BucketVersioned"},
		{"versioning suspended", osssim.VersioningSuspended, nil, "cn-hangzhou", ErrVersioned, "BucketVersioned"},
		{"readable by anyone", "", publicRead, "cn-hangzhou", ErrNotPrivate, "BucketNotPrivate"},
		{"in another region", "", nil, "cn-shanghai", ErrOtherRegion, "BucketInOtherRegion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, url := newOSS(t, "cn-hangzhou")
			sim.CreateBucket(ledgerBucket)
			if tt.versioning != "" {
				_, err := rawSDK(url, "cn-hangzhou").PutBucketVersioning(context.Background(), &oss.PutBucketVersioningRequest{
					Bucket: oss.Ptr(ledgerBucket), VersioningConfiguration: &oss.VersioningConfiguration{Status: oss.VersioningStatusType(tt.versioning)}})
				require.NoError(t, err)
			}
			if tt.edit != nil {
				url = rewriting(t, sim, tt.edit)
			}
			before := sim.Calls()
			spec := ledgerSpec
			spec.Region = tt.region
			got, err := bucketClient(t, url, "cn-hangzhou").EnsureLedger(context.Background(), spec)
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.want)
			assert.Equal(t, fault.Permanent, fault.KindOf(err))
			assert.Equal(t, tt.wantCode, fault.CodeOf(err))
			assert.Equal(t, BucketResult{}, got)
			assert.Empty(t, writes(before, sim.Calls()), "an unfit bucket is never changed")
			assert.Zero(t, sim.Calls()["oss.GetBucketLifecycle"])
		})
	}
}

func TestEnsureLedgerErrors(t *testing.T) {
	t.Parallel()
	taken := func(r *http.Request, status int, body []byte) (int, []byte) {
		if r.URL.Query().Has("bucketInfo") {
			return http.StatusNotFound, []byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchBucket</Code>` +
				`<Message>The specified bucket does not exist.</Message><RequestId>5C3D9175B6FC201293AD4890</RequestId></Error>`)
		}
		return status, body
	}
	tests := []struct {
		name     string
		setup    func(t *testing.T, sim *osssim.Server, url string) (*BucketClient, context.Context)
		wantKind fault.Kind
		wantCode string
		wantIs   error
	}{
		{"throttled", func(t *testing.T, sim *osssim.Server, url string) (*BucketClient, context.Context) {
			sim.SetFaults(osssim.Faults{ThrottleNext: 1})
			return bucketClient(t, url, "cn-hangzhou"), context.Background()
		}, fault.Retryable, "TotalQpsLimitExceeded", nil},
		{"throttled with 429", func(t *testing.T, sim *osssim.Server, url string) (*BucketClient, context.Context) {
			sim.SetFaults(osssim.Faults{ThrottleNext: 1, ThrottleStatus: http.StatusTooManyRequests})
			return bucketClient(t, url, "cn-hangzhou"), context.Background()
		}, fault.Retryable, "QpsLimitExceeded", nil},
		{"server error on the lifecycle", func(t *testing.T, sim *osssim.Server, _ string) (*BucketClient, context.Context) {
			sim.CreateBucket(ledgerBucket)
			url := rewriting(t, sim, func(r *http.Request, status int, body []byte) (int, []byte) {
				if r.URL.Query().Has("lifecycle") {
					return http.StatusInternalServerError, []byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>` +
						`<Message>We encountered an internal error. Please try again.</Message><RequestId>5C3D9175B6FC201293AD4891</RequestId></Error>`)
				}
				return status, body
			})
			return bucketClient(t, url, "cn-hangzhou"), context.Background()
		}, fault.Retryable, "InternalError", nil},
		{"wrong secret", func(t *testing.T, _ *osssim.Server, url string) (*BucketClient, context.Context) {
			c, err := NewBucketClient(cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: "wrong"}, url, "cn-hangzhou", time.Second)
			require.NoError(t, err)
			return c, context.Background()
		}, fault.Permanent, "SignatureDoesNotMatch", nil},
		{"name taken by another account", func(t *testing.T, sim *osssim.Server, _ string) (*BucketClient, context.Context) {
			sim.CreateBucket(ledgerBucket)
			return bucketClient(t, rewriting(t, sim, taken), "cn-hangzhou"), context.Background()
		}, fault.Permanent, "BucketAlreadyExists", nil},
		{"nothing listening", func(t *testing.T, _ *osssim.Server, _ string) (*BucketClient, context.Context) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			addr := ln.Addr().String()
			require.NoError(t, ln.Close())
			return bucketClient(t, "http://"+addr, "cn-hangzhou"), context.Background()
		}, fault.Retryable, "", nil},
		{"cancelled", func(t *testing.T, _ *osssim.Server, url string) (*BucketClient, context.Context) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return bucketClient(t, url, "cn-hangzhou"), ctx
		}, fault.Permanent, "", context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, url := newOSS(t, "cn-hangzhou")
			c, ctx := tt.setup(t, sim, url)
			_, err := c.EnsureLedger(ctx, ledgerSpec)
			require.Error(t, err)
			assert.Equal(t, tt.wantKind, fault.KindOf(err), "%v", err)
			assert.Equal(t, tt.wantCode, fault.CodeOf(err), "%v", err)
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
			assert.NotContains(t, err.Error(), testSecret)
		})
	}
}

func TestBucketInfoNotFound(t *testing.T) {
	t.Parallel()
	_, url := newOSS(t, "cn-hangzhou")
	_, err := bucketClient(t, url, "cn-hangzhou").Info(context.Background(), "no-such-ledger")
	require.ErrorIs(t, err, ErrNotFound)
	assert.Equal(t, "NoSuchBucket", fault.CodeOf(err))
	assert.Equal(t, fault.Permanent, fault.KindOf(err))
}

func TestNewBucketClientRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		creds    cloudauth.Credentials
		endpoint string
		region   string
	}{
		{"no credentials", cloudauth.Credentials{}, "", "cn-hangzhou"},
		{"bad region", testCreds, "", "Hangzhou"},
		{"http to a remote host", testCreds, "http://oss-cn-hangzhou.aliyuncs.com", "cn-hangzhou"},
		{"a path", testCreds, "https://oss-cn-hangzhou.aliyuncs.com/x", "cn-hangzhou"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewBucketClient(tt.creds, tt.endpoint, tt.region, 0)
			require.Error(t, err)
			assert.Equal(t, fault.Invalid, fault.KindOf(err))
		})
	}
	c, err := NewBucketClient(testCreds, "", "cn-beijing", 0)
	require.NoError(t, err)
	assert.Equal(t, "cn-beijing", c.Region())
}

func TestCheckLedgerBucket(t *testing.T) {
	t.Parallel()
	ok := BucketInfo{Name: ledgerBucket, Location: "oss-cn-hangzhou", ACL: "private"}
	tests := []struct {
		name string
		edit func(b *BucketInfo)
		want error
	}{
		{"fit", func(*BucketInfo) {}, nil},
		{"no location reported", func(b *BucketInfo) { b.Location = "" }, nil},
		{"enabled", func(b *BucketInfo) { b.Versioning = "Enabled" }, ErrVersioned},
		{"suspended", func(b *BucketInfo) { b.Versioning = "Suspended" }, ErrVersioned},
		{"public-read-write", func(b *BucketInfo) { b.ACL = "public-read-write" }, ErrNotPrivate},
		{"another region", func(b *BucketInfo) { b.Location = "oss-cn-beijing" }, ErrOtherRegion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := ok
			tt.edit(&b)
			err := CheckLedgerBucket(b, "cn-hangzhou")
			if tt.want == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tt.want)
			for _, other := range []error{ErrVersioned, ErrNotPrivate, ErrOtherRegion} {
				if !errors.Is(other, tt.want) {
					assert.NotErrorIs(t, err, other)
				}
			}
			assert.True(t, strings.Contains(err.Error(), "-ledger-bucket") || strings.Contains(err.Error(), "private"))
		})
	}
}
