// Package mnssim is a local emulator of Alibaba Cloud MNS (Simple Message
// Queue) queues: an http.Handler speaking the MNS REST/XML protocol that the
// real aliyun-mns-go-sdk drives (signature verified, errors shaped like the
// service's), plus an in-process API (Receive, Delete, ChangeVisibility,
// Depth) that the EventBridge event-stream emulator consumes without HTTP.
//
// Topics (topic.go) accept PublishMessage ("mns.PublishMessage" in Calls) and
// keep what was published for inspection; they have no subscribers.
//
// Queues hold messages with priority (1 = most urgent), per-message delay,
// visibility timeouts, single-use receipt handles and a retention period.
// Everything is goroutine-safe; one Server can serve tests in-process and a
// long-running demo over 127.0.0.1.
//
// Besides one key pair the server accepts a set of named ones
// (Options.Principals, one per calling function) and counts each HTTP
// request under the principal whose key signed it (CallsBy). With a Latency
// every HTTP request takes a real round trip: half before its operation takes
// effect, half after.
//
// The in-process methods return the sentinel errors ErrQueueNotExist,
// ErrMessageNotExist, ErrReceiptHandle, ErrInvalidArgument, ErrClosed and
// ErrTopicNotExist (test with errors.Is), or the context's error. They do not
// use shared/fault: the emulator plays the service, it does not classify.
package mnssim

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
)

// Sentinel errors of the in-process API.
var (
	// ErrQueueNotExist: no queue with that name.
	ErrQueueNotExist = errors.New("mnssim: queue does not exist")
	// ErrMessageNotExist: the receipt handle is stale, already used, or its
	// visibility window has ended.
	ErrMessageNotExist = errors.New("mnssim: message does not exist")
	// ErrReceiptHandle: the receipt handle was never issued by this emulator.
	ErrReceiptHandle = errors.New("mnssim: receipt handle is not valid")
	// ErrInvalidArgument: a value is out of the range MNS accepts.
	ErrInvalidArgument = errors.New("mnssim: invalid argument")
	// ErrClosed: the server was closed while a Receive was waiting.
	ErrClosed = errors.New("mnssim: server closed")
)

// Service limits and defaults, as documented for MNS (cloud-apis.md §6).
const (
	// MaxBatch is the most messages in one batch send, receive or delete.
	MaxBatch = 16
	// MaxBodyBytes is the largest MessageBody (and batch total) in bytes,
	// unless the queue's MaximumMessageSize is smaller.
	MaxBodyBytes = 65536
	// MaxDelaySeconds is the longest message delay (7 days).
	MaxDelaySeconds = 604800
	// MaxWaitSeconds is the longest long poll.
	MaxWaitSeconds = 30
	// MaxVisibility is the longest visibility timeout, in seconds (12 h).
	MaxVisibility = 43200
	// DefaultPriority applies when a message has no Priority element.
	DefaultPriority = 8

	dateSkew        = 15 * time.Minute
	maxRequestBytes = 4 << 20
)

// Options configures a Server.
type Options struct {
	// AccessKeyID and AccessKeySecret are a key pair accepted (the
	// principal named ""). With both empty and no Principals, requests are
	// not authenticated at all.
	AccessKeyID, AccessKeySecret string
	// SecurityToken, if set, must arrive in the security-token header.
	SecurityToken string
	// Principals are further key pairs accepted, each with its own STS
	// token (required in the security-token header when set). Requests are
	// attributed to the principal whose access key id they carry; the pair
	// above wins over a principal with the same key id.
	Principals callers.Set
	// Latency is how long every HTTP request takes: half of it before the
	// operation takes effect, half after, so the caller waits a full round
	// trip. Change it later with SetLatency. The in-process API has none.
	Latency time.Duration
	// Now is the clock for enqueue times, delays, visibility and retention;
	// time.Now when nil. The Date header is checked against the real clock,
	// since the SDK stamps it with time.Now, and Receive waits with real
	// timers.
	Now func() time.Time
	// Seed makes message IDs, receipt handles, request IDs and injected
	// faults reproducible.
	Seed int64
}

