package fcsim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/fcsim"
)

// echoBinary is the testdata/echofn function, built once in TestMain.
var echoBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fcsim-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(1)
	}
	echoBinary = filepath.Join(dir, "main")
	build := exec.Command(goTool(), "build", "-o", echoBinary, "./testdata/echofn")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build echofn: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func goTool() string {
	return "go"
}

// echoReply mirrors what testdata/echofn answers to an echo.
type echoReply struct {
	Payload         json.RawMessage   `json:"payload"`
	RequestID       string            `json:"requestId"`
	DeadlineUnixMS  int64             `json:"deadlineUnixMs"`
	HasDeadline     bool              `json:"hasDeadline"`
	AccessKeyID     string            `json:"accessKeyId"`
	AccessKeySecret string            `json:"accessKeySecret"`
	SecurityToken   string            `json:"securityToken"`
	Region          string            `json:"region"`
	AccountID       string            `json:"accountId"`
	RetryCount      int               `json:"retryCount"`
	FunctionName    string            `json:"functionName"`
	Handler         string            `json:"handler"`
	Memory          string            `json:"memory"`
	TimeoutSeconds  int               `json:"timeoutSeconds"`
	PID             int               `json:"pid"`
	Env             map[string]string `json:"env"`
}

func start(t *testing.T, cfg fcsim.Config) *fcsim.Function {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "echo"
	}
	if cfg.Binary == "" {
		cfg.Binary = echoBinary
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := fcsim.Start(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func invoke(t *testing.T, f *fcsim.Function, payload string, opts fcsim.InvokeOptions) fcsim.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := f.Invoke(ctx, []byte(payload), opts)
	require.NoError(t, err)
	return res
}

func decodeEcho(t *testing.T, res fcsim.Result) echoReply {
	t.Helper()
	require.Nil(t, res.Err, "function error")
	var r echoReply
	require.NoError(t, json.Unmarshal(res.Body, &r), "body %s", res.Body)
	return r
}

func TestInvokePassesMetadata(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cfg       fcsim.Config
		opts      fcsim.InvokeOptions
		wantToken bool
		wantSecs  int
	}{
		{
			name: "sts credentials and retry",
			cfg: fcsim.Config{
				Timeout: 5 * time.Second, MemoryMB: 256, Region: "cn-shanghai", AccountID: "1111222233334444",
				Credentials: cloudauth.Credentials{AccessKeyID: "STS.id", AccessKeySecret: "secret", SecurityToken: "token"},
				Env:         map[string]string{"ECHOFN_EXTRA": "x", "FC_REGION": "overridden-by-fcsim"},
			},
			opts:      fcsim.InvokeOptions{RetryCount: 2, RequestID: "req-meta-1"},
			wantToken: true,
			wantSecs:  5,
		},
		{
			name: "defaults, key pair only, generated request id",
			cfg: fcsim.Config{
				Credentials: cloudauth.Credentials{AccessKeyID: "LTAIid", AccessKeySecret: "secret"},
			},
			wantSecs: 3,
		},
		{
			name:     "sub-second timeouts round up",
			cfg:      fcsim.Config{Timeout: 1500 * time.Millisecond},
			wantSecs: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := start(t, tt.cfg)
			before := time.Now()
			res := invoke(t, f, `{"action":"echo","n":1}`, tt.opts)
			after := time.Now()
			r := decodeEcho(t, res)

			timeout := tt.cfg.Timeout
			if timeout == 0 {
				timeout = fcsim.DefaultTimeout
			}
			region, account, memory := tt.cfg.Region, tt.cfg.AccountID, tt.cfg.MemoryMB
			if region == "" {
				region, account, memory = fcsim.DefaultRegion, fcsim.DefaultAccountID, fcsim.DefaultMemoryMB
			}
			if tt.opts.RequestID != "" {
				assert.Equal(t, tt.opts.RequestID, res.RequestID)
			} else {
				assert.Len(t, res.RequestID, 36, "generated UUID")
			}
			assert.Equal(t, res.RequestID, r.RequestID)
			assert.JSONEq(t, `{"action":"echo","n":1}`, string(r.Payload))
			assert.True(t, r.HasDeadline)
			assert.GreaterOrEqual(t, r.DeadlineUnixMS, before.Add(timeout).UnixMilli())
			assert.LessOrEqual(t, r.DeadlineUnixMS, after.Add(timeout).UnixMilli())
			assert.Equal(t, tt.wantSecs, r.TimeoutSeconds)
			assert.Equal(t, tt.cfg.Credentials.AccessKeyID, r.AccessKeyID)
			assert.Equal(t, tt.cfg.Credentials.AccessKeySecret, r.AccessKeySecret)
			assert.Equal(t, tt.cfg.Credentials.SecurityToken, r.SecurityToken)
			assert.Equal(t, region, r.Region)
			assert.Equal(t, account, r.AccountID)
			assert.Equal(t, tt.opts.RetryCount, r.RetryCount)
			assert.Equal(t, "echo", r.FunctionName)
			assert.Equal(t, "main", r.Handler)
			assert.Equal(t, fmt.Sprint(memory), r.Memory)
			assert.Equal(t, 0, res.Instance)

			assert.Equal(t, region, r.Env["FC_REGION"])
			assert.Equal(t, account, r.Env["FC_ACCOUNT_ID"])
			assert.Equal(t, "echo", r.Env["FC_FUNCTION_NAME"])
			assert.Equal(t, "main", r.Env["FC_FUNCTION_HANDLER"])
			assert.Equal(t, fmt.Sprint(memory), r.Env["FC_FUNCTION_MEMORY_SIZE"])
			assert.Equal(t, tt.cfg.Credentials.AccessKeyID, r.Env["ALIBABA_CLOUD_ACCESS_KEY_ID"])
			assert.Equal(t, tt.cfg.Credentials.AccessKeySecret, r.Env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"])
			token, hasToken := r.Env["ALIBABA_CLOUD_SECURITY_TOKEN"]
			assert.Equal(t, tt.wantToken, hasToken)
			assert.Equal(t, tt.cfg.Credentials.SecurityToken, token)
			assert.Equal(t, tt.cfg.Env["ECHOFN_EXTRA"], r.Env["ECHOFN_EXTRA"])
			assert.True(t, strings.HasPrefix(r.Env["FC_RUNTIME_API"], "127.0.0.1:"), r.Env["FC_RUNTIME_API"])
			assert.NotEmpty(t, r.Env["PATH"])

			infos := f.Instances()
			require.Len(t, infos, 1)
			assert.Equal(t, r.PID, infos[0].PID)
			assert.Equal(t, r.Env["FC_RUNTIME_API"], infos[0].Addr)
			assert.Equal(t, 1, infos[0].Invocations)
			assert.True(t, infos[0].Alive)
			assert.False(t, infos[0].FirstNext.Before(infos[0].Started))
			assert.Equal(t, 1, f.Invocations())
		})
	}
}

