package smoke

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/fcsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
)

// binaries are the compiled functions, built once for the package.
var binaries map[string]string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "smoke-functions-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		root, err := localcloud.ModuleRoot(".")
		if err == nil {
			binaries, err = localcloud.BuildFunctions(context.Background(), root, dir)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "build functions:", err)
			return 1
		}
		return m.Run()
	}())
}

// localTransport is the Transport of the local cloud: direct invocations of
// its functions, their log lines as they were written, and the emulated
// queues' depths.
type localTransport struct {
	cloud *localcloud.Cloud
	mu    sync.Mutex
	lines map[string][]string
}

func (l *localTransport) output(function string, line []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines[function] = append(l.lines[function], string(line))
}

func (l *localTransport) Invoke(ctx context.Context, function string, payload []byte) ([]byte, error) {
	f := l.cloud.Function(function)
	if f == nil {
		return nil, fmt.Errorf("%w: FunctionNotFound: function %q does not exist", ErrFunctionMissing, function)
	}
	res, err := f.Invoke(ctx, payload, fcsim.InvokeOptions{})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, &FunctionError{Type: res.Err.Type, Message: res.Err.Message}
	}
	return res.Body, nil
}

func (l *localTransport) Logs(_ context.Context, function string, _ time.Time, search string) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines[function] {
		if strings.Contains(line, search) {
			out = append(out, line)
		}
	}
	return out, nil
}

func (l *localTransport) QueueDepth(_ context.Context, queue string) (Depth, error) {
	visible, delayed, inflight := l.cloud.MNS.Depth(queue)
	return Depth{Visible: int64(visible), Delayed: int64(delayed), InFlight: int64(inflight)}, nil
}

// startLocal starts a local cloud whose functions' logs the transport reads.
func startLocal(t *testing.T) *localTransport {
	t.Helper()
	tr := &localTransport{lines: map[string][]string{}}
	cloud, err := localcloud.Start(context.Background(), localcloud.Options{
		Binaries: binaries, OnOutput: tr.output,
	})
	require.NoError(t, err)
	t.Cleanup(cloud.Close)
	tr.cloud = cloud
	return tr
}

// TestSmokeAgainstTheLocalCloud runs the smoke check against the real
// function binaries and the emulators; only the transport differs from
// make smoke.
func TestSmokeAgainstTheLocalCloud(t *testing.T) {
	t.Parallel()
	tr := startLocal(t)
	tests := []struct {
		name        string
		install     string
		behavior    *hbrsim.Behavior // of the smoke instance; nil: default
		timeout     time.Duration
		wantVerdict Verdict
		wantFailure Failure
		wantOutcome string
	}{
		// The HBR emulator, like HBR, answers InstanceNotExists for an
		// instance no account holds.
		{"unknown instance is GONE", "install", &hbrsim.Behavior{Gone: true}, 30 * time.Second, Pass, "", "GONE"},
		{"role without the HBR permission", "install", &hbrsim.Behavior{InvalidCode: "Forbidden.RAM"}, 30 * time.Second, Fail, HBRPermissionDenied, "FAILED"},
		// Never ready: the install is retried for minutes, no record comes.
		{"no outcome in time", "install", &hbrsim.Behavior{ReadyAfter: time.Hour}, 3 * time.Second, Fail, NoOutcome, ""},
		{"function missing", "installer", nil, time.Second, Fail, FunctionMissing, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := NewInstanceID()
			if tt.behavior != nil {
				tr.cloud.HBR.SetInstance(id, *tt.behavior)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res := Run(ctx, Config{
				Region: "cn-hangzhou", AccountID: "1234567890123456", Install: tt.install, InstanceID: id,
				Queue: localcloud.QueueName, DLQ: localcloud.DLQName,
				Timeout: tt.timeout, PollEvery: 100 * time.Millisecond,
			}, tr)
			assert.Equal(t, tt.wantVerdict, res.Verdict, res.Diagnosis)
			assert.Equal(t, tt.wantFailure, res.Failure, res.Diagnosis)
			if tt.wantOutcome != "" && assert.NotNil(t, res.Record) {
				assert.Equal(t, tt.wantOutcome, res.Record.Outcome)
				assert.Equal(t, id, res.Record.InstanceID)
			}
			require.Len(t, res.Queues, 2)
			assert.NotNil(t, res.Queues[0].Depth)
			assert.NotNil(t, res.Queues[1].Depth)
		})
	}
}

// TestSmokeDiagnosesAnUnreachableLedger points the functions' OSS_ENDPOINT
// at a port nothing listens on: the real install binary fails on the
// instance ledger, and the smoke check says the functions cannot reach the
// ledger bucket.
func TestSmokeDiagnosesAnUnreachableLedger(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	tr := &localTransport{lines: map[string][]string{}}
	cloud, err := localcloud.Start(context.Background(), localcloud.Options{
		Binaries: binaries, OnOutput: tr.output, Env: map[string]string{"OSS_ENDPOINT": closed},
	})
	require.NoError(t, err)
	t.Cleanup(cloud.Close)
	tr.cloud = cloud

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res := Run(ctx, Config{
		Region: "cn-hangzhou", AccountID: "1234567890123456", InstanceID: NewInstanceID(),
		Timeout: 3 * time.Second, PollEvery: 100 * time.Millisecond,
	}, tr)
	assert.Equal(t, Fail, res.Verdict, res.Diagnosis)
	assert.Equal(t, LedgerUnreachable, res.Failure, res.Diagnosis)
	assert.Contains(t, res.Diagnosis, "the functions cannot reach the ledger bucket")
	assert.Contains(t, res.Diagnosis, "oss.PutObject")
}
