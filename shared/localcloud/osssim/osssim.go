// Package osssim is a local emulator of Alibaba Cloud Object Storage Service
// (OSS): an http.Handler speaking the OSS REST/XML protocol that the real
// Go SDK (github.com/aliyun/alibabacloud-oss-go-sdk-v2) drives, so the
// shared/ossstore adapter, the instance ledger built on it and the compiled
// function binaries can be run against it in tests and in a local cloud.
//
// What it does, as the service does:
//
//   - verifies the V4 signature (OSS4-HMAC-SHA256, Authorization header)
//     exactly as the SDK computes it (sign.go), the access key, the STS
//     token and the x-oss-date (±15 minutes), and attributes every call to
//     the principal (Options.Principals) whose key signed it;
//   - serves PutObject (x-oss-forbid-overwrite honoured atomically),
//     GetObject, HeadObject, GetObjectMeta, DeleteObject and ListObjectsV2,
//     and for provisioning PutBucket, DeleteBucket, GetBucketInfo,
//     GetBucketAcl (what the SDK's IsBucketExist calls),
//     Get/PutBucketVersioning and Get/Put/DeleteBucketLifecycle;
//   - answers errors with OSS's <Error> document (Code, Message, RequestId,
//     HostId, …), the HTTP statuses OSS documents and an x-oss-request-id
//     header on every response;
//   - addresses buckets path-style (http://127.0.0.1:PORT/bucket/key) and
//     virtual-hosted style (Host: bucket.<Options.Domain>).
//
// Like the real service, a bucket whose versioning is Enabled or Suspended
// ignores x-oss-forbid-overwrite: PutObject overwrites. Source: the SDK's
// documentation of PutObjectRequest.ForbidOverwrite, which carries the
// PutObject API reference text ("When versioning is enabled or suspended
// for the bucket …, the x-oss-forbid-overwrite header does not take
// effect", alibabacloud-oss-go-sdk-v2 v1.6.1 oss/api_op_object.go, [CODE]);
// consistent with it, the FileAlreadyExists help page suggests enabling
// versioning to "keep both" objects ([DOC]
// https://help.aliyun.com/en/oss/user-guide/0026-00000002). That is why the
// instance ledger's bucket must never be versioned; a test shows it.
//
// Simplifications: a versioned bucket keeps only the newest version of an
// object (GetObject ignores versionId; DeleteObject removes the object
// instead of adding a delete marker); Range and conditional GET headers are
// ignored; ListObjects (v1), multipart uploads, ACL changes and RAM policies
// are not served (405 MethodNotAllowed); an object holds at most
// MaxObjectBytes.
//
// Latency (Options.Latency, [Server.SetLatency]) makes every answered
// request take that long, half before its action takes effect and half
// after, to model the real cloud's round trip; faults ([Server.SetFaults])
// inject throttling and server errors. A Server is goroutine-safe and keeps
// its objects under one mutex; without latency a request costs it about
// 10 µs of CPU beyond the HTTP stack (BenchmarkServeHTTP). The package
// returns no classified errors: it plays the service, failures are HTTP
// error responses.
package osssim

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
)

const (
	// MaxClockSkew is how far x-oss-date may be from the wall clock before a
	// request is rejected with RequestTimeTooSkewed ([DOC] "传入请求的时间必须在OSS服务器当前时间之后的15分钟以内",
	// https://developer.aliyun.com/ask/2590 quoting the OSS API reference).
	MaxClockSkew = 15 * time.Minute
	// MaxObjectBytes is the largest object (and request body) the emulator
	// accepts; larger ones get 400 EntityTooLarge. (OSS itself takes 5 GB in
	// one PutObject; the ledger's objects are small JSON documents.)
	MaxObjectBytes = 5 << 20
	// MaxKeys is the most keys one ListObjectsV2 page returns: max-keys is
	// 1..1000, default DefaultMaxKeys, and a value out of range is a 400
	// InvalidArgument. [DOC] the default of 100:
	// https://help.aliyun.com/en/oss/developer-reference/listobjectsv2; the
	// range and the error are documented for OSS's other listings
	// (https://help.aliyun.com/document_detail/601085.html, ListBuckets;
	// https://help.aliyun.com/zh/oss/support/0012-00000102,
	// ListObjectVersions) and assumed here ([UNVERIFIED] for ListObjectsV2).
	MaxKeys = 1000
	// DefaultMaxKeys is the page size when max-keys is not sent.
	DefaultMaxKeys = 100
	// MaxKeyBytes is the longest object key, prefix or start-after, in bytes.
	MaxKeyBytes = 1023
	// DefaultRegion is Options.Region's default.
	DefaultRegion = "cn-hangzhou"
	// DefaultDomain is Options.Domain's default.
	DefaultDomain = "localhost"
)

