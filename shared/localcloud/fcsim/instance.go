package fcsim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

// runtimeAPIPrefix is the path every runtime API call starts with.
const runtimeAPIPrefix = "/2020-11-11/runtime/invocation/"

// call is one invocation handed to an instance.
type call struct {
	id       string
	payload  []byte
	retry    int
	deadline time.Time
	done     chan answer // buffered 1; written once, by the first POST
	// crash kills the process crashIn after the handover (InvokeOptions).
	crash   bool
	crashIn time.Duration
}

// answer is what the process POSTed for a call.
type answer struct {
	body   []byte
	failed bool // POSTed to /error
}

// result fills res from a.
func (a answer) result(res Result, d time.Duration) Result {
	res.Duration = d
	if !a.failed {
		res.Body = a.body
		return res
	}
	var ie InvokeError
	if err := json.Unmarshal(a.body, &ie); err != nil || (ie.Message == "" && ie.Type == "") {
		ie = InvokeError{Message: string(a.body)}
	}
	res.Err = &ie
	return res
}

// instance is one process and its runtime API listener.
type instance struct {
	f                 *Function
	index, generation int
	ln                net.Listener
	srv               *http.Server
	work              chan *call    // unbuffered: a pending GET /next takes the call
	readyCh           chan struct{} // closed at the first GET /next
	exited            chan struct{} // closed once the process is reaped and its output drained
	stopped           chan struct{} // closed when the listener is being shut down
	stopOnce          sync.Once
	// headers are the constant headers of a GET /next reply and env the
	// process environment (without FC_RUNTIME_API and FC_INSTANCE_ID): the
	// function's, with the slot's own credentials when it has them.
	headers http.Header
	env     []string

	// Guarded by f.mu.
	pid                int
	started, firstNext time.Time
	ready, busy, dead  bool
	invocations        int
	calls              map[string]*call
	exitErr            error
}

// newInstanceLocked creates the instance for slot i (replacing old, which is
// nil or dead), reserved (busy) for the caller. f.mu is held.
func (f *Function) newInstanceLocked(i int, old *instance) (*instance, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fault.Wrap("fcsim.startInstance", fault.Retryable, "", fmt.Errorf("listen for the runtime API of instance %d: %w", i, err))
	}
	in := &instance{
		f:       f,
		index:   i,
		ln:      ln,
		work:    make(chan *call),
		readyCh: make(chan struct{}),
		exited:  make(chan struct{}),
		stopped: make(chan struct{}),
		busy:    true,
		calls:   make(map[string]*call),
	}
	if old != nil {
		in.generation = old.generation + 1
	}
	in.headers, in.env = f.headers, f.env
	if f.cfg.InstanceCredentials != nil {
		cred := f.cfg.InstanceCredentials(i)
		in.headers = f.headers.Clone()
		in.env = slices.DeleteFunc(slices.Clone(f.env), func(kv string) bool {
			return strings.HasPrefix(kv, "ALIBABA_CLOUD_ACCESS_KEY_ID=") || strings.HasPrefix(kv, "ALIBABA_CLOUD_ACCESS_KEY_SECRET=") ||
				strings.HasPrefix(kv, "ALIBABA_CLOUD_SECURITY_TOKEN=")
		})
		for _, h := range []struct{ header, env, value string }{
			{"x-fc-access-key-id", "ALIBABA_CLOUD_ACCESS_KEY_ID", cred.AccessKeyID},
			{"x-fc-access-key-secret", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", cred.AccessKeySecret},
			{"x-fc-security-token", "ALIBABA_CLOUD_SECURITY_TOKEN", cred.SecurityToken},
		} {
			in.headers.Del(h.header)
			setHeaderIf(in.headers, h.header, h.value)
			if h.value != "" {
				in.env = append(in.env, h.env+"="+h.value)
			}
		}
	}
	in.srv = &http.Server{
		Handler:           in,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	f.slots[i] = in
	return in, nil
}

// launch starts in's server and process and waits until the process polls.
// The caller holds a wg token and has in reserved; on success in stays
// reserved for the caller.
func (f *Function) launch(ctx context.Context, in *instance) error {
	const op = "fcsim.startInstance"
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		_ = in.srv.Serve(in.ln) // returns http.ErrServerClosed after stop
	}()

	cmd, outR, errR, err := f.command(in)
	if err != nil {
		f.mu.Lock()
		in.dead = true
		in.exitErr = err
		f.wakeLocked() // the slot is free
		f.mu.Unlock()
		close(in.exited)
		in.stop()
		return fault.Wrap(op, fault.Permanent, "", fmt.Errorf("start instance %d of %s: %w", in.index, f.cfg.Name, err))
	}

	f.mu.Lock()
	in.pid = cmd.Process.Pid
	in.started = time.Now()
	closed := f.closed
	f.mu.Unlock()

	var pumps sync.WaitGroup
	pumps.Add(2)
	f.wg.Add(3)
	for _, r := range []*os.File{outR, errR} {
		go func() {
			defer f.wg.Done()
			defer pumps.Done()
			f.pump(r, in.index)
		}()
	}
	go func() {
		defer f.wg.Done()
		err := cmd.Wait()
		pumps.Wait()
		f.mu.Lock()
		in.dead = true
		in.exitErr = err
		f.wakeLocked() // the slot is free
		f.mu.Unlock()
		close(in.exited)
		in.stop()
	}()

	if closed {
		in.kill()
		return ErrClosed
	}
	return f.awaitReady(ctx, in)
}