// Faults injects failures into SendMessage and BatchSendMessage requests.
// A failed send stores nothing and answers HTTP 500 InternalError, or 503
// ServiceUnavailable when Status is 503.
type Faults struct {
	SendFailRate float64 // probability that a send request fails
	SendFailNext int     // the next N send requests fail
	Status       int     // 500 (default) or 503
}

// Message is a message as stored by the emulator.
type Message struct {
	ID               string
	Body             string // exactly as sent on the wire (base64 text)
	BodyMD5          string // upper-case hex MD5 of Body, as MNS reports it
	ReceiptHandle    string // last handle issued; valid only while VisibleAt is ahead
	Priority         int
	DelaySeconds     int
	EnqueueTime      time.Time
	VisibleAt        time.Time
	FirstDequeueTime time.Time // zero until first received
	DequeueCount     int
	Queue            string
	// Principal names who sent it over HTTP ("" for the Options.AccessKeyID
	// pair, an unauthenticated server, or the in-process API).
	Principal string
}

// Server is the emulator. It implements http.Handler; Start also serves it on
// 127.0.0.1. The zero value is not usable: call New.
type Server struct {
	opts Options

	mu      sync.Mutex
	queues  map[string]*queue
	topics  *topics // topic.go
	calls   map[string]int
	callsBy map[string]map[string]int
	keys    map[string]callers.Principal // access key id → principal
	latency atomic.Int64                 // time.Duration
	sent    map[string]int
	faults  Faults
	rng     *rand.Rand
	seq     uint64
	hooks   []func(Message)
	changed chan struct{} // closed and replaced on every state change
	done    chan struct{} // closed by Close
	closed  bool
	httpSrv *http.Server
	// failedSends counts the send requests an injected fault failed.
	failedSends int
}

// New returns a Server with no queues.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	seed := uint64(opts.Seed)
	s := &Server{
		opts:    opts,
		queues:  make(map[string]*queue),
		topics:  newTopics(),
		calls:   make(map[string]int),
		callsBy: make(map[string]map[string]int),
		keys:    keyIndex(opts),
		sent:    make(map[string]int),
		rng:     rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15)),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.latency.Store(int64(opts.Latency))
	return s
}

// Start serves the emulator on a free port of 127.0.0.1 and returns its base
// URL ("http://127.0.0.1:PORT"). It can be called once.
func (s *Server) Start() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", ErrClosed
	}
	if s.httpSrv != nil {
		return "", errors.New("mnssim: already started")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("mnssim: listen: %w", err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.httpSrv = srv
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// Close stops the HTTP server (if started) and wakes every waiting Receive,
// which then returns ErrClosed. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	srv := s.httpSrv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Close(); err != nil {
		return fmt.Errorf("mnssim: close: %w", err)
	}
	return nil
}

// SetFaults replaces the fault-injection settings.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Calls returns how many HTTP requests each operation received, keyed
// "mns.SendMessage", "mns.BatchSendMessage", "mns.ReceiveMessage",
// "mns.BatchReceiveMessage", "mns.PeekMessage", "mns.BatchPeekMessage",
// "mns.DeleteMessage", "mns.BatchDeleteMessage",
// "mns.ChangeMessageVisibility", "mns.CreateQueue", "mns.SetQueueAttributes",
// "mns.GetQueueAttributes", "mns.DeleteQueue", "mns.ListQueue" and
// "mns.Unknown". Requests are counted whether or not they succeed; calls of
// the in-process API are not counted.
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// CallsBy returns how many HTTP requests each principal made, by principal
// name and then by the names Calls uses. A request is counted under the
// principal whose access key id it carries, even when it is rejected (a bad
// signature or token is still that caller's call); a request carrying a key
// no principal holds is counted only in Calls. When the server does not
// authenticate, every request counts under "".
func (s *Server) CallsBy() map[string]map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]map[string]int, len(s.callsBy))
	for name, calls := range s.callsBy {
		out[name] = maps.Clone(calls)
	}
	return out
}

// SetLatency changes Options.Latency for the requests that arrive from now on.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

