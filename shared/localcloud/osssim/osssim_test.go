package osssim_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/osssim"
)

const (
	region = "cn-hangzhou"
	bucket = "ledger-test"
)

var (
	installer = callers.Principal{Name: "install", Credentials: cloudauth.Credentials{
		AccessKeyID: "STS.install", AccessKeySecret: "install-secret/+=", SecurityToken: "install-token+/="}}
	poller = callers.Principal{Name: "poller", Credentials: cloudauth.Credentials{
		AccessKeyID: "LTAIpoller", AccessKeySecret: "poller-secret"}}
)

func newServer(t *testing.T, opts osssim.Options) (*osssim.Server, string) {
	t.Helper()
	if opts.Principals == nil {
		opts.Principals = callers.Set{installer, poller}
	}
	s := osssim.New(opts)
	base, err := s.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	s.CreateBucket(bucket)
	return s, base
}

// exchange is one hand-made request and its answer.
type exchange struct {
	method, bucket, key, query string
	body                       []byte
	cred                       cloudauth.Credentials
	at                         time.Time         // signing time; zero = now
	headers                    map[string]string // set before signing
	tamper                     func(*http.Request)
	host                       string // Host header; "" = the listener
}

type answer struct {
	status int
	header http.Header
	body   []byte
	err    errorDoc
}

type errorDoc struct {
	Code      string `xml:"Code"`
	Message   string `xml:"Message"`
	RequestID string `xml:"RequestId"`
	HostID    string `xml:"HostId"`
}