// command starts the process of in with its stdout and stderr on pipes.
func (f *Function) command(in *instance) (*exec.Cmd, *os.File, *os.File, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		_ = outR.Close()
		_ = outW.Close()
		return nil, nil, nil, fmt.Errorf("stderr pipe: %w", err)
	}
	cmd := exec.Command(f.cfg.Binary)
	cmd.Dir = filepath.Dir(f.cfg.Binary)
	cmd.Env = append(slices.Clone(in.env),
		"FC_RUNTIME_API="+in.ln.Addr().String(),
		"FC_INSTANCE_ID="+newUUID(),
	)
	cmd.Stdout = outW
	cmd.Stderr = errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	_ = outW.Close() // the child has its copies
	_ = errW.Close()
	if err != nil {
		_ = outR.Close()
		_ = errR.Close()
		return nil, nil, nil, fmt.Errorf("exec %s: %w", f.cfg.Binary, err)
	}
	return cmd, outR, errR, nil
}

// awaitReady waits for in's first GET /next.
func (f *Function) awaitReady(ctx context.Context, in *instance) error {
	const op = "fcsim.startInstance"
	timer := time.NewTimer(f.cfg.StartTimeout)
	defer timer.Stop()
	select {
	case <-in.readyCh:
		return nil
	case <-in.exited:
		f.mu.Lock()
		closed, exitErr := f.closed, in.exitErr
		f.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if exitErr == nil {
			exitErr = errors.New("exit status 0")
		}
		return fault.Wrap(op, fault.Permanent, "", fmt.Errorf("instance %d of %s exited before polling the runtime API: %w", in.index, f.cfg.Name, exitErr))
	case <-ctx.Done():
		// Let the start finish in the background: the instance then serves
		// someone else, or is killed at StartTimeout. The caller's wg token
		// makes this Add safe against Close.
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if f.awaitReady(context.WithoutCancel(ctx), in) == nil {
				f.release(in)
			}
		}()
		return ctx.Err()
	case <-timer.C:
		in.kill()
		<-in.exited
		return fault.Wrap(op, fault.Retryable, "", fmt.Errorf("instance %d of %s did not poll the runtime API within %s", in.index, f.cfg.Name, f.cfg.StartTimeout))
	}
}

// pump forwards r line by line to Output until EOF.
func (f *Function) pump(r *os.File, index int) {
	defer func() { _ = r.Close() }()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n') // a fresh slice each time: Output may keep it
		if len(line) > 0 {
			f.emit(index, bytes.TrimSuffix(line, []byte("\n")))
		}
		if err != nil {
			return
		}
	}
}

// kill sends SIGKILL to the instance's process group.
func (in *instance) kill() {
	in.f.mu.Lock()
	defer in.f.mu.Unlock()
	in.killLocked()
}