func TestFunctionErrorsKeepTheInstance(t *testing.T) {
	t.Parallel()
	f := start(t, fcsim.Config{Timeout: 10 * time.Second})
	first := decodeEcho(t, invoke(t, f, `{}`, fcsim.InvokeOptions{}))

	tests := []struct {
		name, payload, wantType, wantMessage string
		wantStack                            bool
	}{
		{name: "returned error", payload: `{"action":"error"}`, wantType: "errorString", wantMessage: "failed on demand"},
		{name: "panic", payload: `{"action":"panic"}`, wantType: "string", wantMessage: "panicked on demand", wantStack: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := invoke(t, f, tt.payload, fcsim.InvokeOptions{})
			require.NotNil(t, res.Err)
			assert.Nil(t, res.Body)
			assert.Equal(t, tt.wantType, res.Err.Type)
			assert.Equal(t, tt.wantMessage, res.Err.Message)
			assert.Equal(t, tt.wantStack, len(res.Err.StackTrace) > 0, "stack trace %s", res.Err.StackTrace)

			after := decodeEcho(t, invoke(t, f, `{}`, fcsim.InvokeOptions{}))
			assert.Equal(t, first.PID, after.PID, "the process survives")
		})
	}
	infos := f.Instances()
	require.Len(t, infos, 1)
	assert.Equal(t, 0, infos[0].Restarts)
}