// Versioning states of a bucket, as GetBucketVersioning reports them ("" for
// a bucket whose versioning was never enabled).
const (
	VersioningEnabled   = "Enabled"
	VersioningSuspended = "Suspended"
)

// Options configures a Server.
type Options struct {
	// Principals are the key pairs accepted. A request signed with any other
	// access key gets 403 InvalidAccessKeyId; with a principal's key but not
	// its STS token (or with a token the principal does not have), 403
	// InvalidSecurityToken.
	Principals callers.Set
	// Region is the region the V4 signing scope must name; default
	// DefaultRegion.
	Region string
	// Domain: a request whose Host is "<bucket>.<Domain>[:port]" is
	// virtual-hosted style; any other is path-style ("/<bucket>/<key>").
	// Default DefaultDomain.
	Domain string
	// Latency is how long every answered request takes (see SetLatency).
	Latency time.Duration
	// Now stamps objects (LastModified) and calls. Default time.Now.
	Now func() time.Time
	// WallClock is what x-oss-date is checked against. Default time.Now; the
	// SDK signs with the real clock, so keep this real when Now is simulated.
	WallClock func() time.Time
	// Seed makes request IDs and injected faults reproducible.
	Seed int64
}

// Faults injects failures. Throttling and server errors strike requests that
// passed authentication, before the action runs (a throttled PutObject
// stores nothing). The *Next counters are used up first, one per request;
// then the rates apply.
type Faults struct {
	// ThrottleRate is the probability [0,1] that a request is throttled.
	ThrottleRate float64
	// ThrottleNext throttles the next N requests.
	ThrottleNext int
	// ThrottleStatus selects the throttling answer: 503
	// TotalQpsLimitExceeded (default) or 429 QpsLimitExceeded, both
	// documented for OSS.
	ThrottleStatus int
	// ServerErrorRate is the probability [0,1] of a 500 InternalError.
	ServerErrorRate float64
	// ServerErrorNext fails the next N requests (after any throttled ones)
	// with 500 InternalError.
	ServerErrorNext int
	// ErrorAfterEffectRate is the probability [0,1] that a request's action
	// takes effect and its answer is then replaced by 500 InternalError: the
	// client cannot tell whether its write happened. Applied only to
	// requests that would have succeeded.
	ErrorAfterEffectRate float64
	// ErrorAfterEffectNext does the same to the next N successful requests.
	ErrorAfterEffectNext int
}

// Call records one request, accepted or rejected.
type Call struct {
	// Time is Options.Now when the request arrived.
	Time time.Time
	// Principal is the name of the principal whose key signed the request;
	// "" when none did (anonymous, unknown key, bad token or signature).
	Principal string
	// Action is the operation, "oss.PutObject" etc. (see Server.Calls).
	Action string
	// Bucket and Key name the resource ("" when absent).
	Bucket, Key string
	// Status is the HTTP status sent.
	Status int
	// Code is the error code sent, "" on success.
	Code string
	// RequestID is the x-oss-request-id sent.
	RequestID string
}

// Server is the emulator. It implements http.Handler; Start also serves it on
// 127.0.0.1. Create it with New.
type Server struct {
	opts      Options
	keys      map[string]callers.Principal // by access key id
	latency   atomic.Int64                 // time.Duration
	seq       atomic.Uint64                // request IDs
	idPrefix  uint32
	hooks     atomic.Pointer[[]func(Call)]
	keyCache  sync.Map      // signing keys, see Server.signingKey
	done      chan struct{} // closed by Close: ends latency pauses
	closeOnce sync.Once

	mu      sync.Mutex
	buckets map[string]*bucket
	calls   map[string]int
	callsBy map[string]map[string]int
	faults  Faults
	rng     *rand.Rand
	srv     *http.Server
}