func send(t *testing.T, base string, x exchange) answer {
	t.Helper()
	if x.method == "" {
		x.method = http.MethodGet
	}
	path := "/"
	if x.bucket != "" {
		path += x.bucket + "/" + x.key
	}
	u := base + path
	if x.query != "" {
		u += "?" + x.query
	}
	req, err := http.NewRequest(x.method, u, bytes.NewReader(x.body))
	require.NoError(t, err)
	if x.host != "" {
		req.Host = x.host
	}
	for k, v := range x.headers {
		req.Header.Set(k, v)
	}
	if x.cred.AccessKeyID != "" {
		at := x.at
		if at.IsZero() {
			at = time.Now()
		}
		osssim.Sign(req, x.cred, region, x.bucket, x.key, at)
	}
	if x.tamper != nil {
		x.tamper(req)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := answer{status: resp.StatusCode, header: resp.Header, body: body}
	if resp.StatusCode >= 300 && len(body) > 0 {
		require.NoError(t, xml.Unmarshal(body, &a.err), "error body: %s", body)
		assert.Equal(t, resp.Header.Get("x-oss-request-id"), a.err.RequestID)
	}
	assert.Len(t, resp.Header.Get("x-oss-request-id"), 24)
	return a
}

func put(key, body string, cred cloudauth.Credentials, forbid bool) exchange {
	x := exchange{method: http.MethodPut, bucket: bucket, key: key, body: []byte(body), cred: cred,
		headers: map[string]string{"Content-Type": "application/json"}}
	if forbid {
		x.headers["x-oss-forbid-overwrite"] = "true"
	}
	return x
}

func TestSignedRequestsWork(t *testing.T) {
	s, base := newServer(t, osssim.Options{})
	a := send(t, base, put("instances/i-1", `{"owner":"a"}`, installer.Credentials, true))
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	assert.Equal(t, `"`, a.header.Get("ETag")[:1])
	assert.NotEmpty(t, a.header.Get("x-oss-hash-crc64ecma"))

	a = send(t, base, exchange{bucket: bucket, key: "instances/i-1", cred: poller.Credentials})
	require.Equal(t, http.StatusOK, a.status)
	assert.JSONEq(t, `{"owner":"a"}`, string(a.body))
	assert.Equal(t, "application/json", a.header.Get("Content-Type"))

	a = send(t, base, put("instances/i-1", `{"owner":"b"}`, installer.Credentials, true))
	assert.Equal(t, http.StatusConflict, a.status)
	assert.Equal(t, osssim.CodeFileAlreadyExists, a.err.Code)
	assert.Equal(t, "0026-00000002", a.header.Get("x-oss-ec"))

	a = send(t, base, put("instances/i-1", `{"owner":"c"}`, installer.Credentials, false))
	assert.Equal(t, http.StatusOK, a.status, "without the header PutObject overwrites")
	assert.Equal(t, map[string][]byte{"instances/i-1": []byte(`{"owner":"c"}`)}, s.Objects(bucket, "instances/"))

	a = send(t, base, exchange{bucket: bucket, key: "instances/i-2", cred: poller.Credentials})
	assert.Equal(t, http.StatusNotFound, a.status)
	assert.Equal(t, osssim.CodeNoSuchKey, a.err.Code)

	a = send(t, base, exchange{method: http.MethodHead, bucket: bucket, key: "instances/i-2", cred: poller.Credentials})
	assert.Equal(t, http.StatusNotFound, a.status)
	doc, err := base64.StdEncoding.DecodeString(a.header.Get("x-oss-err"))
	require.NoError(t, err, "a HEAD error carries its document in x-oss-err")
	assert.Contains(t, string(doc), "<Code>NoSuchKey</Code>")

	a = send(t, base, exchange{method: http.MethodDelete, bucket: bucket, key: "instances/i-1", cred: poller.Credentials})
	assert.Equal(t, http.StatusNoContent, a.status)
	assert.Empty(t, s.Objects(bucket, ""))

	a = send(t, base, exchange{bucket: "no-such-bucket", key: "k", cred: poller.Credentials})
	assert.Equal(t, http.StatusNotFound, a.status)
	assert.Equal(t, osssim.CodeNoSuchBucket, a.err.Code)

	assert.Equal(t, map[string]int{
		"oss.PutObject": 3, "oss.GetObject": 3, "oss.HeadObject": 1, "oss.DeleteObject": 1,
	}, s.Calls())
}

func TestAuthenticationFailures(t *testing.T) {
	wrongSecret := installer.Credentials
	wrongSecret.AccessKeySecret = "not-the-secret"
	noToken := installer.Credentials
	noToken.SecurityToken = ""
	wrongToken := installer.Credentials
	wrongToken.SecurityToken = "other-token"
	unexpectedToken := poller.Credentials
	unexpectedToken.SecurityToken = "token"
	unknown := cloudauth.Credentials{AccessKeyID: "LTAInobody", AccessKeySecret: "x"}

	tests := []struct {
		name   string
		x      exchange
		status int
		code   string
	}{
		{"wrong secret", put("k", "{}", wrongSecret, true), 403, osssim.CodeSignatureDoesNotMatch},
		{"signed header changed after signing", exchange{
			method: http.MethodPut, bucket: bucket, key: "k", body: []byte("{}"), cred: installer.Credentials,
			tamper: func(r *http.Request) { r.Header.Set("x-oss-forbid-overwrite", "true") },
		}, 403, osssim.CodeSignatureDoesNotMatch},
		{"key changed after signing", exchange{
			bucket: bucket, key: "k", cred: installer.Credentials,
			tamper: func(r *http.Request) { r.URL.Path = "/" + bucket + "/other" },
		}, 403, osssim.CodeSignatureDoesNotMatch},
		{"query changed after signing", exchange{
			bucket: bucket, query: "list-type=2&max-keys=10", cred: installer.Credentials,
			tamper: func(r *http.Request) { r.URL.RawQuery = "list-type=2&max-keys=11" },
		}, 403, osssim.CodeSignatureDoesNotMatch},
		{"unknown access key", put("k", "{}", unknown, true), 403, osssim.CodeInvalidAccessKeyID},
		{"STS key without its token", put("k", "{}", noToken, true), 403, osssim.CodeInvalidSecurityToken},
		{"wrong token", put("k", "{}", wrongToken, true), 403, osssim.CodeInvalidSecurityToken},
		{"token on a key that has none", put("k", "{}", unexpectedToken, true), 403, osssim.CodeInvalidSecurityToken},
		{"signed 20 minutes ago", exchange{bucket: bucket, key: "k", cred: poller.Credentials,
			at: time.Now().Add(-20 * time.Minute)}, 403, osssim.CodeRequestTimeTooSkewed},
		{"signed 20 minutes ahead", exchange{bucket: bucket, key: "k", cred: poller.Credentials,
			at: time.Now().Add(20 * time.Minute)}, 403, osssim.CodeRequestTimeTooSkewed},
		{"anonymous", exchange{bucket: bucket, key: "k"}, 403, osssim.CodeAccessDenied},
		{"V1 signature", exchange{bucket: bucket, key: "k",
			headers: map[string]string{"Authorization": "OSS LTAIpoller:c2lnbmF0dXJl"}}, 403, osssim.CodeAccessDenied},
		{"other region in the scope", exchange{bucket: bucket, key: "k", cred: poller.Credentials,
			tamper: func(r *http.Request) {
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/"+region+"/", "/cn-beijing/", 1))
			}}, 400, osssim.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, base := newServer(t, osssim.Options{})
			var mu sync.Mutex
			var calls []osssim.Call
			s.OnCall(func(c osssim.Call) {
				mu.Lock()
				defer mu.Unlock()
				calls = append(calls, c)
			})
			a := send(t, base, tt.x)
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, tt.status, a.status, "%s", a.body)
			assert.Equal(t, tt.code, a.err.Code)
			assert.Empty(t, s.Objects(bucket, ""), "a rejected request has no effect")
			require.Len(t, calls, 1)
			assert.Equal(t, "", calls[0].Principal, "a rejected request is nobody's")
			assert.Equal(t, tt.code, calls[0].Code)
			for _, c := range []cloudauth.Credentials{installer.Credentials, poller.Credentials, wrongSecret} {
				assert.NotContains(t, string(a.body), c.AccessKeySecret)
			}
		})
	}
}

