package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/fc-runtime-go-sdk/fccontext"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger/ledgertest"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/reconcile"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/scope"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/taskqueue"
)

// sweepCloud is a hand-written fake of every client a sweep touches. It
// keeps one ordered journal of acceptances and sends, so a test can check
// that each instance is accepted before its message is sent.
type sweepCloud struct {
	mu        sync.Mutex
	instances []ecs.Instance
	clients   []hbr.BackupClient
	listErr   error
	sendErr   error
	// clientErrs fail the next DescribeBackupClients calls, one each.
	clientErrs []error
	// storeDelay slows every call of the ledger's store down.
	storeDelay time.Duration
	journal    []string
	sent       []job.Message
	lists      int
	store      *ledgertest.Store
}

func (f *sweepCloud) note(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.journal = append(f.journal, s)
}

func (f *sweepCloud) HBR(context.Context, string) (HBR, error) { return f, nil }
func (f *sweepCloud) ECS(context.Context, string) (ECS, error) { return f, nil }
func (f *sweepCloud) Queue(context.Context) (Sender, error)    { return f, nil }

// InstallQueue is the same journal: a sweep's install jobs go to the
// install queue, its continuations to the job queue.
func (f *sweepCloud) InstallQueue(context.Context) (Sender, error) { return f, nil }
func (f *sweepCloud) Store(context.Context) (ledger.Store, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.store == nil {
		f.store = ledgertest.New()
	}
	if f.storeDelay > 0 {
		return slowStore{Store: f.store, delay: f.storeDelay}, nil
	}
	return f.store, nil
}

// slowStore is a ledger store whose every call takes delay.
type slowStore struct {
	ledger.Store
	delay time.Duration
}

func (s slowStore) List(ctx context.Context, prefix, after string, max int) ([]string, bool, error) {
	time.Sleep(s.delay)
	return s.Store.List(ctx, prefix, after, max)
}

func (s slowStore) Get(ctx context.Context, key string) ([]byte, error) {
	time.Sleep(s.delay)
	return s.Store.Get(ctx, key)
}
func (f *sweepCloud) Topic(context.Context) (Publisher, error) { return nil, nil }

// CreatePolicyBindings and DescribePolicyBindings: no backup policy is
// configured in these tests, so binding is never called.
func (f *sweepCloud) CreatePolicyBindings(context.Context, string, []string) error { return nil }

func (f *sweepCloud) DescribePolicyBindings(context.Context, []string) (map[string]string, error) {
	return nil, nil
}

func (f *sweepCloud) DescribeTask(context.Context, string) (hbr.Task, error) {
	return hbr.Task{}, errors.New("a sweep never polls")
}

func (f *sweepCloud) InstallBackupClients(context.Context, []string) (hbr.InstallResult, error) {
	return hbr.InstallResult{}, errors.New("a sweep never installs")
}

