// Package rpcsim is a local emulator of an Alibaba Cloud RPC-style OpenAPI
// endpoint (the "?Action=…&Version=…" protocol spoken by the core Go SDK). It
// is the generic half of the project's cloud emulators: product emulators
// (HBR, ECS, RAM) register one [Handler] per action and get, for free, what
// the real API gateway does in front of them:
//
//   - parameters collected from the query string and the form body;
//   - the HMAC-SHA1 request signature, AccessKeyId, SecurityToken, Timestamp
//     (±15 min) and SignatureNonce (no replay) checked;
//   - Version and Action checked and dispatched;
//   - the success envelope (RequestId, Success, Code "200", Message) and the
//     error envelope (RequestId, HostId, Code, Message, Recommend, always with
//     a string Code) written with the gateway's HTTP statuses;
//   - calls counted (in total and per calling principal), observed through
//     hooks, and throttling / 5xx injected;
//   - the round trip of the real API: with a Latency every answered request
//     takes that long, half before its action takes effect and half after.
//
// Besides the single AccessKeyID/AccessKeySecret/SecurityToken it accepts a
// set of named key pairs (Options.Principals, one per calling function) and
// attributes each call to the principal whose key signed it.
//
// A [Server] is an [http.Handler], goroutine-safe, usable in-process from
// tests (httptest or [Server.Start]) and from a long-running demo program.
// Handlers report failures as [*APIError] values, which become error
// responses; nothing in this package returns classified (shared/fault)
// errors, because it is a server, not a client.
package rpcsim

import (
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
)

// TimestampLayout is the format of the Timestamp parameter.
const TimestampLayout = "2006-01-02T15:04:05Z"

// MaxClockSkew is how far a request's Timestamp may be from the server's
// wall clock before it is rejected with InvalidTimeStamp.Expired.
const MaxClockSkew = 15 * time.Minute

// maxBody bounds the form body a request may carry.
const maxBody = 1 << 20

// Options configures a Server.
type Options struct {
	// Product is the lower-case product code, e.g. "hbr". It prefixes call
	// names ("hbr.DescribeTask") and the default HostId.
	Product string
	// Version is the only API version accepted, e.g. "2017-09-08".
	Version string
	// HostID is echoed in error bodies; default "<Product>.aliyuncs.com".
	HostID string
	// AccessKeyID and AccessKeySecret are a key pair accepted (the
	// principal named ""); Principals adds more.
	AccessKeyID, AccessKeySecret string
	// SecurityToken, if non-empty, must be carried by every request; if
	// empty, requests must carry none.
	SecurityToken string
	// Principals are further key pairs accepted, each with its own STS
	// token rule (as SecurityToken above). Calls are attributed to the
	// principal whose access key id they carry; the pair above is the
	// principal named "" and wins over a principal with the same key id.
	Principals callers.Set
	// Latency is how long every answered request takes: half of it before
	// the action takes effect, half after, so the caller waits a full round
	// trip. Change it later with SetLatency.
	Latency time.Duration
	// Now is the simulated time handed to handlers and stamped on calls.
	// Default time.Now.
	Now func() time.Time
	// WallClock is what request Timestamps and nonce expiry are checked
	// against. Default time.Now. The real SDK signs with the real clock, so
	// keep this real when Now is a simulated clock.
	WallClock func() time.Time
	// Seed seeds request IDs and injected-fault randomness.
	Seed int64
}

// Request is one authenticated call handed to a Handler.
type Request struct {
	// Action is the API name (the Action parameter).
	Action string
	// Method is the HTTP method (GET or POST).
	Method string
	// Params holds every parameter, query ∪ form (form wins), including the
	// common ones (AccessKeyId, Timestamp, …); one value per key.
	Params map[string]string
	// Time is Options.Now at the start of the request.
	Time time.Time
	// Principal is the name of the principal that signed the request (""
	// for the Options.AccessKeyID pair).
	Principal string
}

// Handler serves one action. It returns the operation's response fields
// (RequestId, Success, Code and Message are added unless already present) or
// an API error. It is called concurrently.
type Handler func(req Request) (resp map[string]any, err *APIError)