func TestSignatureMismatchShowsTheStringToSign(t *testing.T) {
	_, base := newServer(t, osssim.Options{})
	cred := poller.Credentials
	cred.AccessKeySecret = "wrong"
	a := send(t, base, exchange{bucket: bucket, key: "k", cred: cred})
	require.Equal(t, http.StatusForbidden, a.status)
	var doc struct {
		StringToSign string `xml:"StringToSign"`
	}
	require.NoError(t, xml.Unmarshal(a.body, &doc))
	assert.True(t, strings.HasPrefix(doc.StringToSign, "OSS4-HMAC-SHA256\n"), doc.StringToSign)
	assert.Contains(t, doc.StringToSign, "/"+region+"/oss/aliyun_v4_request\n")
}

func TestCreateIfAbsentIsAtomic(t *testing.T) {
	s, base := newServer(t, osssim.Options{})
	const n = 32
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := send(t, base, put("instances/i-race", `{"n":`+string(rune('0'+i%10))+`}`, installer.Credentials, true))
			switch a.status {
			case http.StatusOK:
				wins.Add(1)
			case http.StatusConflict:
				conflicts.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load())
	assert.Equal(t, int32(n-1), conflicts.Load())
	assert.Len(t, s.Objects(bucket, ""), 1)
}

func TestPrincipalsAreAttributed(t *testing.T) {
	s, base := newServer(t, osssim.Options{})
	var mu sync.Mutex
	var seen []osssim.Call
	s.OnCall(func(c osssim.Call) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, c)
	})
	send(t, base, put("a", "{}", installer.Credentials, true))
	send(t, base, put("a", "{}", installer.Credentials, true))
	send(t, base, exchange{bucket: bucket, key: "a", cred: poller.Credentials})
	send(t, base, exchange{bucket: bucket, key: "a"})

	assert.Equal(t, map[string]map[string]int{
		"install": {"oss.PutObject": 2},
		"poller":  {"oss.GetObject": 1},
		"":        {"oss.GetObject": 1},
	}, s.CallsBy())
	assert.Equal(t, map[string]int{"oss.PutObject": 2, "oss.GetObject": 2}, s.Calls())
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 4)
	assert.Equal(t, osssim.Call{Time: seen[1].Time, Principal: "install", Action: "oss.PutObject", Bucket: bucket, Key: "a",
		Status: http.StatusConflict, Code: osssim.CodeFileAlreadyExists, RequestID: seen[1].RequestID}, seen[1])
	assert.False(t, seen[1].Time.IsZero())
	assert.NotEqual(t, seen[0].RequestID, seen[1].RequestID)
}