// Sent returns how many messages the queue accepted since the server started
// (over HTTP or in-process), including deleted ones.
func (s *Server) Sent(queue string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[queue]
}

// FailedSends returns how many send requests an injected fault failed.
func (s *Server) FailedSends() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failedSends
}

// OnSend registers a hook called, in registration order, after each message
// is accepted. Hooks run on the sender's goroutine without the server's lock
// held; they must not block for long.
func (s *Server) OnSend(hook func(Message)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, hook)
}

// Wake makes waiting Receive calls look at their queue again; call it after
// moving a fake clock forward.
func (s *Server) Wake() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.broadcastLocked()
}

func (s *Server) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) now() time.Time { return s.opts.Now() }

// newIDLocked returns a message ID shaped like the service's.
func (s *Server) newIDLocked(now time.Time) string {
	s.seq++
	return fmt.Sprintf("%016X-1-%011X-%09X", s.rng.Uint64(), now.UnixMilli(), s.seq)
}

func (s *Server) newRequestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%08X%08X%08X", s.rng.Uint32(), s.rng.Uint32(), s.rng.Uint32())
}

// countCall counts a request of op, under who as well when known.
func (s *Server) countCall(op string, who *callers.Principal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
	if who == nil {
		return
	}
	by := s.callsBy[who.Name]
	if by == nil {
		by = make(map[string]int)
		s.callsBy[who.Name] = by
	}
	by[op]++
}

// failSendLocked decides whether an injected fault hits this send request.
func (s *Server) failSendLocked() (bool, int) {
	status := s.faults.Status
	if status != http.StatusServiceUnavailable {
		status = http.StatusInternalServerError
	}
	if s.faults.SendFailNext > 0 {
		s.faults.SendFailNext--
		s.failedSends++
		return true, status
	}
	if s.faults.SendFailRate > 0 && s.rng.Float64() < s.faults.SendFailRate {
		s.failedSends++
		return true, status
	}
	return false, 0
}

// bodyMD5 returns the upper-case hex MD5 the service reports for a body.
func bodyMD5(body string) string {
	sum := md5.Sum([]byte(body))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// ServeHTTP implements the MNS REST protocol.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := s.newRequestID()
	w.Header().Set("x-mns-request-id", reqID)
	w.Header().Set("Server", "AliyunMQS")
	who := s.claimed(r)
	// The request travels to the service: the operation takes effect after
	// half the round trip, even if the caller gives up meanwhile; the
	// answer is held back for the other half.
	latency := time.Duration(s.latency.Load())
	sleep(nil, latency/2)
	if back := latency - latency/2; back > 0 {
		w = &delayedWriter{ResponseWriter: w, delay: back, cancel: r.Context().Done()}
	}
	rc := &reqCtx{w: w, r: r, reqID: reqID}
	if who != nil {
		rc.principal = who.Name
	}

	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	if err != nil {
		s.countCall("mns.Unknown", who)
		rc.fail(errMalformedXML("the request body could not be read"))
		return
	}
	if len(body) > maxRequestBytes {
		s.countCall("mns.Unknown", who)
		rc.fail(invalidArgument(fmt.Sprintf("The request body is %d bytes, larger than the service accepts.", len(body))))
		return
	}
	rc.body = body

	resource, path, query, err := splitResource(r)
	if err != nil {
		s.countCall("mns.Unknown", who)
		rc.fail(&apiError{http.StatusBadRequest, "InvalidRequestURL", "Http request URL format invalid."})
		return
	}
	rc.query = query
	rt := route(r.Method, path, query, body)
	s.countCall(rt.op, who)
	if aerr := s.authenticate(r, resource, body, who); aerr != nil {
		rc.fail(aerr)
		return
	}
	if rt.handle == nil {
		rc.fail(&apiError{http.StatusBadRequest, "InvalidRequestURL", "Http request URL format invalid."})
		return
	}
	rt.handle(s, rc, rt.queue)
}

// delayedWriter holds an answer back: the first write of the header or body
// waits delay (or until cancel is closed).
type delayedWriter struct {
	http.ResponseWriter
	delay  time.Duration
	cancel <-chan struct{}
	once   sync.Once
}