// APIError is an error response: HTTP status plus the gateway's string Code
// and Message.
type APIError struct {
	HTTPStatus int
	Code       string
	Message    string
}

// Error implements error.
func (e *APIError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.HTTPStatus, e.Code, e.Message)
}

// Errorf builds an APIError with a formatted message.
func Errorf(status int, code, format string, args ...any) *APIError {
	return &APIError{HTTPStatus: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// MissingParameter is the gateway's 400 MissingParameter error for name.
func MissingParameter(name string) *APIError {
	return Errorf(http.StatusBadRequest, "MissingParameter",
		"The input parameter %q that is mandatory for processing this request is not supplied.", name)
}

// InvalidParameter is a 400 InvalidParameter error with a message naming the
// problem.
func InvalidParameter(format string, args ...any) *APIError {
	return Errorf(http.StatusBadRequest, "InvalidParameter", format, args...)
}

// Faults injects failures into calls that passed authentication, before the
// action runs (a throttled call has no effect). The *Next counters are used
// up first, one per call; then the rates apply.
type Faults struct {
	// ThrottleRate is the probability [0,1] that a call gets HTTP 400
	// Throttling.User.
	ThrottleRate float64
	// ServerErrorRate is the probability [0,1] that a call gets a server
	// error (see ServerErrorStatus).
	ServerErrorRate float64
	// ThrottleNext throttles the next N calls.
	ThrottleNext int
	// ServerErrorNext fails the next N calls (after any throttled ones) with
	// a server error.
	ServerErrorNext int
	// ServerErrorStatus selects the server error: 503 ServiceUnavailable
	// (default) or 500 InternalError.
	ServerErrorStatus int
}

// Call records one request, accepted or rejected.
type Call struct {
	// Time is Options.Now when the request arrived.
	Time time.Time
	// Action is the Action parameter ("" if absent).
	Action string
	// Method is the HTTP method.
	Method string
	// Params holds query ∪ form parameters; SecurityToken and Signature
	// values are masked.
	Params map[string]string
	// Status is the HTTP status sent.
	Status int
	// Code is the error code sent, "" on success.
	Code string
	// RequestID is the RequestId sent.
	RequestID string
	// Response is the success body sent (nil on error). Do not modify it.
	Response map[string]any
	// Principal is the name of the principal whose access key id the
	// request carries, whether or not its signature and token checked out
	// ("" for the Options.AccessKeyID pair, and for a key nobody holds).
	Principal string
}

// Server is an RPC-style OpenAPI emulator. Create it with New.
type Server struct {
	opts Options

	mu       sync.Mutex
	handlers map[string]Handler
	calls    map[string]int
	callsBy  map[string]map[string]int
	keys     map[string]callers.Principal // access key id → principal
	latency  atomic.Int64                 // time.Duration
	hooks    []func(Call)
	faults   Faults
	rng      *rand.Rand
	nonces   map[string]time.Time
	nonceQ   []nonceSeen
	srv      *http.Server
}

type nonceSeen struct {
	nonce string
	at    time.Time
}

// New returns a Server with no actions registered.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WallClock == nil {
		opts.WallClock = time.Now
	}
	if opts.HostID == "" {
		opts.HostID = opts.Product + ".aliyuncs.com"
	}
	seed := uint64(opts.Seed)
	s := &Server{
		opts:     opts,
		handlers: make(map[string]Handler),
		calls:    make(map[string]int),
		callsBy:  make(map[string]map[string]int),
		keys:     keyIndex(opts.AccessKeyID, opts.AccessKeySecret, opts.SecurityToken, opts.Principals),
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		nonces:   make(map[string]time.Time),
	}
	s.latency.Store(int64(opts.Latency))
	return s
}

