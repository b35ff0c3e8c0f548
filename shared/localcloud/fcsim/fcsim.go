// Package fcsim emulates the Function Compute 3.0 go1 runtime API and runs a
// real compiled function binary under it, so tests and the local demo drive
// exactly the code that is deployed.
//
// Each instance is one process with its own loopback runtime API listener
// (FC_RUNTIME_API=127.0.0.1:PORT). The process long-polls GET .../next, gets
// one invocation at a time (FC 3.0 standard runtimes have no instance
// concurrency) and answers with POST .../{id}/response or .../{id}/error.
// fcsim enforces the function timeout itself (the SDK only cancels the
// handler's context) by killing and later replacing the instance, and turns a
// process that dies mid-invocation into an "InstanceCrashed" error.
//
// Errors: [Start] and [Function.Invoke] return fault.Invalid for a bad
// Config or bad options, fault.Permanent when the binary cannot be started or
// exits before it polls, fault.Retryable when an instance does not poll within
// StartTimeout, [ErrClosed] after Close, and the context's error (wrapped) when
// the caller's context ends. A failing function is not an error: it is
// reported in [Result.Err].
package fcsim

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

// Defaults applied by [Start] to zero Config fields.
const (
	DefaultTimeout      = 3 * time.Second // FC 3.0 default function timeout
	DefaultMemoryMB     = 128
	DefaultRegion       = "cn-hangzhou"
	DefaultAccountID    = "1234567890123456"
	DefaultGrace        = 250 * time.Millisecond
	DefaultStartTimeout = 15 * time.Second
	// MaxPayload is the synchronous invocation body limit (32 MB).
	MaxPayload = 32 << 20
)

// Error types fcsim itself puts in [InvokeError.Type].
const (
	ErrorTypeTimeout         = "Timeout"
	ErrorTypeInstanceCrashed = "InstanceCrashed"
)

// ErrClosed is returned by Invoke once the Function is closed.
var ErrClosed = errors.New("fcsim: function is closed")