func (f *sweepCloud) DescribeBackupClients(_ context.Context, ids []string) ([]hbr.BackupClient, error) {
	f.mu.Lock()
	if len(f.clientErrs) > 0 {
		err := f.clientErrs[0]
		f.clientErrs = f.clientErrs[1:]
		f.mu.Unlock()
		return nil, err
	}
	f.mu.Unlock()
	var out []hbr.BackupClient
	for _, c := range f.clients {
		for _, id := range ids {
			if c.InstanceID == id {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

func (f *sweepCloud) ListInstances(context.Context, string) ([]ecs.Instance, error) {
	return nil, errors.New("a sweep lists in pages")
}

// ListInstancesPage lists f.instances in pages of 100; the token is the
// offset of the next page.
func (f *sweepCloud) ListInstancesPage(_ context.Context, status, token string) (ecs.Page, error) {
	f.mu.Lock()
	f.lists++
	f.mu.Unlock()
	if status != ecs.StatusRunning {
		return ecs.Page{}, errors.New("only running instances are swept")
	}
	if f.listErr != nil {
		return ecs.Page{}, f.listErr
	}
	from := 0
	if token != "" {
		var err error
		if from, err = strconv.Atoi(token); err != nil || from > len(f.instances) {
			return ecs.Page{}, fault.Wrap("ecs.DescribeInstances", fault.Permanent, "InvalidParameter", errors.New("bad token"))
		}
	}
	to := min(from+100, len(f.instances))
	p := ecs.Page{Instances: f.instances[from:to]}
	if to < len(f.instances) {
		p.NextToken = strconv.Itoa(to)
	}
	return p, nil
}

func (f *sweepCloud) DescribeInstances(context.Context, []string) ([]ecs.Instance, error) {
	return nil, errors.New("a sweep lists, it does not describe")
}

func (f *sweepCloud) CloudAssistantReady(context.Context, []string) (map[string]bool, error) {
	return nil, errors.New("a sweep does not check Cloud Assistant")
}

func (f *sweepCloud) TagInstance(context.Context, string, string, string) error {
	return errors.New("a sweep writes no tag")
}

func (f *sweepCloud) Send(_ context.Context, m taskqueue.Message) (string, error) {
	if f.sendErr != nil {
		return "", f.sendErr
	}
	msg, err := job.Decode(m.Body)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	f.sent = append(f.sent, msg)
	f.mu.Unlock()
	for _, in := range msg.Instances {
		f.note("sent " + in.ID)
	}
	return "m", nil
}

// sweepRecorder journals acceptances into the cloud's journal.
type sweepRecorder struct {
	cloud    *sweepCloud
	mu       sync.Mutex
	accepted []outcome.Acceptance
	records  []outcome.Record
}

func (r *sweepRecorder) Accepted(_ context.Context, a outcome.Acceptance) {
	r.mu.Lock()
	r.accepted = append(r.accepted, a)
	r.mu.Unlock()
	r.cloud.note("accepted " + a.InstanceID)
}

func (r *sweepRecorder) Joined(context.Context, outcome.Join) {}

func (r *sweepRecorder) Record(_ context.Context, o outcome.Record) {
	r.mu.Lock()
	r.records = append(r.records, o)
	r.mu.Unlock()
}

// sweepFixture is a region with 2 covered, 1 installing, 1 excluded and 3
// missing instances.
func sweepFixture(t *testing.T) (*sweepCloud, *sweepRecorder, Deps, *bytes.Buffer) {
	t.Helper()
	rules, err := scope.Parse("", "backup=off", "", "")
	require.NoError(t, err)
	c := &sweepCloud{
		instances: []ecs.Instance{
			{ID: "i-cov00001", Status: ecs.StatusRunning},
			{ID: "i-cov00002", Status: ecs.StatusRunning},
			{ID: "i-ins00001", Status: ecs.StatusRunning},
			{ID: "i-off00001", Status: ecs.StatusRunning, Tags: map[string]string{"backup": "off"}},
			{ID: "i-mis00001", Status: ecs.StatusRunning},
			{ID: "i-mis00002", Status: ecs.StatusRunning},
			{ID: "i-mis00003", Status: ecs.StatusRunning},
		},
		clients: []hbr.BackupClient{
			{InstanceID: "i-cov00001", Status: "ACTIVATED"},
			{InstanceID: "i-cov00002", Status: "ACTIVATED"},
			{InstanceID: "i-ins00001", Status: "INSTALLING"},
			{InstanceID: "i-mis00003", Status: "INSTALL_FAILED"},
		},
	}
	rec := &sweepRecorder{cloud: c}
	var buf bytes.Buffer
	d := Deps{
		Region: "cn-hangzhou",
		Policy: install.Policy{ReadinessTimeout: 10 * time.Minute},
		Cloud:  c, Outcomes: rec, Scope: rules,
		Logger: slog.New(slog.NewJSONHandler(&buf, nil)),
		Now:    func() time.Time { return t0.Add(300 * time.Millisecond) },
		Sleep:  func(time.Duration) {},
	}
	return c, rec, d, &buf
}

// logLine returns the last log line with the given msg.
func logLine(t *testing.T, buf *bytes.Buffer, msg string) map[string]any {
	t.Helper()
	var found map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var m map[string]any
		require.NoError(t, json.Unmarshal(line, &m))
		if m["msg"] == msg {
			found = m
		}
	}
	require.NotNil(t, found, "no %q log line in:\n%s", msg, buf.String())
	return found
}

func TestReconcileSweepIDAndDryRunFromTheTrigger(t *testing.T) {
	t.Parallel()
	withRequestID := func(id string) context.Context {
		return fccontext.NewContext(context.Background(), &fccontext.FcContext{RequestID: id})
	}
	tests := []struct {
		name    string
		ctx     context.Context
		payload string
		wantID  string
		wantAt  time.Time
		dryRun  bool
	}{
		{"timer", context.Background(),
			`{"triggerTime":"2026-11-27T03:00:00Z","triggerName":"daily","payload":"{}"}`,
			"2026-11-27T03:00:00Z", time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC), false},
		{"timer in another zone, fields the platform may add", context.Background(),
			`{"triggerTime":"2026-11-27T11:00:00+08:00","triggerName":"daily","payload":"","newField":1}`,
			"2026-11-27T03:00:00Z", time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC), false},
		{"timer with a dry-run payload", context.Background(),
			`{"triggerTime":"2026-11-27T03:00:00Z","triggerName":"daily","payload":"{\"dryRun\":true}"}`,
			"2026-11-27T03:00:00Z", time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC), true},
		{"manual, named by the request id", withRequestID("1-6746a1b2-7c3d5e9f"), `{}`,
			"1-6746a1b2-7c3d5e9f", t0, false},
		{"manual dry run", withRequestID("1-6746a1b2-7c3d5e9f"), `{"dryRun":true}`,
			"1-6746a1b2-7c3d5e9f", t0, true},
		{"manual, empty payload, no FC context", context.Background(), ``,
			"manual-1795780800", t0, false},
		{"manual, named by the caller", withRequestID("1-x"), ` {"sweepId":"backfill-1","dryRun":false} `,
			"backfill-1", t0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, rec, d, _ := sweepFixture(t)
			rep, err := NewReconcile(d, 600, 1000).Handle(tt.ctx, []byte(tt.payload))
			require.NoError(t, err)
			assert.Equal(t, tt.wantID, rep.SweepID)
			assert.Equal(t, tt.dryRun, rep.DryRun)
			assert.Equal(t, 3, rep.Missing)
			if tt.dryRun {
				assert.Zero(t, rep.Enqueued)
				assert.Empty(t, c.sent)
				assert.Empty(t, rec.accepted)
				return
			}
			assert.Equal(t, 3, rep.Enqueued)
			require.Len(t, c.sent, 1)
			for _, in := range c.sent[0].Instances {
				assert.Equal(t, job.JobID("reconcile", tt.wantID, in.ID), in.JobID)
				assert.Equal(t, tt.wantAt, in.EventTime, "the event time is the trigger's, in whole seconds")
			}
		})
	}
}