func TestLatencyIsSplitAroundTheEffect(t *testing.T) {
	const latency = 400 * time.Millisecond
	s, base := newServer(t, osssim.Options{Latency: latency})
	done := make(chan time.Duration)
	go func() {
		start := time.Now()
		send(t, base, put("slow", "{}", installer.Credentials, true))
		done <- time.Since(start)
	}()
	time.Sleep(latency / 8)
	assert.Empty(t, s.Objects(bucket, ""), "the first half passes before the write")
	took := <-done
	assert.GreaterOrEqual(t, took, latency)
	assert.Len(t, s.Objects(bucket, ""), 1)

	s.SetLatency(0)
	start := time.Now()
	send(t, base, exchange{bucket: bucket, key: "slow", cred: poller.Credentials})
	assert.Less(t, time.Since(start), latency/2)
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults osssim.Faults
		status int
		code   string
		stored bool
	}{
		{"throttled", osssim.Faults{ThrottleNext: 1}, 503, osssim.CodeTotalQPSLimit, false},
		{"throttled with 429", osssim.Faults{ThrottleNext: 1, ThrottleStatus: 429}, 429, osssim.CodeQPSLimitExceeded, false},
		{"throttle rate 1", osssim.Faults{ThrottleRate: 1}, 503, osssim.CodeTotalQPSLimit, false},
		{"server error", osssim.Faults{ServerErrorNext: 1}, 500, osssim.CodeInternalError, false},
		{"server error rate 1", osssim.Faults{ServerErrorRate: 1}, 500, osssim.CodeInternalError, false},
		{"error after the effect", osssim.Faults{ErrorAfterEffectNext: 1}, 500, osssim.CodeInternalError, true},
		{"error after the effect, rate 1", osssim.Faults{ErrorAfterEffectRate: 1}, 500, osssim.CodeInternalError, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, base := newServer(t, osssim.Options{Seed: 3})
			s.SetFaults(tt.faults)
			a := send(t, base, put("k", "{}", installer.Credentials, true))
			assert.Equal(t, tt.status, a.status)
			assert.Equal(t, tt.code, a.err.Code)
			assert.Equal(t, tt.stored, len(s.Objects(bucket, "")) == 1)

			s.SetFaults(osssim.Faults{})
			a = send(t, base, exchange{bucket: bucket, key: "missing", cred: poller.Credentials})
			assert.Equal(t, http.StatusNotFound, a.status, "faults cleared")
		})
	}
}

func TestFaultsStrikeOnlyAuthenticatedRequests(t *testing.T) {
	s, base := newServer(t, osssim.Options{})
	s.SetFaults(osssim.Faults{ThrottleNext: 1})
	a := send(t, base, exchange{bucket: bucket, key: "k"})
	assert.Equal(t, osssim.CodeAccessDenied, a.err.Code)
	a = send(t, base, exchange{bucket: bucket, key: "k", cred: poller.Credentials})
	assert.Equal(t, osssim.CodeTotalQPSLimit, a.err.Code)
}

func TestVirtualHostedStyle(t *testing.T) {
	s, base := newServer(t, osssim.Options{})
	port := strings.TrimPrefix(base, "http://127.0.0.1:")
	x := put("vh/key with space+plus", "{}", installer.Credentials, true)
	x.host = bucket + ".localhost:" + port
	// The signature covers /bucket/key whatever the addressing style, and
	// the path of a virtual-hosted request has no bucket: sign path-style,
	// then move the bucket into the Host.
	x.tamper = func(r *http.Request) { r.URL.Path = "/" + x.key }
	a := send(t, base, x)
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	assert.Contains(t, s.Objects(bucket, "vh/"), "vh/key with space+plus")
}

