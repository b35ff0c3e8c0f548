package smoke

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecsevent"
)

// fakeTransport answers from fixed values; logs[fn] is returned from the
// readsBefore-th read on.
type fakeTransport struct {
	answer    string
	invokeErr error
	logs      map[string][]string
	logErr    error
	// readsBefore is the number of Logs calls that see nothing first.
	readsBefore int
	depths      map[string]Depth

	mu      sync.Mutex
	reads   int
	invoked []string
	payload []byte
}

func (f *fakeTransport) Invoke(_ context.Context, fn string, payload []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invoked = append(f.invoked, fn)
	f.payload = payload
	return []byte(f.answer), f.invokeErr
}

func (f *fakeTransport) Logs(_ context.Context, fn string, _ time.Time, _ string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.logErr != nil {
		return nil, f.logErr
	}
	if f.reads <= f.readsBefore {
		return nil, nil
	}
	return f.logs[fn], nil
}

func (f *fakeTransport) QueueDepth(_ context.Context, q string) (Depth, error) {
	d, ok := f.depths[q]
	if !ok {
		return Depth{}, fmt.Errorf("queue %s: QueueNotExist", q)
	}
	return d, nil
}

const testInstance = "i-smoketest0000000001"

func outcomeLine(outcome, code, reason string) string {
	b, _ := json.Marshal(map[string]any{
		"time": "2026-01-01T00:00:00Z", "level": "INFO", "msg": "outcome",
		"instanceId": testInstance, "jobId": "j1", "region": "cn-hangzhou",
		"outcome": outcome, "code": code, "reason": reason,
	})
	return string(b)
}