func TestTimeoutAndCrashReplaceTheInstance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		timeout  time.Duration
		payload  string
		wantType string
		wantMsg  string
	}{
		{name: "timeout", timeout: 400 * time.Millisecond, payload: `{"action":"sleep","sleep":"1h"}`, wantType: fcsim.ErrorTypeTimeout, wantMsg: "timed out"},
		{name: "crash", timeout: 10 * time.Second, payload: `{"action":"exit","code":3}`, wantType: fcsim.ErrorTypeInstanceCrashed, wantMsg: "exit status 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := start(t, fcsim.Config{Timeout: tt.timeout})
			oldPID := f.Instances()[0].PID

			res := invoke(t, f, tt.payload, fcsim.InvokeOptions{RequestID: "req-" + tt.name})
			require.NotNil(t, res.Err)
			assert.Equal(t, tt.wantType, res.Err.Type)
			assert.Contains(t, res.Err.Message, tt.wantMsg)
			assert.Equal(t, "req-"+tt.name, res.RequestID)
			infos := f.Instances()
			require.Len(t, infos, 1)
			assert.False(t, infos[0].Alive)
			assert.ErrorIs(t, syscall.Kill(oldPID, 0), syscall.ESRCH, "old process is gone")

			r := decodeEcho(t, invoke(t, f, `{}`, fcsim.InvokeOptions{}))
			assert.NotEqual(t, oldPID, r.PID)
			infos = f.Instances()
			require.Len(t, infos, 1)
			assert.True(t, infos[0].Alive)
			assert.Equal(t, r.PID, infos[0].PID)
			assert.Equal(t, 1, infos[0].Restarts)
			assert.Equal(t, 2, f.Invocations())
		})
	}
}

func TestMaxInstancesRunsInParallel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		max         int
		wantIndices []int
	}{
		{name: "two instances", max: 2, wantIndices: []int{0, 1}},
		{name: "one instance serialises", max: 1, wantIndices: []int{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := start(t, fcsim.Config{Timeout: 20 * time.Second, MaxInstances: tt.max})
			gate := filepath.Join(t.TempDir(), "gate")
			payload := fmt.Sprintf(`{"action":"waitfile","file":%q}`, gate)

			const n = 2
			results := make([]fcsim.Result, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					results[i], errs[i] = f.Invoke(context.Background(), []byte(payload), fcsim.InvokeOptions{})
				})
			}
			// Both invocations must be in a process at once when there are
			// enough instances; only then open the gate.
			require.Eventually(t, func() bool { return f.Invocations() == min(n, tt.max) }, 20*time.Second, 5*time.Millisecond)
			require.NoError(t, os.WriteFile(gate, nil, 0o600))
			wg.Wait()

			var indices []int
			pids := map[int]bool{}
			for i := range n {
				require.NoError(t, errs[i])
				r := decodeEcho(t, results[i])
				indices = append(indices, results[i].Instance)
				pids[r.PID] = true
			}
			assert.ElementsMatch(t, tt.wantIndices, indices)
			assert.Len(t, pids, tt.max)
			assert.Len(t, f.Instances(), tt.max)
		})
	}
}

func TestOutputCapturesEveryLine(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var lines []string
	f := start(t, fcsim.Config{Name: "logger", Output: func(fn string, instance int, line []byte) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf("%s/%d %s", fn, instance, line))
	}})
	invoke(t, f, `{"action":"error"}`, fcsim.InvokeOptions{RequestID: "req-out"})

	want := []string{
		`logger/0 FC Invoke Start RequestId: req-out`,
		`logger/0 {"action":"error","level":"INFO","requestId":"req-out"}`,
		`logger/0 stderr line for req-out`,
		`logger/0 FC Invoke End RequestId: req-out, Error: Unhandled function error`,
	}
	has := func(l string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, got := range lines {
			if got == l {
				return true
			}
		}
		return false
	}
	for _, w := range want {
		require.Eventually(t, func() bool { return has(w) }, 10*time.Second, 5*time.Millisecond, "line %q", w)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, l := range lines {
		assert.False(t, strings.HasSuffix(l, "\n"), "line %q keeps no newline", l)
	}
}