func TestReconcileAcceptsBeforeSending(t *testing.T) {
	t.Parallel()
	c, rec, d, buf := sweepFixture(t)
	rep, err := NewReconcile(d, 600, 1000).Handle(context.Background(),
		[]byte(`{"triggerTime":"2026-11-27T03:00:00Z","triggerName":"daily","payload":"{}"}`))
	require.NoError(t, err)

	assert.Equal(t, []string{
		"accepted i-mis00001", "accepted i-mis00002", "accepted i-mis00003",
		"sent i-mis00001", "sent i-mis00002", "sent i-mis00003",
	}, c.journal)
	require.Len(t, c.sent, 1)
	for i, a := range rec.accepted {
		in := c.sent[0].Instances[i]
		assert.Equal(t, outcome.Acceptance{JobID: in.JobID, InstanceID: in.ID, Region: "cn-hangzhou",
			OriginEventID: "reconcile:2026-11-27T03:00:00Z", Trigger: "reconcile"}, a)
	}
	assert.Equal(t, job.KindInstallRetry, c.sent[0].Kind)

	line := logLine(t, buf, "coverage")
	assert.Equal(t, "INFO", line["level"])
	assert.Equal(t, "timer", line["trigger"])
	for k, want := range map[string]float64{"total": 7, "covered": 2, "installing": 1, "excludedTotal": 1,
		"missing": 3, "failed": 1, "enqueued": 3, "messages": 1} {
		assert.Equal(t, want, line[k], k)
	}
	assert.Equal(t, map[string]any{"exclude tag backup=off": 1.0}, line["excluded"])
	assert.Equal(t, map[string]any{"ACTIVATED": 2.0, "INSTALLING": 1.0, "INSTALL_FAILED": 1.0}, line["clientStatus"])
	assert.Equal(t, 2, rep.Covered)
}