func TestRunJudges(t *testing.T) {
	t.Parallel()
	gone := outcomeLine("GONE", "InstanceNotExists", "instance does not exist")
	tests := []struct {
		name        string
		tr          *fakeTransport
		wantVerdict Verdict
		wantFailure Failure
		wantFn      string
		wantText    string // substring of the diagnosis
	}{
		{"gone in the install logs", &fakeTransport{answer: `{"accepted":1}`, logs: map[string][]string{"install": {gone}}},
			Pass, "", "install", "recorded GONE"},
		{"gone in the poller logs, after a few reads", &fakeTransport{readsBefore: 4, logs: map[string][]string{"install": {"unrelated " + testInstance}, "poller": {"2026-01-01 10:00:00 c-1234 " + gone}}},
			Pass, "", "poller", "the function role's credentials, its HBR permission"},
		{"function missing", &fakeTransport{invokeErr: fmt.Errorf("%w: FunctionNotFound", ErrFunctionMissing)},
			Fail, FunctionMissing, "", "is not deployed in this region: run make deploy"},
		{"invocation denied", &fakeTransport{invokeErr: fmt.Errorf("%w: AccessDenied", ErrInvocationDenied)},
			Fail, InvocationDenied, "", "not allowed to invoke install"},
		{"function error naming a permission", &fakeTransport{invokeErr: &FunctionError{Type: "UnhandledInvocationError", Message: "hbr.InstallBackupClients: Forbidden.RAM"}},
			Fail, HBRPermissionDenied, "", "the function role lacks a permission"},
		{"other function error", &fakeTransport{invokeErr: &FunctionError{Type: "UnhandledInvocationError", Message: "QUEUE_NAME is required"}},
			Fail, InvocationFailed, "", "returned an error: UnhandledInvocationError: QUEUE_NAME is required"},
		{"cli failure", &fakeTransport{invokeErr: errors.New("s: command not found")},
			Fail, InvocationFailed, "", "could not invoke install: s: command not found"},
		{"HBR permission denied", &fakeTransport{logs: map[string][]string{"install": {outcomeLine("FAILED", "Forbidden.RAM", "InstallBackupClients refused the call")}}},
			Fail, HBRPermissionDenied, "install", "HBR refused the function role (outcome FAILED, code Forbidden.RAM"},
		{"NoPermission", &fakeTransport{logs: map[string][]string{"poller": {outcomeLine("FAILED", "NoPermission", "")}}},
			Fail, HBRPermissionDenied, "poller", "make provision"},
		{"unexpected outcome", &fakeTransport{logs: map[string][]string{"poller": {outcomeLine("TIMEOUT", "", "task did not end")}}},
			Fail, UnexpectedOutcome, "poller", "outcome TIMEOUT"},
		{"no outcome", &fakeTransport{logs: map[string][]string{"install": {`{"msg":"accepted","instanceId":"` + testInstance + `"}`}}},
			Fail, NoOutcome, "", "no outcome record for " + testInstance + " in the logs of install and poller within 50ms"},
		{"logs unreadable", &fakeTransport{logErr: errors.New("logConfig does not exist")},
			Fail, NoOutcome, "", "the last log read failed: read the logs of poller: logConfig does not exist"},
		// The ledger comes first: an OSS AccessDenied is the role's, not HBR's.
		{"function error on the ledger", &fakeTransport{invokeErr: &FunctionError{Type: "UnhandledInvocationError",
			Message: "handler.deliver: 1 step(s) failed: instance ledger, instance " + testInstance + ": create …/claim: oss.PutObject [AccessDenied]: HTTP 403 AccessDenied"}},
			Fail, LedgerUnreachable, "", "the functions cannot reach the ledger bucket"},
		{"function error naming an OSS operation", &fakeTransport{invokeErr: &FunctionError{Type: "UnhandledInvocationError",
			Message: "read …/claim: oss.GetObject: transport: dial tcp: lookup hbr-autoinstall-ledger-1-cn-hangzhou.oss-cn-hangzhou.aliyuncs.com: no such host"}},
			Fail, LedgerUnreachable, "", "(LEDGER_BUCKET, by default hbr-autoinstall-ledger-<account>-<region> in the functions' region; OSS_ENDPOINT; the role's oss: permissions"},
		{"cli failure on the ledger", &fakeTransport{invokeErr: errors.New("s install invoke: exit status 1: instance ledger: oss.ListObjectsV2 [NoSuchBucket]")},
			Fail, LedgerUnreachable, "", "run make provision"},
		{"no outcome, the logs show the ledger failing", &fakeTransport{logs: map[string][]string{"poller": {
			`{"level":"ERROR","msg":"outcome not recorded","instanceId":"` + testInstance + `","error":"create …/final: oss.PutObject [AccessDenied]"}`}}},
			Fail, LedgerUnreachable, "", "the functions' logs for " + testInstance + " show it: poller: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := Run(context.Background(), Config{
				Region: "cn-hangzhou", InstanceID: testInstance,
				Timeout: 50 * time.Millisecond, PollEvery: 5 * time.Millisecond,
			}, tt.tr)
			assert.Equal(t, tt.wantVerdict, res.Verdict, res.Diagnosis)
			assert.Equal(t, tt.wantFailure, res.Failure)
			assert.Equal(t, tt.wantFn, res.Function)
			assert.Contains(t, res.Diagnosis, tt.wantText)
			assert.Equal(t, testInstance, res.InstanceID)
			assert.Equal(t, []string{"install"}, tt.tr.invoked)
		})
	}
}