func TestRuntimeAPIRejectsUnknownRequests(t *testing.T) {
	t.Parallel()
	f := start(t, fcsim.Config{})
	base := "http://" + f.Instances()[0].Addr + "/2020-11-11/runtime/invocation/"
	tests := []struct {
		name, method, path string
		want               int
	}{
		{name: "response for an unknown id", method: http.MethodPost, path: "nope/response", want: http.StatusNotFound},
		{name: "error for an unknown id", method: http.MethodPost, path: "nope/error", want: http.StatusNotFound},
		{name: "unknown verb", method: http.MethodPost, path: "nope/other", want: http.StatusNotFound},
		{name: "GET on response", method: http.MethodGet, path: "nope/response", want: http.StatusMethodNotAllowed},
		{name: "POST on next", method: http.MethodPost, path: "next", want: http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, base+tt.path, bytes.NewReader([]byte(`{}`)))
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			_ = resp.Body.Close()
			assert.Equal(t, tt.want, resp.StatusCode)
		})
	}
	// The instance still works after the noise.
	decodeEcho(t, invoke(t, f, `{}`, fcsim.InvokeOptions{}))
}

func TestStartRejectsBadConfig(t *testing.T) {
	t.Parallel()
	notExec := filepath.Join(t.TempDir(), "plain")
	require.NoError(t, os.WriteFile(notExec, []byte("x"), 0o600))
	truePath, err := exec.LookPath("true")
	require.NoError(t, err)
	tests := []struct {
		name     string
		cfg      fcsim.Config
		wantKind fault.Kind
	}{
		{name: "empty name", cfg: fcsim.Config{Binary: echoBinary}, wantKind: fault.Invalid},
		{name: "bad name", cfg: fcsim.Config{Name: "a b", Binary: echoBinary}, wantKind: fault.Invalid},
		{name: "missing binary", cfg: fcsim.Config{Name: "f", Binary: "/nonexistent/main"}, wantKind: fault.Invalid},
		{name: "not executable", cfg: fcsim.Config{Name: "f", Binary: notExec}, wantKind: fault.Invalid},
		{name: "negative timeout", cfg: fcsim.Config{Name: "f", Binary: echoBinary, Timeout: -1}, wantKind: fault.Invalid},
		{name: "exits before polling", cfg: fcsim.Config{Name: "f", Binary: truePath}, wantKind: fault.Permanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := fcsim.Start(context.Background(), tt.cfg)
			require.Error(t, err)
			assert.Nil(t, f)
			var fe *fault.Error
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.wantKind, fault.KindOf(err))
		})
	}
}

func TestInvokeOptionsAndContext(t *testing.T) {
	t.Parallel()
	f := start(t, fcsim.Config{Timeout: 20 * time.Second})

	_, err := f.Invoke(context.Background(), []byte(`{}`), fcsim.InvokeOptions{RetryCount: -1})
	assert.True(t, fault.Is(err, fault.Invalid))

	// Occupy the only instance, then ask for another with a dead context.
	gate := filepath.Join(t.TempDir(), "gate")
	busy := make(chan fcsim.Result, 1)
	go func() {
		res, _ := f.Invoke(context.Background(), []byte(fmt.Sprintf(`{"action":"waitfile","file":%q}`, gate)), fcsim.InvokeOptions{})
		busy <- res
	}()
	require.Eventually(t, func() bool { return f.Invocations() == 1 }, 10*time.Second, 5*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = f.Invoke(ctx, []byte(`{}`), fcsim.InvokeOptions{})
	assert.ErrorIs(t, err, context.Canceled)

	require.NoError(t, os.WriteFile(gate, nil, 0o600))
	decodeEcho(t, <-busy)
	assert.Equal(t, 1, f.Invocations(), "the cancelled invocation never reached a process")
}

func TestCallerGivingUpLeavesTheInvocationRunning(t *testing.T) {
	t.Parallel()
	f := start(t, fcsim.Config{Timeout: 20 * time.Second})
	gate := filepath.Join(t.TempDir(), "gate")
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := f.Invoke(ctx, []byte(fmt.Sprintf(`{"action":"waitfile","file":%q}`, gate)), fcsim.InvokeOptions{})
		res <- err
	}()
	require.Eventually(t, func() bool { return f.Invocations() == 1 }, 10*time.Second, 5*time.Millisecond)
	cancel()
	assert.ErrorIs(t, <-res, context.Canceled)

	// The instance stays busy with the abandoned invocation until it ends.
	require.NoError(t, os.WriteFile(gate, nil, 0o600))
	r := decodeEcho(t, invoke(t, f, `{}`, fcsim.InvokeOptions{}))
	infos := f.Instances()
	require.Len(t, infos, 1)
	assert.Equal(t, infos[0].PID, r.PID)
	assert.Equal(t, 2, infos[0].Invocations)
}

func TestStartTimeoutKillsTheProcessGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	script := filepath.Join(dir, "main")
	// Never polls; leaves a child in its process group.
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nsleep 300 &\necho $! > "+pidFile+".tmp\nmv "+pidFile+".tmp "+pidFile+"\nwait\n"), 0o700))

	_, err := fcsim.Start(context.Background(), fcsim.Config{Name: "stuck", Binary: script, StartTimeout: 2 * time.Second})
	require.Error(t, err)
	assert.True(t, fault.Is(err, fault.Retryable), "%v", err)

	raw, err := os.ReadFile(pidFile)
	require.NoError(t, err, "the script ran")
	var child int
	_, err = fmt.Sscan(string(raw), &child)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return gone(child) }, 10*time.Second, 5*time.Millisecond,
		"the child %d of the killed instance is gone", child)
}

// gone reports whether pid no longer runs: it does not exist, or it is a
// zombie waiting for a reaper fcsim does not control (an orphan whose init
// does not reap).
func gone(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// TestCloseLeavesNothing is not parallel: it counts goroutines.
func TestCloseLeavesNothing(t *testing.T) {
	baseline := runtime.NumGoroutine()
	ctx := context.Background()
	f, err := fcsim.Start(ctx, fcsim.Config{Name: "closer", Binary: echoBinary, MaxInstances: 2, Timeout: 20 * time.Second})
	require.NoError(t, err)

	// One invocation stuck in a process when Close comes.
	gate := filepath.Join(t.TempDir(), "never")
	stuck := make(chan error, 1)
	go func() {
		_, err := f.Invoke(ctx, []byte(fmt.Sprintf(`{"action":"waitfile","file":%q}`, gate)), fcsim.InvokeOptions{})
		stuck <- err
	}()
	require.Eventually(t, func() bool { return f.Invocations() == 1 }, 10*time.Second, 5*time.Millisecond)
	decodeEcho(t, invoke(t, f, `{}`, fcsim.InvokeOptions{})) // starts the second instance
	infos := f.Instances()
	require.Len(t, infos, 2)

	require.NoError(t, f.Close())
	assert.ErrorIs(t, <-stuck, fcsim.ErrClosed)
	for _, in := range infos {
		assert.ErrorIs(t, syscall.Kill(in.PID, 0), syscall.ESRCH, "process %d is gone", in.PID)
		_, err := http.Get("http://" + in.Addr + "/2020-11-11/runtime/invocation/next")
		var errno syscall.Errno
		assert.True(t, errors.As(err, &errno) && errno == syscall.ECONNREFUSED, "port of instance %d is closed: %v", in.Index, err)
	}
	_, err = f.Invoke(ctx, []byte(`{}`), fcsim.InvokeOptions{})
	assert.ErrorIs(t, err, fcsim.ErrClosed)
	require.NoError(t, f.Close(), "Close is idempotent")

	http.DefaultClient.CloseIdleConnections()
	// Polled here rather than with assert.Eventually, which runs the
	// condition in a goroutine of its own.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: baseline %d, now %d\n%s", baseline, n, buf[:runtime.Stack(buf, true)])
	}
}

// PeakConcurrency is the most invocations held at once: what the platform's
// instance quota must allow.
func TestPeakConcurrency(t *testing.T) {
	f := start(t, fcsim.Config{Name: "peak", Binary: echoBinary, MaxInstances: 3, Timeout: 10 * time.Second})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.Invoke(context.Background(), []byte(`{"action":"sleep","sleep":"300ms"}`), fcsim.InvokeOptions{})
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	assert.Equal(t, 3, f.PeakConcurrency())
	_, err := f.Invoke(context.Background(), []byte(`{}`), fcsim.InvokeOptions{})
	require.NoError(t, err)
	assert.Equal(t, 3, f.PeakConcurrency(), "a high-water mark")
}