// New returns a Server with no buckets.
func New(opts Options) *Server {
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if opts.Domain == "" {
		opts.Domain = DefaultDomain
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WallClock == nil {
		opts.WallClock = time.Now
	}
	seed := uint64(opts.Seed)
	s := &Server{
		opts:     opts,
		keys:     make(map[string]callers.Principal, len(opts.Principals)),
		done:     make(chan struct{}),
		buckets:  make(map[string]*bucket),
		calls:    make(map[string]int),
		callsBy:  make(map[string]map[string]int),
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		idPrefix: uint32(seed*0x9e3779b97f4a7c15>>32) | 0x10000000,
	}
	for _, p := range opts.Principals {
		s.keys[p.Credentials.AccessKeyID] = p
	}
	s.latency.Store(int64(opts.Latency))
	s.hooks.Store(&[]func(Call){})
	return s
}

// SetLatency changes how long every answered request takes from now on: half
// of d passes before the request's action takes effect, the rest after.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(max(d, 0))) }

// SetFaults replaces the fault-injection settings.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Calls returns how many requests each operation received, rejected ones
// included, keyed "oss.PutObject", "oss.GetObject", "oss.HeadObject",
// "oss.GetObjectMeta" (what the SDK's IsObjectExist sends),
// "oss.DeleteObject", "oss.ListObjectsV2", "oss.PutBucket",
// "oss.DeleteBucket", "oss.GetBucketInfo", "oss.GetBucketAcl",
// "oss.GetBucketVersioning", "oss.PutBucketVersioning",
// "oss.GetBucketLifecycle", "oss.PutBucketLifecycle",
// "oss.DeleteBucketLifecycle" and "oss.Unknown".
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// CallsBy returns the counts of Calls split by principal name (principal →
// operation → n); requests no principal signed are under "".
func (s *Server) CallsBy() map[string]map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]map[string]int, len(s.callsBy))
	for p, m := range s.callsBy {
		out[p] = maps.Clone(m)
	}
	return out
}

// OnCall adds a hook called for each request once its answer is decided,
// just before it is written, on the request's goroutine. Hooks run
// concurrently for concurrent requests and must not block for long.
func (s *Server) OnCall(hook func(Call)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.hooks.Load()
	hooks := make([]func(Call), len(old), len(old)+1)
	copy(hooks, old)
	hooks = append(hooks, hook)
	s.hooks.Store(&hooks)
}

// CreateBucket creates an empty, unversioned bucket without a request; it
// does nothing if the bucket exists.
func (s *Server) CreateBucket(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.buckets[name]; !ok {
		s.buckets[name] = newBucket(name, s.opts.Now())
	}
}

// PutObject stores a copy of body at key without a request (to seed tests
// and demos): no signature, latency, fault or call count. It fails if the
// bucket does not exist or the key is not a valid object name.
func (s *Server) PutObject(bucket, key string, body []byte) error {
	if e := checkKey(key); e != nil {
		return fmt.Errorf("osssim: key %q: %s", key, e.message)
	}
	o := newObject(append([]byte{}, body...), "", s.opts.Now())
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[bucket]
	if !ok {
		return fmt.Errorf("osssim: no bucket %q", bucket)
	}
	b.put(key, o)
	return nil
}

// Objects returns a copy of the objects in bucket whose keys start with
// prefix (nil if there is no such bucket).
func (s *Server) Objects(bucket, prefix string) map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[bucket]
	if !ok {
		return nil
	}
	out := make(map[string][]byte)
	b.keys.withPrefix(prefix, func(k string) bool {
		out[k] = append([]byte(nil), b.objects[k].body...)
		return true
	})
	return out
}

// Start listens on 127.0.0.1:0 and serves in the background. It returns the
// base URL, "http://127.0.0.1:PORT".
func (s *Server) Start() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return "", errors.New("osssim: server already started")
	}
	select {
	case <-s.done:
		return "", errors.New("osssim: server closed")
	default:
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("osssim: listen: %w", err)
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Close
	return "http://" + ln.Addr().String(), nil
}

