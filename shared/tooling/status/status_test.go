package status_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger/ledgertest"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/osssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ossstore"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/tooling/status"
)

const (
	region  = "cn-hangzhou"
	account = "1234567890123456"
	bucket  = "hbr-autoinstall-ledger-1234567890123456-cn-hangzhou"
	prefix  = "hbr-autoinstall/ledger/"
	lease   = 30 * time.Minute
)

var operator = callers.Principal{Name: "operator", Credentials: cloudauth.Credentials{
	AccessKeyID: "LTAIoperatorkey", AccessKeySecret: "operator-secret"}}

// now is when the reports judge the ledgers.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock for the ledgers that write the entries.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// newOSS starts the OSS emulator with the ledger's bucket and returns a
// store client that reaches it through the real SDK (shared/ossstore).
func newOSS(t *testing.T) (*osssim.Server, *ossstore.Client) {
	t.Helper()
	sim := osssim.New(osssim.Options{Principals: callers.Set{operator}, Region: region})
	url, err := sim.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close() })
	sim.CreateBucket(bucket)
	c, err := ossstore.New(ossstore.Config{Endpoint: url, Region: region, Bucket: bucket, Timeout: 5 * time.Second}, operator.Credentials)
	require.NoError(t, err)
	return sim, c
}

func newLedger(st ledger.Store, clk *clock) *ledger.Ledger {
	l := &ledger.Ledger{Store: st, Prefix: prefix, Account: account, Lease: lease, StaleIntent: time.Minute}
	if clk != nil {
		l.Now = clk.Now
	}
	return l
}

// writer writes chains into a ledger the way the functions do.
type writer struct {
	t   *testing.T
	l   *ledger.Ledger
	clk *clock
}

func (w writer) claim(id, job string, at time.Time) ledger.Owner {
	w.t.Helper()
	w.clk.Set(at)
	d, err := w.l.Claim(context.Background(), ledger.Announcement{Region: region, Instance: id, Job: job,
		Trigger: "ecs:Instance:StateChange", EventTime: at, Via: "ev-" + job})
	require.NoError(w.t, err)
	require.Contains(w.t, []ledger.Kind{ledger.Owned}, d.Kind, "%s: %s", id, d.Reason)
	return d.Owner
}

func (w writer) task(o ledger.Owner, attempt int, taskID string) {
	w.t.Helper()
	b, err := w.l.Begin(context.Background(), o, attempt, "msg-"+taskID)
	require.NoError(w.t, err)
	require.Equal(w.t, ledger.Go, b.Start)
	ok, err := w.l.RecordTask(context.Background(), o, ledger.Task{Attempt: b.Attempt, TaskID: taskID, StartedAt: w.clk.Now(),
		Deadline: w.clk.Now().Add(17 * time.Minute)})
	require.NoError(w.t, err)
	require.True(w.t, ok)
}

func (w writer) finish(o ledger.Owner, f ledger.Final) {
	w.t.Helper()
	res, err := w.l.Finish(context.Background(), o, f)
	require.NoError(w.t, err)
	require.True(w.t, res.Written)
}

// seedScenario writes one instance in each state through the ledger, over
// the wire, and two unreadable ones beside the ledger.
func seedScenario(t *testing.T, sim *osssim.Server, st ledger.Store) *ledger.Ledger {
	t.Helper()
	clk := &clock{}
	l := newLedger(st, clk)
	w := writer{t: t, l: l, clk: clk}
	recent := now.Add(-10 * time.Minute)

	o := w.claim("i-01installed", "j-1", recent)
	w.task(o, 1, "t-1")
	w.finish(o, ledger.Final{Outcome: "INSTALLED", Reason: "the client is ACTIVATED", TaskID: "t-1", Attempts: 1})

	o = w.claim("i-02protected", "j-2", now.Add(-time.Hour))
	w.finish(o, ledger.Final{Outcome: "FAILED", Code: "InstallFailed", Reason: "the install task failed"})
	o = w.claim("i-02protected", "j-3", recent) // announced again after the failure
	require.Equal(t, 2, o.Generation)
	w.task(o, 1, "t-3")
	w.finish(o, ledger.Final{Outcome: "PROTECTED", Reason: "bound to the backup policy", PolicyID: "po-1", Supersedes: o.Supersedes})

	o = w.claim("i-03installing", "j-4", recent)
	w.task(o, 2, "t-4")

	w.claim("i-04claimed", "j-5", recent)

	o = w.claim("i-05stale", "j-6", now.Add(-2*time.Hour))
	w.task(o, 1, "t-6")

	o = w.claim("i-06failed", "j-7", recent)
	w.finish(o, ledger.Final{Outcome: "FAILED", Code: "InstallFailed", Reason: "the install task failed twice"})

	o = w.claim("i-07corrupt", "j-8", recent)
	require.NoError(t, sim.PutObject(bucket, l.InstancePrefix(region, "i-07corrupt")+"g000001/final", []byte("{not json")))

	w.claim("i-08huge", "j-9", recent)
	require.NoError(t, sim.PutObject(bucket, l.InstancePrefix(region, "i-08huge")+"g000001/final", bytes.Repeat([]byte("x"), ossstore.MaxObjectBytes+1)))

	o = w.claim("i-09bound", "j-10", recent)
	w.finish(o, ledger.Final{Outcome: "ALREADY_PROTECTED", Reason: "already bound", PolicyID: "po-2"})

	o = w.claim("i-10skipped", "j-11", recent)
	w.finish(o, ledger.Final{Outcome: "SKIPPED", Reason: "excluded by env=dev"})

	// Not the ledger's: another region, and a key outside the layout.
	require.NoError(t, sim.PutObject(bucket, prefix+account+"/cn-shanghai/i-elsewhere/g000001/claim", []byte(`{}`)))
	require.NoError(t, sim.PutObject(bucket, prefix+account+"/"+region+"/README", []byte(`hello`)))
	return newLedger(st, nil)
}