func TestReconcileRejectsMalformedPayloads(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ payload, want string }{
		"not JSON":                 {`dry run please`, "not a JSON object"},
		"an array":                 {`[{"dryRun":true}]`, "not a JSON object"},
		"broken JSON":              {`{"dryRun":`, "not valid JSON"},
		"misspelt dry run":         {`{"dry_run":true}`, `unknown field "dry_run"`},
		"dry run not a bool":       {`{"dryRun":"yes"}`, "dryRun \"yes\" is not true or false"},
		"hostile sweep id":         {`{"sweepId":"../../x"}`, "sweepId"},
		"sweep id not a string":    {`{"sweepId":7}`, "sweepId 7"},
		"trigger time not a time":  {`{"triggerTime":"yesterday","payload":""}`, "not an RFC 3339 time"},
		"trigger time not a str":   {`{"triggerTime":1795748400}`, "triggerTime 1795748400 is not a string"},
		"timer payload not JSON":   {`{"triggerTime":"2026-11-27T03:00:00Z","payload":"dry"}`, "payload \"dry\" is not a JSON object"},
		"timer payload sweep id":   {`{"triggerTime":"2026-11-27T03:00:00Z","payload":"{\"sweepId\":\"x\"}"}`, `unknown field "sweepId"`},
		"timer payload not string": {`{"triggerTime":"2026-11-27T03:00:00Z","payload":{"dryRun":true}}`, "is not a string"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, _, d, buf := sweepFixture(t)
			_, err := NewReconcile(d, 600, 1000).Handle(context.Background(), []byte(tt.payload))
			require.Error(t, err)
			assert.True(t, fault.Is(err, fault.Invalid), "kind %v", fault.KindOf(err))
			assert.Contains(t, err.Error(), tt.want)
			assert.Zero(t, c.lists, "nothing is listed")
			assert.Empty(t, c.sent)
			assert.Equal(t, "ERROR", logLine(t, buf, "rejected payload")["level"])
		})
	}
}

func TestReconcileFailures(t *testing.T) {
	t.Parallel()
	throttled := fault.Wrap("ecs.DescribeInstances", fault.Retryable, "Throttling.User", errors.New("slow down"))
	queueDown := fault.Wrap("taskqueue.Send", fault.Retryable, "ServiceUnavailable", errors.New("503"))
	denied := fault.Wrap("taskqueue.Send", fault.Permanent, "AccessDenied", errors.New("no"))
	tests := []struct {
		name       string
		mutate     func(c *sweepCloud)
		wantKind   fault.Kind
		wantLog    string
		wantAccept int
	}{
		{"listing throttled", func(c *sweepCloud) { c.listErr = throttled }, fault.Retryable, "sweep failed", 0},
		{"queue down", func(c *sweepCloud) { c.sendErr = queueDown }, fault.Retryable, "coverage", 3},
		{"queue refuses", func(c *sweepCloud) { c.sendErr = denied }, fault.Permanent, "coverage", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, rec, d, buf := sweepFixture(t)
			tt.mutate(c)
			_, err := NewReconcile(d, 600, 1000).Handle(context.Background(), []byte(`{}`))
			require.Error(t, err)
			assert.Equal(t, tt.wantKind, fault.KindOf(err), "%v", err)
			if tt.wantKind == fault.Permanent {
				assert.Len(t, rec.records, tt.wantAccept, "a queue that can never be used ends the accepted instances as FAILED")
			}
			assert.Empty(t, c.sent)
			assert.Len(t, rec.accepted, tt.wantAccept)
			assert.Equal(t, "ERROR", logLine(t, buf, tt.wantLog)["level"])
		})
	}
}

func TestReconcilePartEndsBeforeTheDeadline(t *testing.T) {
	h := NewReconcile(Deps{}, 600, 0)
	tests := []struct {
		name     string
		deadline time.Duration // from now; 0: no deadline
		want     bool
	}{
		{"far deadline", 10 * time.Minute, false},
		{"a short timeout keeps a quarter", 20 * time.Second, false},
		{"past the deadline", -time.Second, true},
		{"no deadline: the budget", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.deadline != 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			assert.Equal(t, tc.want, h.stopper(ctx)())
		})
	}
}