// Close stops a started server, closes its connections and cuts short the
// latency pauses of requests in flight. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.done) })
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Close(); err != nil {
		return fmt.Errorf("osssim: close: %w", err)
	}
	return nil
}

// request is one request on its way through the emulator.
type request struct {
	r      *http.Request
	bucket string
	key    string
	query  url.Values
	body   []byte
	now    time.Time
}

type handler func(s *Server, q *request) reply

// ServeHTTP implements the OSS REST protocol.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := &request{r: r, now: s.opts.Now()}
	requestID := s.requestID()
	latency := time.Duration(s.latency.Load())

	op, handle := s.route(q)
	rerr := readBody(q)
	s.pause(latency / 2)

	var principal string
	if rerr == nil {
		principal, rerr = s.authenticate(q)
	}
	afterEffect := false
	if rerr == nil {
		rerr, afterEffect = s.injectFault()
	}
	var rp reply
	switch {
	case rerr != nil:
		rp = s.errorReply(rerr, r.Method, requestID, r.Host)
	case handle == nil:
		rp = s.errorReply(errNotAllowed, r.Method, requestID, r.Host)
	default:
		rp = handle(s, q)
		switch {
		case rp.err != nil:
			rp = s.errorReply(rp.err, r.Method, requestID, r.Host)
		case afterEffect:
			rp = s.errorReply(errInternal, r.Method, requestID, r.Host)
		}
	}
	s.pause(latency - latency/2)

	s.record(Call{
		Time: q.now, Principal: principal, Action: op, Bucket: q.bucket, Key: q.key,
		Status: rp.status, Code: rp.code, RequestID: requestID,
	})
	write(w, r.Method, requestID, rp)
}

// pause waits d, or until the server is closed.
func (s *Server) pause(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.done:
	}
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	s.calls[c.Action]++
	by := s.callsBy[c.Principal]
	if by == nil {
		by = make(map[string]int)
		s.callsBy[c.Principal] = by
	}
	by[c.Action]++
	s.mu.Unlock()
	for _, h := range *s.hooks.Load() {
		h(c)
	}
}

func write(w http.ResponseWriter, method, requestID string, rp reply) {
	h := w.Header()
	for k, v := range rp.header {
		h[k] = v
	}
	h.Set("x-oss-request-id", requestID)
	h.Set("Server", "AliyunOSS")
	if method != http.MethodHead && h.Get("Content-Length") == "" {
		h.Set("Content-Length", strconv.Itoa(len(rp.body)))
	}
	w.WriteHeader(rp.status)
	if method != http.MethodHead && len(rp.body) > 0 {
		w.Write(rp.body) //nolint:errcheck // the client went away; nothing to do
	}
}

// requestID returns a 24-hex-digit id shaped like OSS's.
func (s *Server) requestID() string {
	const digits = "0123456789ABCDEF"
	var buf [24]byte
	p, n := s.idPrefix, s.seq.Add(1)
	for i := 7; i >= 0; i-- {
		buf[i] = digits[p&15]
		p >>= 4
	}
	for i := 23; i >= 8; i-- {
		buf[i] = digits[n&15]
		n >>= 4
	}
	return string(buf[:])
}

// injectFault decides the fault for one authenticated request: an error to
// answer now, or whether to fail the answer after the action took effect.
func (s *Server) injectFault() (*apiError, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &s.faults
	throttle := false
	switch {
	case f.ThrottleNext > 0:
		f.ThrottleNext--
		throttle = true
	case f.ServerErrorNext > 0:
		f.ServerErrorNext--
		return errInternal, false
	case f.ThrottleRate > 0 && s.rng.Float64() < f.ThrottleRate:
		throttle = true
	case f.ServerErrorRate > 0 && s.rng.Float64() < f.ServerErrorRate:
		return errInternal, false
	}
	if throttle {
		if f.ThrottleStatus == http.StatusTooManyRequests {
			return errThrottled429, false
		}
		return errThrottled, false
	}
	switch {
	case f.ErrorAfterEffectNext > 0:
		f.ErrorAfterEffectNext--
		return nil, true
	case f.ErrorAfterEffectRate > 0 && s.rng.Float64() < f.ErrorAfterEffectRate:
		return nil, true
	}
	return nil, false
}