func byID(rep status.Report) map[string]status.Instance {
	out := map[string]status.Instance{}
	for _, in := range rep.Instances {
		out[in.Instance] = in
	}
	return out
}

func ids(es []status.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Instance
	}
	return out
}

// TestReadOverTheWire reads a ledger written by ledger.Ledger through the
// OSS SDK against the emulator.
func TestReadOverTheWire(t *testing.T) {
	t.Parallel()
	sim, store := newOSS(t)
	l := seedScenario(t, sim, store)

	rep, err := status.Read(context.Background(), l, region, now)
	require.NoError(t, err)
	assert.Equal(t, region, rep.Region)
	assert.Equal(t, prefix+account+"/"+region+"/", rep.Prefix)
	assert.Empty(t, rep.Incomplete)
	got := byID(rep)
	require.Len(t, got, 10)

	type want struct {
		state            status.State
		gen              int
		job, outcome     string
		code, policy     string
		supersedes, task string
		attempt          int
	}
	for id, w := range map[string]want{
		"i-01installed":  {state: status.Final, gen: 1, job: "j-1", outcome: "INSTALLED", task: "t-1", attempt: 1},
		"i-02protected":  {state: status.Final, gen: 2, job: "j-3", outcome: "PROTECTED", policy: "po-1", supersedes: "j-2/FAILED", task: "t-3", attempt: 1},
		"i-03installing": {state: status.Installing, gen: 1, job: "j-4", task: "t-4", attempt: 2},
		"i-04claimed":    {state: status.Claimed, gen: 1, job: "j-5"},
		"i-05stale":      {state: status.Stale, gen: 1, job: "j-6", task: "t-6", attempt: 1},
		"i-06failed":     {state: status.Final, gen: 1, job: "j-7", outcome: "FAILED", code: "InstallFailed"},
		"i-07corrupt":    {state: status.Unreadable},
		"i-08huge":       {state: status.Unreadable},
		"i-09bound":      {state: status.Final, gen: 1, job: "j-10", outcome: "ALREADY_PROTECTED", policy: "po-2"},
		"i-10skipped":    {state: status.Final, gen: 1, job: "j-11", outcome: "SKIPPED"},
	} {
		in := got[id]
		assert.Equal(t, w, want{state: in.State, gen: in.Generation, job: in.Job, outcome: in.Outcome, code: in.Code, policy: in.PolicyID,
			supersedes: in.Supersedes, task: in.TaskID, attempt: in.Attempt}, id)
	}
	// An unreadable entry is named by its key, and the run went on.
	assert.Contains(t, got["i-07corrupt"].Error, prefix+account+"/"+region+"/i-07corrupt/g000001/final")
	assert.Contains(t, got["i-08huge"].Error, prefix+account+"/"+region+"/i-08huge/g000001/final")
	assert.Equal(t, now.Add(-10*time.Minute).Add(lease), got["i-04claimed"].LeaseUntil)
	assert.Equal(t, now.Add(-2*time.Hour).Add(lease), got["i-05stale"].LeaseUntil)

	assert.Equal(t, status.Summary{
		Instances: 10,
		States:    map[status.State]int{status.Final: 5, status.Installing: 1, status.Claimed: 1, status.Stale: 1, status.Unreadable: 2},
		Outcomes:  map[string]int{"INSTALLED": 1, "PROTECTED": 1, "FAILED": 1, "ALREADY_PROTECTED": 1, "SKIPPED": 1},
		Protected: 3, Unprotected: 7, Stale: 1, Unreadable: 2,
	}, rep.Summary)
	assert.Equal(t, []string{"i-03installing", "i-04claimed", "i-05stale", "i-06failed", "i-07corrupt", "i-08huge", "i-10skipped"}, ids(rep.Unprotected))
	require.Len(t, rep.Stale, 1)
	assert.Equal(t, "i-05stale", rep.Stale[0].Instance)
	assert.Contains(t, rep.Stale[0].Reason, "lease passed at 2026-03-01T10:30:00Z with no final record")
}