// keyIndex maps each accepted access key id to its principal: the single
// pair as the principal named "", then the set (the first holder of a key id
// wins).
func keyIndex(id, secret, token string, set callers.Set) map[string]callers.Principal {
	keys := make(map[string]callers.Principal, len(set)+1)
	if id != "" {
		keys[id] = callers.Principal{Credentials: cloudauth.Credentials{AccessKeyID: id, AccessKeySecret: secret, SecurityToken: token}}
	}
	for _, p := range set {
		if _, dup := keys[p.Credentials.AccessKeyID]; !dup && p.Credentials.AccessKeyID != "" {
			keys[p.Credentials.AccessKeyID] = p
		}
	}
	return keys
}

// Handle registers h for action, replacing any previous handler.
func (s *Server) Handle(action string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[action] = h
}

// SetFaults replaces the fault-injection settings.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Calls returns a snapshot of request counts keyed "<product>.<Action>",
// including rejected requests.
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// CallsBy returns a snapshot of request counts by principal name, then by
// "<product>.<Action>", as Calls counts them. A request is counted under the
// principal whose access key id it carries, even when it is rejected (a bad
// signature or token is still that caller's call); a request carrying a key
// no principal holds is counted only in Calls.
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

// OnCall adds a hook called after each request has been answered, on the
// request's goroutine. Hooks run concurrently for concurrent requests and must
// not block for long.
func (s *Server) OnCall(hook func(Call)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, hook)
}

// Rand runs fn with the server's seeded random source, under the server's
// lock, so product emulators can draw IDs deterministically. fn must not call
// back into the Server.
func (s *Server) Rand(fn func(r *rand.Rand)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.rng)
}

// Start listens on 127.0.0.1:0 and serves in the background. It returns the
// base URL, "http://127.0.0.1:PORT".
func (s *Server) Start() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return "", errors.New("rpcsim: server already started")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("rpcsim: listen: %w", err)
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Close
	return "http://" + ln.Addr().String(), nil
}

// Close stops a started server and closes its connections. It is a no-op if
// the server was never started.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Close(); err != nil {
		return fmt.Errorf("rpcsim: close: %w", err)
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := s.opts.Now()
	latency := time.Duration(s.latency.Load())
	params, perr := collectParams(r)
	action := params["Action"]
	principal, known := s.keys[params["AccessKeyId"]] // never "": keyIndex skips it
	name := s.opts.Product + "." + action

	s.mu.Lock()
	s.calls[name]++
	if known {
		by := s.callsBy[principal.Name]
		if by == nil {
			by = make(map[string]int)
			s.callsBy[principal.Name] = by
		}
		by[name]++
	}
	s.mu.Unlock()

	// The request travels to the service: the action takes effect after
	// half the round trip, even if the caller gives up meanwhile.
	sleep(nil, latency/2)
	var resp map[string]any
	apiErr := perr
	if apiErr == nil {
		var p *callers.Principal
		if known {
			p = &principal
		}
		resp, apiErr = s.serve(r.Method, params, now, p)
	}

	call := Call{Time: now, Action: action, Method: r.Method, Params: maskParams(params), Principal: principal.Name}
	call.RequestID = s.requestID()
	// The answer travels back.
	sleep(r.Context().Done(), latency-latency/2)
	if apiErr != nil {
		call.Status, call.Code = s.writeError(w, call.RequestID, apiErr)
	} else {
		call.Status = http.StatusOK
		call.Response = s.writeSuccess(w, call.RequestID, resp)
	}

	s.mu.Lock()
	hooks := s.hooks
	s.mu.Unlock()
	for _, h := range hooks {
		h(call)
	}
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