// readBody reads the body of a PUT or POST, up to MaxObjectBytes.
func readBody(q *request) *apiError {
	r := q.r
	if r.Method != http.MethodPut && r.Method != http.MethodPost || r.Body == nil || r.ContentLength == 0 {
		return nil
	}
	if r.ContentLength > MaxObjectBytes {
		return newError(http.StatusBadRequest, CodeEntityTooLarge, "Your proposed upload exceeds the maximum allowed size.")
	}
	var body []byte
	var err error
	if r.ContentLength > 0 {
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(io.LimitReader(r.Body, MaxObjectBytes+1))
		if err == nil && len(body) > MaxObjectBytes {
			return newError(http.StatusBadRequest, CodeEntityTooLarge, "Your proposed upload exceeds the maximum allowed size.")
		}
	}
	if err != nil {
		return invalidArgument("The request body could not be read: " + err.Error())
	}
	q.body = body
	return nil
}

// route splits the request into bucket, key and operation.
func (s *Server) route(q *request) (op string, h handler) {
	r := q.r
	q.query = r.URL.Query()
	path := r.URL.Path
	host := r.Host
	if hn, _, err := net.SplitHostPort(host); err == nil {
		host = hn
	}
	if b, ok := strings.CutSuffix(host, "."+s.opts.Domain); ok && b != "" {
		q.bucket = b
		q.key = strings.TrimPrefix(path, "/")
	} else {
		rest := strings.TrimPrefix(path, "/")
		q.bucket, q.key, _ = strings.Cut(rest, "/")
	}
	if q.bucket == "" {
		return "oss.Unknown", nil
	}
	if q.key == "" {
		return routeBucket(r.Method, q.query)
	}
	for _, sub := range objectSubresources {
		if q.query.Has(sub) {
			return "oss.Unknown", nil
		}
	}
	switch r.Method {
	case http.MethodPut:
		if r.Header.Get("x-oss-copy-source") != "" {
			return "oss.Unknown", nil
		}
		return "oss.PutObject", (*Server).putObject
	case http.MethodGet:
		return "oss.GetObject", (*Server).getObject
	case http.MethodHead:
		if q.query.Has("objectMeta") {
			return "oss.GetObjectMeta", (*Server).headObject
		}
		return "oss.HeadObject", (*Server).headObject
	case http.MethodDelete:
		return "oss.DeleteObject", (*Server).deleteObject
	}
	return "oss.Unknown", nil
}

// objectSubresources are object operations the emulator does not serve.
var objectSubresources = []string{"acl", "tagging", "symlink", "restore", "append", "uploads", "uploadId", "x-oss-process", "select"}

func routeBucket(method string, query url.Values) (string, handler) {
	switch method {
	case http.MethodPut:
		switch {
		case query.Has("versioning"):
			return "oss.PutBucketVersioning", (*Server).putBucketVersioning
		case query.Has("lifecycle"):
			return "oss.PutBucketLifecycle", (*Server).putBucketLifecycle
		case len(query) == 0:
			return "oss.PutBucket", (*Server).putBucket
		}
	case http.MethodGet:
		switch {
		case query.Get("list-type") == "2":
			return "oss.ListObjectsV2", (*Server).listObjectsV2
		case query.Has("versioning"):
			return "oss.GetBucketVersioning", (*Server).getBucketVersioning
		case query.Has("lifecycle"):
			return "oss.GetBucketLifecycle", (*Server).getBucketLifecycle
		case query.Has("bucketInfo"):
			return "oss.GetBucketInfo", (*Server).getBucketInfo
		case query.Has("acl"):
			return "oss.GetBucketAcl", (*Server).getBucketACL
		}
	case http.MethodDelete:
		switch {
		case query.Has("lifecycle"):
			return "oss.DeleteBucketLifecycle", (*Server).deleteBucketLifecycle
		case len(query) == 0:
			return "oss.DeleteBucket", (*Server).deleteBucket
		}
	}
	return "oss.Unknown", nil
}
