// Package rpcsimtest holds the test setup shared by the tests of the RPC
// adapters (shared/ecs, shared/hbr) and of their emulators (shared/ecssim,
// shared/hbrsim, built on shared/rpcsim): test credentials, a settable clock,
// a server that records the requests reaching an emulator, a signing raw
// client for requests no SDK would send, a canned-response server, and the
// check of a classified adapter error.
//
// Import it only from _test.go files. It returns no errors: a failed step
// stops the test through testify's require.
package rpcsimtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim"
)

// The test credentials an emulator expects. The secret and the token carry
// the characters that need escaping on the wire ("+", "/", "=").
const (
	AccessKeyID     = "LTAI-rpcsimtest"
	AccessKeySecret = "rpcsimtest-secret+/="
	SecurityToken   = "STS.token+with/odd=chars"
)

// Credentials are the test credentials as an adapter takes them.
func Credentials() cloudauth.Credentials {
	return cloudauth.Credentials{AccessKeyID: AccessKeyID, AccessKeySecret: AccessKeySecret, SecurityToken: SecurityToken}
}

// Clock is a settable clock, safe for concurrent use; pass its Now method as
// an emulator's clock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Request is one request as it reached a recorded server.
type Request struct {
	Method string
	Query  url.Values
	// Form is the parsed body.
	Form url.Values
}

// Params are the request's parameters wherever they were sent: the query's,
// with the form body's over them.
func (r Request) Params() url.Values {
	p := url.Values{}
	for k, v := range r.Query {
		p[k] = v
	}
	for k, v := range r.Form {
		p[k] = v
	}
	return p
}

// Recorder keeps the requests that reached a server started by [Serve].
type Recorder struct {
	mu   sync.Mutex
	reqs []Request
}

// All returns the recorded requests, oldest first.
func (r *Recorder) All() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// Params returns each recorded request's [Request.Params], oldest first.
func (r *Recorder) Params() []url.Values {
	var out []url.Values
	for _, req := range r.All() {
		out = append(out, req.Params())
	}
	return out
}

// Last returns the latest request; it stops the test when there is none.
func (r *Recorder) Last(t *testing.T) Request {
	t.Helper()
	all := r.All()
	require.NotEmpty(t, all)
	return all[len(all)-1]
}

// Serve serves h on a test server, closed when the test ends, behind a
// recorder of every request, and returns the recorder and the server's URL.
// A body that is not a form is answered 400 without reaching h.
func Serve(t *testing.T, h http.Handler) (*Recorder, string) {
	t.Helper()
	rec := &Recorder{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, Request{Method: r.Method, Query: r.URL.Query(), Form: form})
		rec.mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return rec, ts.URL
}

// Canned serves a test server, closed when the test ends, that answers every
// request with status, contentType and body; it returns the server's URL and
// the count of requests it answered.
func Canned(t *testing.T, status int, contentType, body string) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(ts.Close)
	return ts.URL, &n
}

// Caller sends signed RPC requests straight to an emulator, the way the SDK
// signs them but with any parameters. Fill in the fields, then share it by
// pointer: it numbers its signature nonces.
type Caller struct {
	// URL is the emulator's; Version the API version every call carries.
	URL, Version string
	// AccessKeyID and AccessKeySecret sign each call; SecurityToken is sent
	// when not empty.
	AccessKeyID, AccessKeySecret, SecurityToken string

	nonce atomic.Int64
}

// Reply is an emulator's answer: the HTTP status and the decoded JSON body.
type Reply struct {
	Status int
	Body   map[string]any
}

// Code is the body's Code field (nil when absent).
func (r Reply) Code() any { return r.Body["Code"] }

// Call sends a signed POST of action, with query in the URL and form in the
// body, and decodes the reply. A query parameter set to "<omit>" removes the
// common parameter of that name (RegionId, say); tamper, if set, edits the
// query after signing.
func (c *Caller) Call(t *testing.T, action string, query, form map[string]string, tamper func(url.Values)) Reply {
	t.Helper()
	q := url.Values{}
	for k, v := range map[string]string{
		"Action": action, "Version": c.Version, "Format": "JSON", "AccessKeyId": c.AccessKeyID,
		"SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureType": "",
		"SignatureNonce": fmt.Sprintf("n-%d", c.nonce.Add(1)),
		"Timestamp":      time.Now().UTC().Format(rpcsim.TimestampLayout), "RegionId": "cn-hangzhou",
	} {
		q.Set(k, v)
	}
	if c.SecurityToken != "" {
		q.Set("SecurityToken", c.SecurityToken)
	}
	for k, v := range query {
		if v == "<omit>" {
			q.Del(k)
			continue
		}
		q.Set(k, v)
	}
	f := url.Values{}
	for k, v := range form {
		f.Set(k, v)
	}
	all := Request{Query: q, Form: f}.Params()
	q.Set("Signature", rpcsim.Sign("POST", all, c.AccessKeySecret))
	if tamper != nil {
		tamper(q)
	}
	resp, err := http.Post(c.URL+"/?"+q.Encode(), "application/x-www-form-urlencoded", strings.NewReader(f.Encode()))
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return Reply{Status: resp.StatusCode, Body: body}
}

// AssertFault checks that err is a [*fault.Error] of operation op with kind
// and code, and that its text leaks none of secrets, plain or URL-escaped.
func AssertFault(t *testing.T, err error, op string, kind fault.Kind, code string, secrets ...string) {
	t.Helper()
	require.Error(t, err)
	var fe *fault.Error
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, op, fe.Op)
	assert.Equal(t, kind, fault.KindOf(err), "kind of %v", err)
	assert.Equal(t, code, fault.CodeOf(err))
	for _, secret := range secrets {
		for _, s := range []string{secret, url.QueryEscape(secret)} {
			assert.NotContains(t, err.Error(), s, "error text leaks a secret")
		}
	}
}