func TestUnprotectedDependsOnThePolicy(t *testing.T) {
	t.Parallel()
	sim, store := newOSS(t)
	l := seedScenario(t, sim, store)
	tests := []struct {
		name    string
		opts    status.Options
		want    []string
		protect int
	}{
		{"an active client protects", status.Options{}, []string{"i-03installing", "i-04claimed", "i-05stale", "i-06failed", "i-07corrupt", "i-08huge", "i-10skipped"}, 3},
		{"a policy is expected", status.Options{PolicyExpected: true, Workers: 2},
			[]string{"i-01installed", "i-03installing", "i-04claimed", "i-05stale", "i-06failed", "i-07corrupt", "i-08huge", "i-10skipped"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rep, err := tt.opts.Read(context.Background(), l, region, now)
			require.NoError(t, err)
			assert.Equal(t, tt.want, ids(rep.Unprotected))
			assert.Equal(t, tt.protect, rep.Summary.Protected)
			assert.Equal(t, tt.opts.Protecting(), rep.Protecting)
		})
	}
}

func TestPrintTableAndJSON(t *testing.T) {
	t.Parallel()
	sim, store := newOSS(t)
	l := seedScenario(t, sim, store)
	rep, err := status.Read(context.Background(), l, region, now)
	require.NoError(t, err)

	var out bytes.Buffer
	require.NoError(t, rep.PrintTable(&out))
	text := out.String()
	for _, line := range []string{
		"instance ledger hbr-autoinstall/ledger/1234567890123456/cn-hangzhou/ (region cn-hangzhou) at 2026-03-01T12:00:00Z: 10 instances",
		"INSTANCE        GEN  STATE       DETAIL",
		"i-02protected   2    final       PROTECTED: bound to the backup policy; policy po-1; supersedes j-2/FAILED; recorded by j-3 at 2026-03-01T11:50:00Z",
		"i-03installing  1    installing  installing task t-4 (attempt 2) for j-4, lease until 2026-03-01T12:20:00Z",
		"i-04claimed     1    claimed     claimed by j-5 at 2026-03-01T11:50:00Z (lease until 2026-03-01T12:20:00Z)",
		"i-05stale       1    stale       claimed by j-6 at 2026-03-01T10:00:00Z, lease passed at 2026-03-01T10:30:00Z with no final record (last task t-6, attempt 1)",
		"i-06failed      1    final       FAILED (InstallFailed): the install task failed twice; recorded by j-7",
		"i-07corrupt     -    unreadable  ",
		"summary: 10 instances: 5 final (INSTALLED 1, FAILED 1, SKIPPED 1, PROTECTED 1, ALREADY_PROTECTED 1), 1 installing, 1 claimed, 1 stale, 2 unreadable",
		"protected: 3 (outcome INSTALLED, ALREADY_INSTALLED, PROTECTED, ALREADY_PROTECTED)",
		"not protected: 7",
		"  i-06failed  FAILED (InstallFailed): the install task failed twice",
		"  i-10skipped  SKIPPED: excluded by env=dev",
		"  i-04claimed  claimed: claimed by j-5",
		"stale claims: 1",
		"  i-05stale  generation 1: claimed by j-6",
	} {
		assert.Contains(t, text, line)
	}

	out.Reset()
	require.NoError(t, rep.WriteJSON(&out))
	var doc struct {
		Instances   []map[string]any `json:"instances"`
		Summary     map[string]any   `json:"summary"`
		Unprotected []map[string]any `json:"unprotected"`
		Stale       []map[string]any `json:"stale"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &doc))
	assert.Len(t, doc.Instances, 10)
	assert.EqualValues(t, 10, doc.Summary["instances"])
	assert.EqualValues(t, 7, doc.Summary["unprotected"])
	assert.Len(t, doc.Unprotected, 7)
	assert.Len(t, doc.Stale, 1)
	assert.Equal(t, "i-02protected", doc.Instances[1]["instanceId"])
	assert.Equal(t, "j-2/FAILED", doc.Instances[1]["supersedes"])
	assert.NotContains(t, doc.Instances[3], "outcome", "empty fields are left out")
}

func TestEmptyLedger(t *testing.T) {
	t.Parallel()
	_, store := newOSS(t)
	rep, err := status.Read(context.Background(), newLedger(store, nil), region, now)
	require.NoError(t, err)
	assert.Equal(t, 0, rep.Summary.Instances)
	var out bytes.Buffer
	require.NoError(t, rep.PrintTable(&out))
	assert.Contains(t, out.String(), ": 0 instances\n")
	assert.Contains(t, out.String(), "summary: 0 instances\n")
	out.Reset()
	require.NoError(t, rep.WriteJSON(&out))
	assert.Contains(t, out.String(), `"instances": []`)
	assert.Contains(t, out.String(), `"unprotected": []`)
}

func TestReadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		setup    func(sim *osssim.Server) context.Context
		wantKind fault.Kind
		wantIs   error
	}{
		{"the listing fails", func(sim *osssim.Server) context.Context {
			sim.SetFaults(osssim.Faults{ServerErrorRate: 1})
			return context.Background()
		}, fault.Retryable, nil},
		{"cancelled", func(*osssim.Server) context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, fault.Permanent, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, store := newOSS(t)
			l := seedScenario(t, sim, store)
			rep, err := status.Read(tt.setup(sim), l, region, now)
			require.Error(t, err)
			assert.Equal(t, tt.wantKind, fault.KindOf(err), "%v", err)
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
			assert.NotEmpty(t, rep.Incomplete)
		})
	}
}

// TestReadManyInstances reads a ledger of more than 10 000 instances over
// the wire (3 000 under the race detector, 1 000 with -short): the listing
// pages, the reads run in parallel, and every instance is reported once.
// Without -race it takes about 6 s on two cores.
func TestReadManyInstances(t *testing.T) {
	t.Parallel()
	n := 10_500
	switch {
	case testing.Short():
		n = 1_000
	case raceBuild:
		n = 3_000
	}
	sim, store := newOSS(t)
	// Written by ledger.Ledger into memory, then copied into the emulator
	// in-process: seeding this many through HTTP would only slow the test.
	mem := ledgertest.New()
	clk := &clock{}
	l := newLedger(mem, clk)
	w := writer{t: t, l: l, clk: clk}
	for i := range n {
		id := fmt.Sprintf("i-bulk%06d", i)
		o := w.claim(id, "j-"+id, now.Add(-10*time.Minute))
		switch i % 4 {
		case 0, 1:
			w.finish(o, ledger.Final{Outcome: "INSTALLED", Reason: "the client is ACTIVATED"})
		case 2:
			w.finish(o, ledger.Final{Outcome: "NOT_READY", Reason: "Cloud Assistant never came up"})
		}
	}
	ctx := context.Background()
	for _, k := range mem.Keys() {
		body, err := mem.Get(ctx, k)
		require.NoError(t, err)
		require.NoError(t, sim.PutObject(bucket, k, body))
	}

	var progress, total int
	var mu sync.Mutex
	opts := status.Options{Workers: 64, Progress: func(done, all int) {
		mu.Lock()
		defer mu.Unlock()
		progress, total = max(progress, done), all
	}}
	start := time.Now()
	rep, err := opts.Read(ctx, newLedger(store, nil), region, now)
	require.NoError(t, err)
	t.Logf("read %d instances in %s", n, time.Since(start))
	assert.Equal(t, n, rep.Summary.Instances)
	assert.Equal(t, map[status.State]int{status.Final: n - n/4, status.Claimed: n / 4}, rep.Summary.States)
	assert.Equal(t, n/2, rep.Summary.Protected)
	assert.Len(t, rep.Unprotected, n-n/2)
	assert.Equal(t, n, progress)
	assert.Equal(t, n, total)
	for i, in := range rep.Instances {
		require.Equal(t, fmt.Sprintf("i-bulk%06d", i), in.Instance, "in instance order, each once")
	}
	assert.Greater(t, sim.Calls()["oss.ListObjectsV2"], n, "a listing per instance, and the scan's pages")
	assert.True(t, strings.HasPrefix(rep.Prefix, prefix))
}