func TestRunReportsQueues(t *testing.T) {
	t.Parallel()
	tr := &fakeTransport{
		logs:   map[string][]string{"install": {outcomeLine("GONE", "InstanceNotExists", "")}},
		depths: map[string]Depth{"jobs": {Visible: 1, Delayed: 2, InFlight: 3}, "installs": {Delayed: 4}},
	}
	res := Run(context.Background(), Config{InstanceID: testInstance, Queue: "jobs", InstallQueue: "installs", DLQ: "dead", PollEvery: time.Millisecond}, tr)
	require.Len(t, res.Queues, 3)
	assert.Equal(t, QueueReport{Name: "jobs", Role: "jobs", Depth: &Depth{Visible: 1, Delayed: 2, InFlight: 3}}, res.Queues[0])
	assert.Equal(t, QueueReport{Name: "installs", Role: "install", Depth: &Depth{Delayed: 4}}, res.Queues[1])
	assert.Equal(t, "dead", res.Queues[2].Name)
	assert.Nil(t, res.Queues[2].Depth)
	assert.Contains(t, res.Queues[2].Error, "QueueNotExist")
	assert.Nil(t, res.Ledger, "no Ledger, not read")

	var out bytes.Buffer
	res.Write(&out)
	assert.Contains(t, out.String(), "PASS  install recorded GONE for "+testInstance)
	assert.Contains(t, out.String(), "outcome   GONE (InstanceNotExists), logged by install")
	assert.Contains(t, out.String(), "queue     jobs (jobs): 1 visible, 2 delayed, 3 in flight")
	assert.Contains(t, out.String(), "queue     installs (install): 0 visible, 4 delayed, 0 in flight")
	assert.NotContains(t, out.String(), "ledger")
	assert.Contains(t, out.String(), "queue     dead (dead-letter): depth unknown: queue dead: QueueNotExist")
}

func TestWriteFlagsADeadLetterQueueWithMessages(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	Result{Verdict: Pass, Queues: []QueueReport{{Name: "dlq", Role: "dead-letter", Depth: &Depth{Visible: 2}}}}.Write(&out)
	assert.Contains(t, out.String(), "2 visible, 0 delayed, 0 in flight  ← events or messages that failed every retry")
}

func TestLedgerTrouble(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text string
		want bool
	}{
		{"instance ledger, instance i-1: create k: oss.PutObject [AccessDenied]", true},
		{"list p: oss.ListObjectsV2: transport: connection refused", true},
		{"oss.GetObject [NoSuchKey]", true},
		{"hbr.InstallBackupClients [Forbidden.RAM]", false},
		{"dial tcp: lookup b.oss-cn-hangzhou.aliyuncs.com: no such host", false},
		{"QUEUE_NAME is required", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, LedgerTrouble(tt.text), tt.text)
	}
}

func TestFindRecord(t *testing.T) {
	t.Parallel()
	other := strings.ReplaceAll(outcomeLine("GONE", "", ""), testInstance, "i-other")
	tests := []struct {
		name    string
		lines   []string
		want    string // outcome; "" for none
		wantErr bool
	}{
		{"bare line", []string{outcomeLine("GONE", "", "")}, "GONE", false},
		{"prefixed and coloured", []string{"\x1b[36mc-65f\x1b[0m 2026-01-01 10:00:00 " + outcomeLine("FAILED", "Forbidden", "")}, "FAILED", false},
		{"brace before the record", []string{"{bad " + outcomeLine("GONE", "", "")}, "GONE", false},
		{"another instance", []string{other}, "", false},
		{"not an outcome", []string{`{"msg":"accepted","instanceId":"` + testInstance + `"}`}, "", false},
		{"first record wins", []string{outcomeLine("TIMEOUT", "", ""), outcomeLine("GONE", "", "")}, "TIMEOUT", false},
		{"no lines", nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec, ok := FindRecord(tt.lines, testInstance)
			assert.Equal(t, tt.want != "", ok)
			assert.Equal(t, tt.want, rec.Outcome)
		})
	}
}

// TestEventIsARunningEvent decodes the synthetic event with the install
// function's own parser.
func TestEventIsARunningEvent(t *testing.T) {
	t.Parallel()
	id := NewInstanceID()
	assert.Regexp(t, `^i-smoke[a-z0-9]{14}$`, id)
	assert.NotEqual(t, id, NewInstanceID())
	now := time.Now()
	b, err := ecsevent.Parse(Event("cn-shanghai", "1234567890123456", id, now), "cn-hangzhou")
	require.NoError(t, err)
	require.Len(t, b.Candidates, 1)
	assert.Equal(t, id, b.Candidates[0].InstanceID)
	assert.Equal(t, "cn-shanghai", b.Candidates[0].Region)
}