func TestListObjectsV2Wire(t *testing.T) {
	s, base := newServer(t, osssim.Options{})
	for _, k := range []string{"a/1", "a/2", "b", "c/x/1", "c/y"} {
		send(t, base, put(k, "{}", installer.Credentials, true))
	}
	type page struct {
		XMLName  xml.Name `xml:"ListBucketResult"`
		KeyCount int      `xml:"KeyCount"`
		Trunc    bool     `xml:"IsTruncated"`
		Next     string   `xml:"NextContinuationToken"`
		Keys     []string `xml:"Contents>Key"`
		Prefixes []string `xml:"CommonPrefixes>Prefix"`
	}
	list := func(query string) page {
		a := send(t, base, exchange{bucket: bucket, query: query, cred: poller.Credentials})
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		var p page
		require.NoError(t, xml.Unmarshal(a.body, &p))
		return p
	}
	p := list("list-type=2&delimiter=%2F&max-keys=2")
	assert.Equal(t, page{XMLName: p.XMLName, KeyCount: 2, Trunc: true, Next: p.Next, Prefixes: []string{"a/"}, Keys: []string{"b"}}, p)
	p = list("list-type=2&delimiter=%2F&max-keys=2&continuation-token=" + p.Next)
	assert.Equal(t, []string{"c/"}, p.Prefixes)
	assert.False(t, p.Trunc)
	p = list("list-type=2&prefix=c%2F&start-after=c%2Fx%2F1")
	assert.Equal(t, []string{"c/y"}, p.Keys)

	a := send(t, base, exchange{bucket: bucket, query: "list-type=2&max-keys=1001", cred: poller.Credentials})
	assert.Equal(t, osssim.CodeInvalidArgument, a.err.Code)
	assert.Equal(t, 4, s.Calls()["oss.ListObjectsV2"])
}

func TestUnservedOperations(t *testing.T) {
	s, base := newServer(t, osssim.Options{})
	for _, x := range []exchange{
		{bucket: bucket, query: "", cred: poller.Credentials}, // ListObjects v1
		{method: http.MethodPost, bucket: bucket, key: "k", query: "uploads", cred: poller.Credentials},
		{cred: poller.Credentials}, // ListBuckets
	} {
		a := send(t, base, x)
		assert.Equal(t, http.StatusMethodNotAllowed, a.status)
		assert.Equal(t, osssim.CodeMethodNotAllowed, a.err.Code)
	}
	assert.Equal(t, map[string]int{"oss.Unknown": 3}, s.Calls())
}

func TestSeedingInProcess(t *testing.T) {
	s, base := newServer(t, osssim.Options{})
	require.NoError(t, s.PutObject(bucket, "seed/a", []byte("A")))
	require.NoError(t, s.PutObject(bucket, "seed/b", []byte("B")))
	assert.Error(t, s.PutObject("no-such-bucket", "k", nil))
	assert.Error(t, s.PutObject(bucket, "/abs", nil))
	assert.Empty(t, s.Calls(), "seeding is not a call")

	a := send(t, base, exchange{bucket: bucket, key: "seed/b", cred: poller.Credentials})
	assert.Equal(t, "B", string(a.body))
	a = send(t, base, put("seed/a", "again", installer.Credentials, true))
	assert.Equal(t, osssim.CodeFileAlreadyExists, a.err.Code)
	assert.Equal(t, map[string][]byte{"seed/a": []byte("A"), "seed/b": []byte("B")}, s.Objects(bucket, "seed/"))
	assert.Nil(t, s.Objects("no-such-bucket", ""))
}

func TestCloseCutsLatencyShort(t *testing.T) {
	s := osssim.New(osssim.Options{Principals: callers.Set{poller}, Latency: time.Hour})
	base, err := s.Start()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/b/k", nil)
	require.NoError(t, err)
	go func() {
		time.Sleep(50 * time.Millisecond)
		assert.NoError(t, s.Close())
	}()
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	assert.Less(t, time.Since(start), time.Second)
	assert.NoError(t, s.Close(), "Close twice")
	_, err = s.Start()
	assert.Error(t, err)
}

// BenchmarkServeHTTP measures the emulator alone (no network): a signed
// create-if-absent followed by a read of the same key.
func BenchmarkServeHTTP(b *testing.B) {
	s := osssim.New(osssim.Options{Principals: callers.Set{installer}})
	s.CreateBucket(bucket)
	body := []byte(`{"owner":"install","generation":1}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		key := "instances/i-" + strconv.Itoa(i)
		req := httptest.NewRequest(http.MethodPut, "/"+bucket+"/"+key, bytes.NewReader(body))
		req.Header.Set("x-oss-forbid-overwrite", "true")
		osssim.Sign(req, installer.Credentials, region, bucket, key, time.Now())
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("put: %d %s", w.Code, w.Body)
		}
		req = httptest.NewRequest(http.MethodGet, "/"+bucket+"/"+key, nil)
		osssim.Sign(req, installer.Credentials, region, bucket, key, time.Now())
		w = httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("get: %d %s", w.Code, w.Body)
		}
	}
}