// A throttled DescribeBackupClients call is made again after a short pause
// (the handler's Sleep) and the sweep completes; before, one throttled call
// among a region's hundred failed the whole sweep.
func TestReconcileRetriesAThrottledPage(t *testing.T) {
	t.Parallel()
	c, rec, d, buf := sweepFixture(t)
	c.clientErrs = []error{
		fault.Wrap("hbr.DescribeBackupClients", fault.Retryable, "Throttling.User", errors.New("slow down")),
		fault.Wrap("hbr.DescribeBackupClients", fault.Retryable, "ServiceUnavailable", errors.New("503")),
	}
	var mu sync.Mutex
	var paused []time.Duration
	d.Sleep = func(p time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		paused = append(paused, p)
	}
	rep, err := NewReconcile(d, 600, 1000).Handle(context.Background(), []byte(`{}`))
	require.NoError(t, err)
	assert.True(t, rep.Complete)
	assert.Equal(t, 3, rep.Enqueued)
	assert.Equal(t, 2, rep.Retries)
	assert.Len(t, rec.accepted, 3)
	require.Len(t, paused, 2)
	assert.InDelta(t, 150*time.Millisecond, paused[0], float64(50*time.Millisecond), "200 ms, jittered over [100, 200]")
	assert.InDelta(t, 300*time.Millisecond, paused[1], float64(100*time.Millisecond), "400 ms, jittered over [200, 400]")
	line := logLine(t, buf, "coverage")
	assert.Equal(t, "INFO", line["level"])
	assert.Equal(t, 2.0, line["retries"])
}

// With a slow ledger store and many unrecorded instances, a part stops
// reading before its invocation's deadline and queues a continuation; the
// next parts read on from there and the sweep completes. Before, the reads
// ran into the deadline and the sweep failed every time.
func TestReconcileLedgerPassEndsBeforeTheDeadlineAndContinues(t *testing.T) {
	t.Parallel()
	const timeout = 1200 * time.Millisecond // a quarter kept: reads stop ~300 ms before
	c, rec, d, buf := sweepFixture(t)
	store, err := c.Store(context.Background())
	require.NoError(t, err)
	l := &ledger.Ledger{Store: store, Now: func() time.Time { return t0.Add(-time.Hour) }}
	dead := make([]string, 1500)
	for i := range dead {
		dead[i] = "i-dead" + strconv.Itoa(10000+i)
		_, err := l.Claim(context.Background(), ledger.Announcement{Region: "cn-hangzhou", Instance: dead[i], Job: "j-" + dead[i]})
		require.NoError(t, err)
	}
	c.storeDelay = 10 * time.Millisecond // a read: the listing beside the first claim, 10 ms
	h := NewReconcile(d, 600, 1000)

	part := func(run func(ctx context.Context) (reconcile.Report, error)) reconcile.Report {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		start := time.Now()
		rep, err := run(ctx)
		require.NoError(t, err)
		assert.Less(t, time.Since(start), timeout, "part %d ends before its deadline", rep.Parts)
		return rep
	}
	rep := part(func(ctx context.Context) (reconcile.Report, error) { return h.Handle(ctx, []byte(`{"sweepId":"s1"}`)) })
	require.False(t, rep.Complete, "1 500 reads do not fit in one part")
	assert.Positive(t, rep.Unrecorded)
	assert.Less(t, rep.Unrecorded, len(dead))
	assert.Zero(t, rep.Listed, "the listing waits for the ledger pass")
	assert.Equal(t, "INFO", logLine(t, buf, "sweep part")["level"])
	handled := map[int]bool{}
	for !rep.Complete && rep.Parts < 10 {
		var next *job.Message
		c.mu.Lock()
		for _, m := range c.sent {
			if m.Kind == job.KindSweep && !handled[m.Sweep.Part] {
				next = &m
			}
		}
		c.mu.Unlock()
		require.NotNil(t, next, "part %d queued its continuation", rep.Parts)
		handled[next.Sweep.Part] = true
		rep = part(func(ctx context.Context) (reconcile.Report, error) { return h.Continue(ctx, *next) })
	}
	assert.True(t, rep.Complete)
	assert.Equal(t, len(dead), rep.Unrecorded)
	assert.Equal(t, len(dead), rep.StaleClaims)
	assert.Equal(t, 3, rep.Missing)
	assert.Equal(t, len(dead)+3, rep.Enqueued)
	accepted := map[string]int{}
	for _, a := range rec.accepted {
		accepted[a.InstanceID]++
	}
	assert.Len(t, accepted, len(dead)+3)
	for id, n := range accepted {
		assert.Equal(t, 1, n, "%s is accepted once", id)
	}
	assert.Equal(t, true, logLine(t, buf, "coverage")["complete"])
}