var functionName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,63}$`)

// Config describes one function and how to run it.
type Config struct {
	// Name is the function name (x-fc-function-name, FC_FUNCTION_NAME).
	Name string
	// Binary is the path of the compiled function binary.
	Binary string
	// Env is extra environment for the process, merged over a minimal base
	// (PATH, HOME, TMPDIR). The FC_* and ALIBABA_CLOUD_* variables fcsim sets
	// win over Env.
	Env map[string]string
	// Timeout is the function timeout, enforced by fcsim. Default 3 s.
	Timeout time.Duration
	// MemoryMB is reported to the function. Default 128.
	MemoryMB int
	// Region and AccountID are reported to the function (headers and
	// FC_REGION / FC_ACCOUNT_ID). Defaults DefaultRegion, DefaultAccountID.
	Region, AccountID string
	// Credentials are sent with every invocation (x-fc-access-key-id,
	// x-fc-access-key-secret, x-fc-security-token) and set as the
	// ALIBABA_CLOUD_* environment variables. Empty fields are not sent.
	Credentials cloudauth.Credentials
	// InstanceCredentials, when set, gives the processes of each instance
	// slot (0..MaxInstances-1) credentials of their own, used instead of
	// Credentials in the invocations and the environment: an emulator that
	// knows them can tell which process made a call (see Kill).
	InstanceCredentials func(index int) cloudauth.Credentials
	// MaxInstances bounds the processes run at once. Default 1.
	MaxInstances int
	// Output receives every stdout and stderr line of every process, without
	// the trailing newline. Calls are serialised; the slice is the callee's.
	Output func(function string, instance int, line []byte)
	// Grace is how long past the deadline fcsim waits for an answer before it
	// declares a timeout. Default 250 ms.
	Grace time.Duration
	// StartTimeout bounds how long a new process may take to make its first
	// GET /next. Default 15 s.
	StartTimeout time.Duration
}

// InvokeOptions tune one invocation.
type InvokeOptions struct {
	// RetryCount is sent as x-fc-retry-count (the caller's retry number).
	RetryCount int
	// RequestID is sent as x-fc-request-id; a UUID is generated when empty.
	RequestID string
	// Crash kills the process that takes this invocation CrashAfter after
	// it was handed over, unless it answered first: fault injection for an
	// out-of-memory kill or a crash mid-invocation. The invocation fails
	// with InstanceCrashed; no other process is touched, and the slot gets
	// a fresh process on demand.
	Crash      bool
	CrashAfter time.Duration
}

// Result is the outcome of one invocation.
type Result struct {
	RequestID string
	// Body is the /response body (the handler's JSON result); nil on error.
	Body []byte
	// Err is set when the function failed: its /error body, or a Timeout or
	// InstanceCrashed error produced by fcsim.
	Err *InvokeError
	// Duration runs from handing the event to the process to its answer.
	Duration time.Duration
	// Instance is the index (0..MaxInstances-1) of the instance that ran it.
	Instance int
}

// InvokeError is a function error, decoded from the /error body the SDK posts
// ({"errorMessage","errorType","stackTrace"}), or made by fcsim with Type
// "Timeout" or "InstanceCrashed".
type InvokeError struct {
	Message    string          `json:"errorMessage"`
	Type       string          `json:"errorType"`
	StackTrace json.RawMessage `json:"stackTrace,omitempty"`
}

// Error implements error.
func (e *InvokeError) Error() string {
	if e.Type == "" {
		return e.Message
	}
	return e.Type + ": " + e.Message
}

// InstanceInfo describes the current (or last) process of one instance slot.
type InstanceInfo struct {
	Index int
	PID   int
	// Addr is the instance's runtime API address (FC_RUNTIME_API).
	Addr string
	// Started is when the process was started; FirstNext when it first polled.
	Started, FirstNext time.Time
	// Invocations counts the invocations handed to this process.
	Invocations int
	// Alive is false once the process has exited or was killed.
	Alive bool
	// Restarts counts the processes this slot ran before the current one.
	Restarts int
}

// Function is a running function: up to MaxInstances processes. It is safe
// for concurrent use.
type Function struct {
	cfg Config
	env []string
	// headers are the constant headers of a GET /next reply.
	headers http.Header

	outMu sync.Mutex // serialises cfg.Output

	mu          sync.Mutex
	slots       []*instance // len MaxInstances; nil until first started
	waiters     list.List   // of waiter, first come first served
	closed      bool
	invocations int
	// running counts the invocations a process holds now; peakRunning the
	// most it held at once.
	running, peakRunning int

	// wg counts every goroutine fcsim starts and every Invoke in progress.
	wg sync.WaitGroup
}

// Start validates cfg, starts the first instance and returns once it has made
// its first GET /next, so the cold start is paid here. ctx bounds the start
// only; the processes live until Close.
func Start(ctx context.Context, cfg Config) (*Function, error) {
	const op = "fcsim.Start"
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	f := &Function{
		cfg:   cfg,
		env:   baseEnv(cfg),
		slots: make([]*instance, cfg.MaxInstances),
	}
	f.headers = nextHeaders(f)
	f.wg.Add(1)
	in, err := f.acquire(ctx)
	f.wg.Done()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("%s %s: %w", op, cfg.Name, err)
	}
	f.release(in)
	return f, nil
}

func withDefaults(cfg Config) (Config, error) {
	const op = "fcsim.Start"
	if !functionName.MatchString(cfg.Name) {
		return cfg, fault.Invalidf(op, "function name %q: want 1-64 letters, digits, _ or -, starting with a letter or _", cfg.Name)
	}
	if cfg.Binary == "" {
		return cfg, fault.Invalidf(op, "function %s: Binary is empty", cfg.Name)
	}
	bin, err := filepath.Abs(cfg.Binary)
	if err != nil {
		return cfg, fault.Wrap(op, fault.Invalid, "", fmt.Errorf("binary path %q: %w", cfg.Binary, err))
	}
	st, err := os.Stat(bin)
	if err != nil {
		return cfg, fault.Wrap(op, fault.Invalid, "", fmt.Errorf("function %s binary: %w", cfg.Name, err))
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return cfg, fault.Invalidf(op, "function %s binary %s is not an executable file", cfg.Name, bin)
	}
	cfg.Binary = bin
	if cfg.Timeout < 0 || cfg.MemoryMB < 0 || cfg.MaxInstances < 0 || cfg.Grace < 0 || cfg.StartTimeout < 0 {
		return cfg, fault.Invalidf(op, "function %s: Timeout, MemoryMB, MaxInstances, Grace and StartTimeout must not be negative", cfg.Name)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = DefaultMemoryMB
	}
	if cfg.MaxInstances == 0 {
		cfg.MaxInstances = 1
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.AccountID == "" {
		cfg.AccountID = DefaultAccountID
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	return cfg, nil
}

// baseEnv is the process environment without FC_RUNTIME_API and
// FC_INSTANCE_ID, which differ per instance.
func baseEnv(cfg Config) []string {
	env := map[string]string{
		"PATH":   os.Getenv("PATH"),
		"HOME":   os.Getenv("HOME"),
		"TMPDIR": os.TempDir(),
	}
	if env["PATH"] == "" {
		env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
	}
	if env["HOME"] == "" {
		env["HOME"] = os.TempDir()
	}
	for k, v := range cfg.Env {
		env[k] = v
	}
	env["FC_REGION"] = cfg.Region
	env["FC_ACCOUNT_ID"] = cfg.AccountID
	env["FC_FUNCTION_NAME"] = cfg.Name
	env["FC_FUNCTION_HANDLER"] = "main"
	env["FC_FUNCTION_MEMORY_SIZE"] = strconv.Itoa(cfg.MemoryMB)
	env["FC_FUNC_CODE_PATH"] = filepath.Dir(cfg.Binary)
	delete(env, "ALIBABA_CLOUD_ACCESS_KEY_ID")
	delete(env, "ALIBABA_CLOUD_ACCESS_KEY_SECRET")
	delete(env, "ALIBABA_CLOUD_SECURITY_TOKEN")
	setIf(env, "ALIBABA_CLOUD_ACCESS_KEY_ID", cfg.Credentials.AccessKeyID)
	setIf(env, "ALIBABA_CLOUD_ACCESS_KEY_SECRET", cfg.Credentials.AccessKeySecret)
	setIf(env, "ALIBABA_CLOUD_SECURITY_TOKEN", cfg.Credentials.SecurityToken)
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func setIf(m map[string]string, k, v string) {
	if v != "" {
		m[k] = v
	}
}

// timeoutSeconds is the x-fc-function-timeout value: whole seconds, at least 1.
func (f *Function) timeoutSeconds() int {
	return max(1, int(math.Ceil(f.cfg.Timeout.Seconds())))
}

// Invoke runs one synchronous invocation: it waits for an idle instance
// (starting one while fewer than MaxInstances run), hands payload to the
// instance's pending GET /next and returns its /response or /error. The error
// is only for emulator failures and ctx; function failures are in Result.Err.
// When ctx ends after the event was handed over, Invoke returns at once and
// the invocation runs to its end (or timeout) in the background.
func (f *Function) Invoke(ctx context.Context, payload []byte, opts InvokeOptions) (Result, error) {
	const op = "fcsim.Invoke"
	if opts.RetryCount < 0 {
		return Result{}, fault.Invalidf(op, "function %s: RetryCount %d is negative", f.cfg.Name, opts.RetryCount)
	}
	if len(payload) > MaxPayload {
		return Result{}, fault.Invalidf(op, "function %s: payload of %d bytes exceeds the %d-byte synchronous limit", f.cfg.Name, len(payload), MaxPayload)
	}
	id := opts.RequestID
	if id == "" {
		id = newUUID()
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return Result{RequestID: id}, ErrClosed
	}
	f.wg.Add(1) // this Invoke; handed to the dispatch goroutine below
	f.mu.Unlock()

	in, err := f.acquire(ctx)
	if err != nil {
		f.wg.Done()
		return Result{RequestID: id}, fmt.Errorf("%s %s request %s: %w", op, f.cfg.Name, id, err)
	}
	c := &call{
		id:      id,
		payload: append([]byte(nil), payload...),
		retry:   opts.RetryCount,
		done:    make(chan answer, 1),
		crash:   opts.Crash,
		crashIn: opts.CrashAfter,
	}
	out := make(chan outcome, 1)
	f.mu.Lock()
	f.running++
	f.peakRunning = max(f.peakRunning, f.running)
	f.mu.Unlock()
	go func() {
		defer f.wg.Done()
		o := f.dispatch(ctx, in, c)
		f.mu.Lock()
		f.running--
		f.mu.Unlock()
		out <- o
	}()
	select {
	case o := <-out:
		if o.err != nil {
			return o.res, fmt.Errorf("%s %s request %s: %w", op, f.cfg.Name, id, o.err)
		}
		return o.res, nil
	case <-ctx.Done():
		return Result{RequestID: id, Instance: in.index}, fmt.Errorf("%s %s request %s: %w", op, f.cfg.Name, id, ctx.Err())
	}
}

type outcome struct {
	res Result
	err error
}

// dispatch hands c to in, waits for the answer, a crash or the timeout, and
// releases in. ctx only matters until the event is handed over.
func (f *Function) dispatch(ctx context.Context, in *instance, c *call) outcome {
	res := Result{RequestID: c.id, Instance: in.index}
	c.deadline = time.Now().Add(f.cfg.Timeout)
	timer := time.NewTimer(f.cfg.Timeout + f.cfg.Grace)
	defer timer.Stop()

	f.mu.Lock()
	in.calls[c.id] = c
	f.mu.Unlock()

	var start time.Time
	select {
	case in.work <- c:
		start = time.Now()
		f.mu.Lock()
		f.invocations++
		in.invocations++
		f.mu.Unlock()
		if c.crash {
			crash := time.AfterFunc(c.crashIn, func() { f.crashDuring(in, c) })
			defer crash.Stop()
		}
	case <-in.exited:
		f.forget(in, c)
		return f.crashed(in, res)
	case <-ctx.Done():
		f.forget(in, c)
		f.release(in)
		return outcome{res: res, err: ctx.Err()}
	case <-timer.C:
		f.forget(in, c)
		return f.timedOut(in, res, "the instance did not poll for the event")
	}

	select {
	case a := <-c.done:
		f.release(in)
		return outcome{res: a.result(res, time.Since(start))}
	case <-in.exited:
		select {
		case a := <-c.done: // answered, then exited
			return outcome{res: a.result(res, time.Since(start))}
		default:
		}
		f.forget(in, c)
		res.Duration = time.Since(start)
		return f.crashed(in, res)
	case <-timer.C:
		f.forget(in, c)
		res.Duration = time.Since(start)
		return f.timedOut(in, res, fmt.Sprintf("function timed out after %s", f.cfg.Timeout))
	}
}

// crashed reports an invocation whose instance exited; after Close that is
// ErrClosed rather than a function error.
func (f *Function) crashed(in *instance, res Result) outcome {
	f.mu.Lock()
	closed, exitErr := f.closed, in.exitErr
	f.mu.Unlock()
	if closed {
		return outcome{res: res, err: ErrClosed}
	}
	msg := "instance exited during the invocation"
	if exitErr != nil {
		msg += ": " + exitErr.Error()
	}
	res.Err = &InvokeError{Message: msg, Type: ErrorTypeInstanceCrashed}
	return outcome{res: res}
}

// crashDuring kills in's process if it still holds c (no answer posted
// yet): only then is the crash one of c's invocation.
func (f *Function) crashDuring(in *instance, c *call) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in.calls[c.id] == c {
		in.killLocked()
	}
}

// Kill kills the current process of instance slot index — Function Compute
// losing one instance — and reports whether a live process was there. The
// invocation it holds fails with InstanceCrashed; the other slots' processes
// are not touched, and the slot gets a fresh process on demand.
func (f *Function) Kill(index int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if index < 0 || index >= len(f.slots) || f.slots[index] == nil {
		return false
	}
	return f.slots[index].killLocked()
}

// timedOut kills in (a stuck handler would keep it busy for ever), waits for
// it to go and reports a Timeout. The slot gets a fresh process on demand.
func (f *Function) timedOut(in *instance, res Result, msg string) outcome {
	in.kill()
	<-in.exited
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if closed {
		return outcome{res: res, err: ErrClosed}
	}
	res.Err = &InvokeError{Message: msg, Type: ErrorTypeTimeout}
	return outcome{res: res}
}

func (f *Function) forget(in *instance, c *call) {
	f.mu.Lock()
	delete(in.calls, c.id)
	f.mu.Unlock()
}

// waiter is an acquire waiting for an instance. It receives either an
// instance already marked busy for it, or nil: something changed (a slot was
// freed, the function closed), look again.
type waiter chan *instance

// acquire returns an idle, ready instance marked busy, starting one in a free
// slot when there is none. The caller holds a wg token. Callers that find
// every slot busy queue up and are served in order, one per released
// instance, so a backlog of thousands of invocations costs nothing while it
// waits.
func (f *Function) acquire(ctx context.Context) (*instance, error) {
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return nil, ErrClosed
		}
		for _, in := range f.slots {
			if in.available() {
				in.busy = true
				f.mu.Unlock()
				return in, nil
			}
		}
		for i, old := range f.slots {
			if old != nil && !old.dead {
				continue
			}
			in, err := f.newInstanceLocked(i, old)
			f.mu.Unlock()
			if err != nil {
				return nil, err
			}
			return in, f.launch(ctx, in)
		}
		w := make(waiter, 1)
		el := f.waiters.PushBack(w)
		f.mu.Unlock()
		select {
		case in := <-w:
			if in != nil {
				return in, nil
			}
		case <-ctx.Done():
			f.mu.Lock()
			queued := el.Value != nil
			if queued {
				f.waiters.Remove(el)
				el.Value = nil
			}
			f.mu.Unlock()
			if !queued {
				// Served meanwhile: pass it on.
				if in := <-w; in != nil {
					f.release(in)
				} else {
					f.mu.Lock()
					f.wakeLocked()
					f.mu.Unlock()
				}
			}
			return nil, ctx.Err()
		}
	}
}

// available reports whether in can take an invocation. f.mu is held.
func (in *instance) available() bool {
	return in != nil && !in.dead && in.ready && !in.busy
}

// release marks in idle, or hands it straight to the first waiter.
func (f *Function) release(in *instance) {
	f.mu.Lock()
	in.busy = false
	f.offerLocked(in)
	f.mu.Unlock()
}

// offerLocked hands in, if it can take an invocation, to the first waiter.
func (f *Function) offerLocked(in *instance) {
	if !in.available() || f.waiters.Len() == 0 {
		return
	}
	in.busy = true
	f.popWaiterLocked() <- in
}

// wakeLocked tells the first waiter to look again: a slot was freed.
func (f *Function) wakeLocked() {
	if f.waiters.Len() > 0 {
		f.popWaiterLocked() <- nil
	}
}

// wakeAllLocked tells every waiter to look again: the function closed.
func (f *Function) wakeAllLocked() {
	for f.waiters.Len() > 0 {
		f.popWaiterLocked() <- nil
	}
}

func (f *Function) popWaiterLocked() waiter {
	el := f.waiters.Front()
	f.waiters.Remove(el)
	w := el.Value.(waiter)
	el.Value = nil // tells a cancelled acquire it was served
	return w
}

// PeakConcurrency returns the most invocations the function's processes
// held at once: the concurrent instances Function Compute would have run
// (a standard runtime takes one invocation per instance).
func (f *Function) PeakConcurrency() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.peakRunning
}

// Invocations returns how many invocations were handed to a process.
func (f *Function) Invocations() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.invocations
}

// Instances describes every instance slot started so far, in index order.
func (f *Function) Instances() []InstanceInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []InstanceInfo
	for _, in := range f.slots {
		if in == nil {
			continue
		}
		out = append(out, InstanceInfo{
			Index:       in.index,
			PID:         in.pid,
			Addr:        in.ln.Addr().String(),
			Started:     in.started,
			FirstNext:   in.firstNext,
			Invocations: in.invocations,
			Alive:       !in.dead && in.pid > 0,
			Restarts:    in.generation,
		})
	}
	return out
}

// Close kills every process, waits for them and for every goroutine fcsim
// started, and frees the ports. Invocations in flight fail with ErrClosed.
// Close is idempotent.
func (f *Function) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		f.wg.Wait()
		return nil
	}
	f.closed = true
	ins := make([]*instance, 0, len(f.slots))
	for _, in := range f.slots {
		if in != nil {
			ins = append(ins, in)
		}
	}
	f.wakeAllLocked()
	f.mu.Unlock()
	for _, in := range ins {
		in.kill()
		in.stop()
	}
	f.wg.Wait()
	return nil
}

func (f *Function) emit(index int, line []byte) {
	if f.cfg.Output == nil {
		return
	}
	f.outMu.Lock()
	defer f.outMu.Unlock()
	f.cfg.Output(f.cfg.Name, index, line)
}

// newUUID returns a random RFC 4122 version 4 UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