func (d *delayedWriter) wait() { d.once.Do(func() { sleep(d.cancel, d.delay) }) }

func (d *delayedWriter) WriteHeader(status int) {
	d.wait()
	d.ResponseWriter.WriteHeader(status)
}

func (d *delayedWriter) Write(b []byte) (int, error) {
	d.wait()
	return d.ResponseWriter.Write(b)
}

// sleep waits d, or until cancel is closed (a nil cancel never is).
func sleep(cancel <-chan struct{}, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-cancel:
	}
}

// splitResource returns the signed resource (path + raw query, with any path
// prefix before "/queues" removed, sdk-notes §3.2 option 2), the path and the
// parsed query.
func splitResource(r *http.Request) (resource, path string, query url.Values, err error) {
	raw := r.RequestURI
	if !strings.HasPrefix(raw, "/") {
		u, perr := url.Parse(raw)
		if perr != nil {
			return "", "", nil, fmt.Errorf("parse request URI: %w", perr)
		}
		raw = u.EscapedPath()
		if u.RawQuery != "" {
			raw += "?" + u.RawQuery
		}
	}
	path, rawQuery, _ := strings.Cut(raw, "?")
	i := strings.Index(path, "/queues")
	if t := topicResource(path); t > 0 && (i < 0 || t < i) {
		i = t
	}
	if i > 0 {
		raw = raw[i:]
		path = path[i:]
	}
	query, err = url.ParseQuery(rawQuery)
	if err != nil {
		return "", "", nil, fmt.Errorf("parse query: %w", err)
	}
	return raw, path, query, nil
}

type handler func(s *Server, rc *reqCtx, queue string)

type routed struct {
	op     string
	queue  string
	handle handler
}

func route(method, path string, query url.Values, body []byte) routed {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "queues" && method == http.MethodGet:
		return routed{op: "mns.ListQueue", handle: (*Server).httpListQueues}
	case len(parts) == 2 && parts[0] == "queues":
		q := parts[1]
		switch method {
		case http.MethodPut:
			if query.Get("metaoverride") == "true" {
				return routed{"mns.SetQueueAttributes", q, (*Server).httpSetQueueAttributes}
			}
			return routed{"mns.CreateQueue", q, (*Server).httpCreateQueue}
		case http.MethodGet:
			return routed{"mns.GetQueueAttributes", q, (*Server).httpGetQueueAttributes}
		case http.MethodDelete:
			return routed{"mns.DeleteQueue", q, (*Server).httpDeleteQueue}
		}
	case len(parts) == 3 && parts[0] == "topics" && parts[2] == "messages" && method == http.MethodPost:
		return routed{"mns.PublishMessage", parts[1], (*Server).httpPublish}
	case len(parts) == 3 && parts[0] == "queues" && parts[2] == "messages":
		q := parts[1]
		switch method {
		case http.MethodPost:
			if rootElement(body) == "Messages" {
				return routed{"mns.BatchSendMessage", q, (*Server).httpBatchSend}
			}
			return routed{"mns.SendMessage", q, (*Server).httpSend}
		case http.MethodGet:
			batch := query.Has("numOfMessages")
			switch {
			case query.Get("peekonly") == "true" && batch:
				return routed{"mns.BatchPeekMessage", q, (*Server).httpReceive}
			case query.Get("peekonly") == "true":
				return routed{"mns.PeekMessage", q, (*Server).httpReceive}
			case batch:
				return routed{"mns.BatchReceiveMessage", q, (*Server).httpReceive}
			default:
				return routed{"mns.ReceiveMessage", q, (*Server).httpReceive}
			}
		case http.MethodDelete:
			if query.Has("ReceiptHandle") {
				return routed{"mns.DeleteMessage", q, (*Server).httpDelete}
			}
			return routed{"mns.BatchDeleteMessage", q, (*Server).httpBatchDelete}
		case http.MethodPut:
			return routed{"mns.ChangeMessageVisibility", q, (*Server).httpChangeVisibility}
		}
	}
	return routed{op: "mns.Unknown"}
}