// serve authenticates the request as p (nil: an unknown key), applies
// faults and runs the handler.
func (s *Server) serve(method string, p map[string]string, now time.Time, who *callers.Principal) (map[string]any, *APIError) {
	if method != http.MethodGet && method != http.MethodPost {
		return nil, Errorf(http.StatusMethodNotAllowed, "UnsupportedHTTPMethod",
			"Specified HTTP method %q is not supported.", method)
	}
	for _, name := range requiredParams {
		if p[name] == "" {
			return nil, MissingParameter(name)
		}
	}
	if _, ok := p["Signature"]; !ok {
		return nil, Errorf(http.StatusBadRequest, "IncompleteSignature",
			"The request signature does not conform to Aliyun standards: Signature is missing.")
	}
	if p["Version"] != s.opts.Version {
		return nil, Errorf(http.StatusNotFound, "InvalidVersion",
			"Specified parameter Version is not valid: %q.", p["Version"])
	}
	s.mu.Lock()
	h := s.handlers[p["Action"]]
	s.mu.Unlock()
	if h == nil {
		return nil, Errorf(http.StatusNotFound, "InvalidAction.NotFound",
			"Specified api is not found, please check your url and method.")
	}
	if who == nil {
		return nil, Errorf(http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
	}
	if err := s.authenticate(method, p, who.Credentials); err != nil {
		return nil, err
	}
	if err := s.injectFault(); err != nil {
		return nil, err
	}
	return runHandler(h, Request{Action: p["Action"], Method: method, Params: p, Time: now, Principal: who.Name})
}

// requiredParams are the parameters every request must carry, checked in
// this order.
var requiredParams = []string{"Action", "Version", "AccessKeyId", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp"}

// authenticate checks a request carrying cred's access key id against cred.
func (s *Server) authenticate(method string, p map[string]string, cred cloudauth.Credentials) *APIError {
	if p["SignatureMethod"] != "HMAC-SHA1" || p["SignatureVersion"] != "1.0" {
		return Errorf(http.StatusBadRequest, "IncompleteSignature",
			"The request signature does not conform to Aliyun standards: unsupported SignatureMethod/SignatureVersion.")
	}
	switch token, has := p["SecurityToken"]; {
	case cred.SecurityToken != "" && !has:
		return Errorf(http.StatusBadRequest, "MissingSecurityToken", "SecurityToken is mandatory for this request.")
	case token != cred.SecurityToken:
		return Errorf(http.StatusBadRequest, "InvalidSecurityToken.MismatchWithAccessKey",
			"Specified SecurityToken mismatch with the AccessKey.")
	}
	ts, err := time.Parse(TimestampLayout, p["Timestamp"])
	if err != nil {
		return Errorf(http.StatusBadRequest, "InvalidTimeStamp.Format",
			"Specified time stamp or date value is not well formatted.")
	}
	wall := s.opts.WallClock()
	if d := wall.Sub(ts); d > MaxClockSkew || d < -MaxClockSkew {
		return Errorf(http.StatusBadRequest, "InvalidTimeStamp.Expired",
			"Specified time stamp or date value is expired.")
	}
	if want := signParams(method, p, cred.AccessKeySecret); !hmac.Equal([]byte(want), []byte(p["Signature"])) {
		values := make(url.Values, len(p))
		for k, v := range p {
			values.Set(k, v)
		}
		return Errorf(http.StatusBadRequest, "SignatureDoesNotMatch",
			"Specified signature is not matched with our calculation. server string to sign is:%s",
			StringToSign(method, values))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneNonces(wall)
	if _, used := s.nonces[p["SignatureNonce"]]; used {
		return Errorf(http.StatusBadRequest, "SignatureNonceUsed", "Specified signature nonce was used already.")
	}
	s.nonces[p["SignatureNonce"]] = wall
	s.nonceQ = append(s.nonceQ, nonceSeen{nonce: p["SignatureNonce"], at: wall})
	return nil
}

// pruneNonces forgets nonces older than twice the accepted skew: a request
// reusing one would be rejected for its Timestamp anyway. Callers hold s.mu.
func (s *Server) pruneNonces(wall time.Time) {
	cut := 0
	for cut < len(s.nonceQ) && wall.Sub(s.nonceQ[cut].at) > 2*MaxClockSkew {
		delete(s.nonces, s.nonceQ[cut].nonce)
		cut++
	}
	s.nonceQ = s.nonceQ[cut:]
}

func (s *Server) injectFault() *APIError {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &s.faults
	throttle, serverErr := false, false
	switch {
	case f.ThrottleNext > 0:
		f.ThrottleNext--
		throttle = true
	case f.ServerErrorNext > 0:
		f.ServerErrorNext--
		serverErr = true
	case f.ThrottleRate > 0 && s.rng.Float64() < f.ThrottleRate:
		throttle = true
	case f.ServerErrorRate > 0 && s.rng.Float64() < f.ServerErrorRate:
		serverErr = true
	}
	switch {
	case throttle:
		return Errorf(http.StatusBadRequest, "Throttling.User", "Request was denied due to user flow control.")
	case serverErr && f.ServerErrorStatus == http.StatusInternalServerError:
		return Errorf(http.StatusInternalServerError, "InternalError",
			"The request processing has failed due to some unknown error, exception or failure.")
	case serverErr:
		return Errorf(http.StatusServiceUnavailable, "ServiceUnavailable",
			"The request has failed due to a temporary failure of the server.")
	}
	return nil
}

// runHandler calls h, turning a panic (an emulator bug) into a 500 so the
// client sees a well-formed error.
func runHandler(h Handler, req Request) (resp map[string]any, apiErr *APIError) {
	defer func() {
		if v := recover(); v != nil {
			resp, apiErr = nil, Errorf(http.StatusInternalServerError, "InternalError",
				"The request processing has failed due to some unknown error: emulator handler panicked: %v", v)
		}
	}()
	resp, apiErr = h(req)
	if apiErr == nil && resp == nil {
		resp = map[string]any{}
	}
	return resp, apiErr
}

func (s *Server) writeSuccess(w http.ResponseWriter, requestID string, resp map[string]any) map[string]any {
	body := make(map[string]any, len(resp)+4)
	for k, v := range resp {
		body[k] = v
	}
	setDefault(body, "RequestId", requestID)
	setDefault(body, "Success", true)
	setDefault(body, "Code", "200")
	setDefault(body, "Message", "successful")
	data, err := json.Marshal(body)
	if err != nil {
		s.writeError(w, requestID, Errorf(http.StatusInternalServerError, "InternalError",
			"emulator could not encode its response: %v", err))
		return nil
	}
	writeJSON(w, requestID, http.StatusOK, data)
	return body
}

func (s *Server) writeError(w http.ResponseWriter, requestID string, e *APIError) (int, string) {
	status := e.HTTPStatus
	if status == 0 {
		status = http.StatusBadRequest
	}
	data, _ := json.Marshal(map[string]string{ // cannot fail: all strings
		"RequestId": requestID,
		"HostId":    s.opts.HostID,
		"Code":      e.Code,
		"Message":   e.Message,
		"Recommend": "https://api.aliyun.com/troubleshoot?q=" + url.QueryEscape(e.Code) + "&product=" + s.opts.Product,
	})
	writeJSON(w, requestID, status, data)
	return status, e.Code
}

func writeJSON(w http.ResponseWriter, requestID string, status int, data []byte) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Header().Set("x-acs-request-id", requestID)
	w.WriteHeader(status)
	w.Write(data) //nolint:errcheck // the client went away; nothing to do
}

func (s *Server) requestID() string {
	s.mu.Lock()
	a, b := s.rng.Uint64(), s.rng.Uint64()
	s.mu.Unlock()
	return strings.ToUpper(fmt.Sprintf("%08x-%04x-%04x-%04x-%012x",
		a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff))
}

func setDefault(m map[string]any, key string, v any) {
	if _, ok := m[key]; !ok {
		m[key] = v
	}
}

// collectParams returns query ∪ form (form wins), first value per key.
func collectParams(r *http.Request) (map[string]string, *APIError) {
	p := make(map[string]string)
	for k, v := range r.URL.Query() {
		p[k] = v[0]
	}
	if r.Body == nil || r.Method == http.MethodGet {
		return p, nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return p, InvalidParameter("The request body could not be read: %v", err)
	}
	if len(body) == 0 || (ct != "" && ct != "application/x-www-form-urlencoded") {
		return p, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return p, InvalidParameter("The form body is malformed: %v", err)
	}
	for k, v := range form {
		p[k] = v[0]
	}
	return p, nil
}

func maskParams(p map[string]string) map[string]string {
	out := make(map[string]string, len(p))
	for k, v := range p {
		if k == "SecurityToken" || k == "Signature" {
			v = "***"
		}
		out[k] = v
	}
	return out
}