// killLocked is kill with f.mu held; it reports whether the process was
// alive.
func (in *instance) killLocked() bool {
	if in.pid <= 0 || in.dead {
		return false
	}
	_ = syscall.Kill(-in.pid, syscall.SIGKILL)
	return true
}

// stop ends the pending long polls and closes the listener.
func (in *instance) stop() {
	in.stopOnce.Do(func() { close(in.stopped) })
	_ = in.srv.Close()
}

// ServeHTTP serves the runtime API of one instance.
func (in *instance) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, runtimeAPIPrefix)
	if !ok {
		writeAPIError(w, http.StatusNotFound, "unknown path "+r.URL.Path)
		return
	}
	if rest == "next" {
		if r.Method != http.MethodGet {
			writeAPIError(w, http.StatusMethodNotAllowed, "next wants GET")
			return
		}
		in.next(w, r)
		return
	}
	id, kind, ok := strings.Cut(rest, "/")
	if !ok || (kind != "response" && kind != "error") {
		writeAPIError(w, http.StatusNotFound, "unknown path "+r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		writeAPIError(w, http.StatusMethodNotAllowed, kind+" wants POST")
		return
	}
	in.post(w, r, id, kind == "error")
}

// next is the long poll: it hands over one call.
func (in *instance) next(w http.ResponseWriter, r *http.Request) {
	f := in.f
	f.mu.Lock()
	if !in.ready {
		in.ready = true
		in.firstNext = time.Now()
		close(in.readyCh)
		f.offerLocked(in)
	}
	f.mu.Unlock()

	select {
	case c := <-in.work:
		h := w.Header()
		for k, v := range in.headers {
			h[k] = v // shared: net/http only reads handler header values
		}
		h["X-Fc-Request-Id"] = []string{c.id}
		h["X-Fc-Function-Deadline"] = []string{strconv.FormatInt(c.deadline.UnixMilli(), 10)}
		h["X-Fc-Retry-Count"] = []string{strconv.Itoa(c.retry)}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(c.payload)
	case <-r.Context().Done():
	case <-in.stopped:
		writeAPIError(w, http.StatusServiceUnavailable, "instance is stopping")
	}
}

// post records the answer to call id.
func (in *instance) post(w http.ResponseWriter, r *http.Request, id string, failed bool) {
	body, err := readBody(r)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	in.f.mu.Lock()
	c := in.calls[id]
	delete(in.calls, id)
	in.f.mu.Unlock()
	if c == nil {
		writeAPIError(w, http.StatusNotFound, "unknown request id "+strconv.Quote(id))
		return
	}
	c.done <- answer{body: body, failed: failed}
	w.WriteHeader(http.StatusOK)
}

// nextHeaders are the headers of every GET /next reply that are the same
// for every invocation of f, with canonical keys; next adds the request id,
// deadline and retry count.
func nextHeaders(f *Function) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("x-fc-function-timeout", strconv.Itoa(f.timeoutSeconds()))
	setHeaderIf(h, "x-fc-access-key-id", f.cfg.Credentials.AccessKeyID)
	setHeaderIf(h, "x-fc-access-key-secret", f.cfg.Credentials.AccessKeySecret)
	setHeaderIf(h, "x-fc-security-token", f.cfg.Credentials.SecurityToken)
	h.Set("x-fc-function-name", f.cfg.Name)
	h.Set("x-fc-function-handler", "main")
	h.Set("x-fc-function-memory", strconv.Itoa(f.cfg.MemoryMB))
	h.Set("x-fc-region", f.cfg.Region)
	h.Set("x-fc-account-id", f.cfg.AccountID)
	h.Set("x-fc-function-type", "0")
	return h
}

// readBody reads up to MaxPayload+1 bytes of r's body, in one allocation
// when the request says how long it is (the SDK always does).
func readBody(r *http.Request) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= MaxPayload {
		body := make([]byte, n)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, err
		}
		return body, nil
	}
	return io.ReadAll(io.LimitReader(r.Body, MaxPayload+1))
}

func setHeaderIf(h http.Header, k, v string) {
	if v != "" {
		h.Set(k, v)
	}
}

func writeAPIError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"errorMessage": msg, "errorType": http.StatusText(status)})
}
