package install

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger/ledgertest"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
)

// installFunc is a hand-written fake Installer that finds no existing client.
type installFunc func(ids []string) (hbr.InstallResult, error)

func (f installFunc) InstallBackupClients(_ context.Context, ids []string) (hbr.InstallResult, error) {
	return f(ids)
}

func (f installFunc) DescribeBackupClients(context.Context, []string) ([]hbr.BackupClient, error) {
	return nil, nil
}

// withClients is a fake Installer with existing clients.
type withClients struct {
	installFunc
	clients []hbr.BackupClient
	err     error
	asked   [][]string
}

func (w *withClients) DescribeBackupClients(_ context.Context, ids []string) ([]hbr.BackupClient, error) {
	w.asked = append(w.asked, ids)
	return w.clients, w.err
}

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func testPolicy() Policy {
	return Policy{
		FirstPollDelay: 60 * time.Second, PollInterval: 30 * time.Second,
		TaskTimeout: 15 * time.Minute, DeadlineMargin: 2 * time.Minute,
		ReadinessTimeout: 10 * time.Minute, ReadinessDelay: 30 * time.Second, ReadinessDelayStep: 10 * time.Second,
		RetryBaseDelay: 5 * time.Second, RetryMaxDelay: 2 * time.Minute, MaxAttempts: 2, Lease: 32 * time.Minute, StaleIntent: 30 * time.Second,
	}
}

// testLedger is an instance ledger over an in-memory store, on the test's
// clock.
func testLedger(now func() time.Time) *ledger.Ledger {
	return &ledger.Ledger{Store: ledgertest.New(), Prefix: "test/", Account: "1234567890", Lease: 32 * time.Minute,
		StaleIntent: 30 * time.Second, Now: now}
}

func newService(inst installFunc, now time.Time) (*Service, *[][]string) {
	var calls [][]string
	var mu sync.Mutex
	clock := func() time.Time { return now }
	return &Service{
		HBR: func(context.Context, string) (Installer, error) {
			return installFunc(func(ids []string) (hbr.InstallResult, error) {
				mu.Lock()
				calls = append(calls, append([]string(nil), ids...))
				mu.Unlock()
				return inst(ids)
			}), nil
		},
		Ledger: testLedger(clock),
		Policy: testPolicy(),
		Now:    clock,
		// One chunk at a time, so that tests can name the calls in order;
		// TestChunksAreInstalledSideBySide covers Chunks > 1.
		Chunks: 1,
	}, &calls
}

// instances are n instances owned (generation 1) by jobs of one event.
func instances(n int) []job.Instance {
	var out []job.Instance
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("i-%03d", i)
		out = append(out, job.Instance{ID: id, JobID: job.JobID("acs.ecs", "ev", id), FirstSeen: t0, ReadyBy: t0.Add(10 * time.Minute),
			Generation: 1, Via: "ev"})
	}
	return out
}

// fromEvent are the instances as an event announces them: not claimed yet.
func fromEvent(ins []job.Instance, event string) []job.Instance {
	out := make([]job.Instance, len(ins))
	for i, in := range ins {
		in.Generation, in.JobID, in.Via, in.OriginEventID = 0, job.JobID("acs.ecs", event, in.ID), event, event
		in.EventTime = t0
		out[i] = in
	}
	return out
}

func allValid(ids []string) (hbr.InstallResult, error) {
	r := hbr.InstallResult{TaskID: "t-1"}
	for _, id := range ids {
		r.Statuses = append(r.Statuses, hbr.InstanceStatus{InstanceID: id, Valid: true})
	}
	return r, nil
}

func apiErr(kind fault.Kind, code string) error {
	return fault.Wrap("hbr.InstallBackupClients", kind, code, fmt.Errorf("%s", code))
}

func outcomesByID(rs []outcome.Record) map[string]outcome.Record {
	m := map[string]outcome.Record{}
	for _, r := range rs {
		m[r.InstanceID] = r
	}
	return m
}

func TestInstallChunksAndSchedulesFirstPoll(t *testing.T) {
	s, calls := newService(allValid, t0)
	res := s.Install(context.Background(), "cn-hangzhou", instances(45), 0)
	require.Len(t, *calls, 3)
	assert.Len(t, (*calls)[0], 20)
	assert.Len(t, (*calls)[2], 5)
	assert.Empty(t, res.Outcomes)
	require.Len(t, res.Next, 3)
	for _, n := range res.Next {
		assert.Equal(t, job.KindPoll, n.Message.Kind)
		assert.Equal(t, 60*time.Second, n.Delay)
		assert.Equal(t, t0.Add(17*time.Minute), n.Message.Deadline)
		for _, in := range n.Message.Instances {
			assert.Equal(t, 1, in.Attempts)
		}
		_, err := job.Encode(n.Message)
		assert.NoError(t, err, "every message the step builds validates")
	}
}

func TestChunksAreInstalledSideBySide(t *testing.T) {
	var live, peak atomic.Int32
	s, calls := newService(func(ids []string) (hbr.InstallResult, error) {
		n := live.Add(1)
		defer live.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		return allValid(ids)
	}, t0)
	s.Chunks = 3
	res := s.Install(context.Background(), "cn-hangzhou", instances(200), 0)
	require.Len(t, *calls, 10)
	assert.Equal(t, int32(3), peak.Load(), "at most Chunks calls at once, and more than one")
	seen := map[string]int{}
	for _, c := range *calls {
		assert.Len(t, c, 20)
		for _, id := range c {
			seen[id]++
		}
	}
	assert.Len(t, seen, 200)
	for id, n := range seen {
		assert.Equal(t, 1, n, "%s installed once", id)
	}
	assert.Len(t, res.Next, 10, "one poll message per task")
	assert.Empty(t, res.Outcomes)
}

func TestInstallPerInstanceCodes(t *testing.T) {
	s, _ := newService(func(ids []string) (hbr.InstallResult, error) {
		return hbr.InstallResult{TaskID: "t-9", Statuses: []hbr.InstanceStatus{
			{InstanceID: "i-000", Valid: true},
			{InstanceID: "i-001", ErrorCode: CodeCloudAssistDown},
			{InstanceID: "i-002", ErrorCode: CodeInstanceNotRunning},
			{InstanceID: "i-003", ErrorCode: CodeInstanceNotExists},
			{InstanceID: "i-004", ErrorCode: "UnsupportedOS"},
		}}, nil
	}, t0)
	res := s.Install(context.Background(), "cn-hangzhou", instances(5), 0)
	got := outcomesByID(res.Outcomes)
	assert.Equal(t, outcome.Gone, got["i-003"].Outcome)
	assert.Equal(t, outcome.Failed, got["i-004"].Outcome)
	assert.Equal(t, "UnsupportedOS", got["i-004"].Code)
	require.Len(t, res.Next, 2)
	var poll, retry Next
	for _, n := range res.Next {
		if n.Message.Kind == job.KindPoll {
			poll = n
		} else {
			retry = n
		}
	}
	assert.Equal(t, []string{"i-000"}, poll.Message.IDs())
	assert.Equal(t, []string{"i-001", "i-002"}, retry.Message.IDs())
	assert.Equal(t, 30*time.Second, retry.Delay)
	assert.Equal(t, 1, retry.Message.Instances[0].NotReady)
}

func TestNotReadyDelayGrowsAndEndsAtDeadline(t *testing.T) {
	notReady := func(ids []string) (hbr.InstallResult, error) {
		return hbr.InstallResult{}, apiErr(fault.Permanent, CodeCloudAssistDown)
	}
	in := instances(1)
	tests := []struct {
		name      string
		now       time.Time
		notReady  int
		wantDelay time.Duration
		wantEnd   bool
	}{
		{"first", t0, 0, 30 * time.Second, false},
		{"third: 50 s, stretched to the 30 s grid", t0.Add(2 * time.Minute), 2, time.Minute, false},
		{"off the grid: to the next tick", t0.Add(2*time.Minute + 7*time.Second), 0, 53 * time.Second, false},
		{"capped by deadline", t0.Add(9*time.Minute + 50*time.Second), 5, 10 * time.Second, false},
		{"past deadline", t0.Add(10 * time.Minute), 6, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, calls := newService(notReady, tt.now)
			i := in[0]
			i.NotReady = tt.notReady
			res := s.Install(context.Background(), "cn-hangzhou", []job.Instance{i}, 0)
			if tt.wantEnd {
				require.Len(t, res.Outcomes, 1)
				assert.Equal(t, outcome.NotReady, res.Outcomes[0].Outcome)
				assert.Empty(t, res.Next)
				if tt.notReady > 0 {
					assert.Empty(t, *calls, "no call once the readiness deadline has passed")
				}
				return
			}
			require.Len(t, res.Next, 1)
			assert.Equal(t, tt.wantDelay, res.Next[0].Delay)
			assert.Equal(t, job.KindInstallRetry, res.Next[0].Message.Kind)
		})
	}
}

// inventoryFunc is a hand-written fake Inventory: each call to
// CloudAssistantReady answers with the next map of answers (the last one
// repeats); DescribeInstances lists the instances in listed.
type inventoryFunc struct {
	answers []map[string]bool
	listed  []string
	calls   int
}

func (f *inventoryFunc) CloudAssistantReady(_ context.Context, ids []string) (map[string]bool, error) {
	a := f.answers[min(f.calls, len(f.answers)-1)]
	f.calls++
	out := map[string]bool{}
	for _, id := range ids {
		if v, ok := a[id]; ok {
			out[id] = v
		}
	}
	return out, nil
}

func (f *inventoryFunc) DescribeInstances(_ context.Context, ids []string) ([]ecs.Instance, error) {
	f.calls++
	var out []ecs.Instance
	for _, id := range f.listed {
		out = append(out, ecs.Instance{ID: id, Status: ecs.StatusRunning})
	}
	return out, nil
}

func TestTopLevelRefusalAddsAtMostTwoCalls(t *testing.T) {
	bad := "i-002"
	refuse := func(code string) installFunc {
		return func(ids []string) (hbr.InstallResult, error) {
			for _, id := range ids {
				if id == bad {
					return hbr.InstallResult{}, apiErr(fault.Permanent, code)
				}
			}
			return allValid(ids)
		}
	}
	allReadyBut := map[string]bool{}
	var listed []string
	for _, in := range instances(20) {
		allReadyBut[in.ID] = in.ID != bad
		if in.ID != bad {
			listed = append(listed, in.ID)
		}
	}
	tests := map[string]struct {
		code     string
		inv      *inventoryFunc
		started  int
		calls    int
		waitCode string
	}{
		// The readiness check before the call knew nothing yet; the
		// refusal makes it ask once more and install the ready ones.
		"not ready, ECS picks the ready ones": {CodeCloudAssistDown, &inventoryFunc{answers: []map[string]bool{{}, allReadyBut}}, 19, 2, CodeCloudAssistDown},
		"not exists, ECS lists the others":    {CodeInstanceNotExists, &inventoryFunc{answers: []map[string]bool{{}}, listed: listed}, 19, 2, CodeInstanceNotFound},
		"no ECS: everyone waits, no cascade":  {CodeInstanceNotRunning, nil, 0, 1, CodeInstanceNotRunning},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s, calls := newService(refuse(tt.code), t0)
			if tt.inv != nil {
				s.ECS = func(context.Context, string) (Inventory, error) { return tt.inv, nil }
			}
			res := s.Install(context.Background(), "cn-hangzhou", instances(20), 0)
			started, waiting := 0, 0
			for _, n := range res.Next {
				if n.Message.Kind == job.KindPoll {
					started += len(n.Message.Instances)
					continue
				}
				for _, in := range n.Message.Instances {
					waiting++
					assert.Equal(t, tt.waitCode, in.LastCode)
				}
			}
			assert.Equal(t, tt.started, started, "one refused instance does not hold the others back")
			assert.Equal(t, 20-tt.started, waiting)
			assert.Equal(t, tt.calls, len(*calls), "InstallBackupClients calls for one chunk")
			assert.Empty(t, res.Outcomes)
		})
	}
}

func TestNotReadyInECSCostsNoHBRCall(t *testing.T) {
	s, calls := newService(allValid, t0)
	inv := &inventoryFunc{answers: []map[string]bool{{"i-000": false, "i-001": true}}}
	s.ECS = func(context.Context, string) (Inventory, error) { return inv, nil }
	res := s.Install(context.Background(), "cn-hangzhou", instances(3), 0)
	require.Len(t, *calls, 1)
	assert.Equal(t, []string{"i-001", "i-002"}, (*calls)[0], "i-002 is unknown to ECS: HBR judges it")
	var retried []string
	for _, n := range res.Next {
		if n.Message.Kind == job.KindInstallRetry {
			retried = append(retried, n.Message.IDs()...)
		}
	}
	assert.Equal(t, []string{"i-000"}, retried)
}

func TestTransientErrorsBackOff(t *testing.T) {
	s, _ := newService(func([]string) (hbr.InstallResult, error) {
		return hbr.InstallResult{}, apiErr(fault.Retryable, "Throttling.User")
	}, t0)
	res := s.Install(context.Background(), "cn-hangzhou", instances(3), 2)
	require.Len(t, res.Next, 1)
	assert.Equal(t, 3, res.Next[0].Message.Retries)
	assert.Equal(t, 30*time.Second, res.Next[0].Delay, "20 s of back-off, stretched to the grid")
	assert.Equal(t, "Throttling.User", res.Next[0].Message.LastError)
	assert.Empty(t, res.Outcomes)

	// Past the deadline a transient error ends the instance as FAILED with
	// the code, not as NOT_READY.
	s.Now = func() time.Time { return t0.Add(11 * time.Minute) }
	in := instances(1)
	in[0].LastCode = "Throttling.User"
	res = s.Install(context.Background(), "cn-hangzhou", in, 5)
	require.Len(t, res.Outcomes, 1)
	assert.Equal(t, outcome.Failed, res.Outcomes[0].Outcome)
	assert.Equal(t, "Throttling.User", res.Outcomes[0].Code)
	// The failing call may have been the readiness check, the client
	// check or the ledger: the reason does not say InstallBackupClients
	// (make chaos found such records for instances never installed).
	assert.Equal(t, "the install's calls kept failing with transient errors (Throttling.User) until the readiness deadline",
		res.Outcomes[0].Reason)
}

func TestPermanentErrorFailsTheChunk(t *testing.T) {
	s, _ := newService(func([]string) (hbr.InstallResult, error) {
		return hbr.InstallResult{}, apiErr(fault.Permanent, "Forbidden.RAM")
	}, t0)
	res := s.Install(context.Background(), "cn-hangzhou", instances(2), 0)
	require.Len(t, res.Outcomes, 2)
	for _, r := range res.Outcomes {
		assert.Equal(t, outcome.Failed, r.Outcome)
		assert.Equal(t, "Forbidden.RAM", r.Code)
		assert.NotContains(t, r.Reason, "RequestId", "reasons are deterministic")
	}
	assert.Empty(t, res.Next)
}

func TestAnnouncementsOfOneInstanceInstallItOnce(t *testing.T) {
	s, calls := newService(allValid, t0)
	ctx := context.Background()
	base := instances(3)
	first := s.Announce(ctx, "cn-hangzhou", fromEvent(base, "ev-running"), true)
	require.Len(t, *calls, 1)
	assert.Equal(t, []string{"i-000", "i-001", "i-002"}, (*calls)[0])
	require.Len(t, first.Next, 1)
	for _, in := range first.Next[0].Message.Instances {
		assert.Equal(t, 1, in.Generation, "the poll message carries the owner's generation")
		assert.Equal(t, t0.Add(32*time.Minute), in.LeaseUntil, "the task renewed the lease")
	}

	// The instance's heartbeat and its ActionTrail record, later: they join.
	for _, ev := range []string{"ev-heartbeat", "ev-runinstances"} {
		res := s.Announce(ctx, "cn-hangzhou", fromEvent(base, ev), true)
		assert.Len(t, *calls, 1, "no second install for %s", ev)
		assert.Empty(t, res.Outcomes)
		assert.Empty(t, res.Next)
		require.Len(t, res.Joined, 3)
		for _, j := range res.Joined {
			assert.Equal(t, job.JobID("acs.ecs", "ev-running", j.InstanceID), j.Owner, "the joined line names the owner")
			assert.Equal(t, 1, j.Generation)
			assert.Contains(t, j.State, "installing task t-1 (attempt 1)")
		}
	}

	// The owner's own event, delivered again, resumes: it follows the task
	// its first delivery recorded (the first run may have died before its
	// poll message), and installs nothing.
	again := s.Announce(ctx, "cn-hangzhou", fromEvent(base, "ev-running"), true)
	assert.Len(t, *calls, 1)
	require.Len(t, again.Next, 3)
	for _, n := range again.Next {
		assert.Equal(t, job.KindPoll, n.Message.Kind)
		assert.Equal(t, "t-1", n.Message.TaskID)
	}
}

// The first heartbeat of an instance whose owner waits for readiness takes
// the owner's chain on at once (after the coalescing delay) instead of at
// the owner's next readiness tick; the owner's own retry then ends.
func TestHeartbeatNudgesAWaitingOwner(t *testing.T) {
	s, calls := newService(allValid, t0)
	ctx := context.Background()
	run := fromEvent(instances(1), "ev-runinstances")
	run[0].Trigger = "run-instances"
	first := s.Announce(ctx, "cn-hangzhou", run, false)
	require.Len(t, first.Next, 1)
	scheduled := first.Next[0]
	assert.Equal(t, 30*time.Second, scheduled.Delay, "the owner waits for its readiness tick")

	// A Running event nudges nobody: Cloud Assistant may still be down.
	running := fromEvent(instances(1), "ev-running")
	running[0].Trigger = "running"
	quiet := s.Announce(ctx, "cn-hangzhou", running, true)
	require.Len(t, quiet.Joined, 1)
	assert.Empty(t, quiet.Next)

	hb := fromEvent(instances(1), "ev-heartbeat")
	hb[0].Trigger = "first-heartbeat"
	joined := s.Announce(ctx, "cn-hangzhou", hb, true)
	require.Len(t, joined.Joined, 1)
	require.Len(t, joined.Next, 1, "the heartbeat nudges the owner")
	nudge := joined.Next[0]
	assert.Equal(t, job.KindInstallRetry, nudge.Message.Kind)
	assert.Equal(t, time.Second, nudge.Delay)
	owner := nudge.Message.Instances[0]
	assert.Equal(t, run[0].JobID, owner.JobID, "on the owner's behalf")
	assert.Equal(t, 1, owner.Generation)

	owner.Via = "m-nudge"
	res := s.Install(ctx, "cn-hangzhou", []job.Instance{owner}, 0)
	require.Len(t, *calls, 1)
	require.Len(t, res.Next, 1)
	assert.Equal(t, job.KindPoll, res.Next[0].Message.Kind)

	// The owner's own retry: the install is started; it ends there.
	late := scheduled.Message.Instances[0]
	late.Via = "m-scheduled"
	s.HBR = func(context.Context, string) (Installer, error) {
		return &withClients{installFunc: allValid, clients: []hbr.BackupClient{{InstanceID: late.ID, Status: "INSTALLING"}}}, nil
	}
	res = s.Install(ctx, "cn-hangzhou", []job.Instance{late}, 0)
	assert.Len(t, *calls, 1, "no second install")
	assert.Empty(t, res.Outcomes)
	assert.Empty(t, res.Next)
	assert.Len(t, res.Dropped, 1)
}

// Issue 18: a job whose queue delay passed the readiness window could
// record NOT_READY while a sibling job of the same instance installed it.
// An announcement is claimed before anything else: the sibling joins.
func TestAnExpiredAnnouncementJoinsTheOwner(t *testing.T) {
	s, calls := newService(allValid, t0.Add(15*time.Minute))
	ctx := context.Background()
	owner := s.Announce(ctx, "cn-hangzhou", fromEvent(instances(1), "ev-running"), true)
	require.Len(t, *calls, 1)
	require.Empty(t, owner.Outcomes)

	late := fromEvent(instances(1), "ev-runinstances")
	late[0].NotReady, late[0].LastCode = 3, CodeCloudAssistDown
	late[0].ReadyBy = t0.Add(10 * time.Minute)
	res := s.Install(ctx, "cn-hangzhou", late, 0)
	assert.Empty(t, res.Outcomes, "no NOT_READY next to the owner's install")
	assert.Len(t, res.Joined, 1)
}

// Duplicate deliveries of one owned chain meet in a batch, or in two
// invocations at once: each attempt is reserved in the ledger before the
// call, so the instance is installed once.
func TestEachAttemptIsInstalledOnce(t *testing.T) {
	s, calls := newService(allValid, t0)
	ctx := context.Background()
	a := instances(20)
	b := instances(20)
	for i := range b {
		b[i].Via = "copy"
	}
	res := s.Install(ctx, "cn-hangzhou", append(a, b...), 0)
	require.Len(t, *calls, 1, "a batch holding both copies installs once")
	require.Len(t, res.Next, 1)
	assert.Len(t, res.Next[0].Message.Instances, 20, "one poll message of at most 20")

	res = s.Install(ctx, "cn-hangzhou", b, 0)
	assert.Len(t, *calls, 1, "a later copy finds the attempt started")
	assert.Empty(t, res.Next, "and ends: the other delivery follows the task")
	assert.Len(t, res.Dropped, 20)
	assert.Empty(t, res.Outcomes)
}

func TestTakeoverFollowsTheDeadChainsTask(t *testing.T) {
	now := t0
	clock := func() time.Time { return now }
	s, calls := newService(allValid, t0)
	s.Now = clock
	s.Ledger = testLedger(clock)
	ctx := context.Background()
	first := s.Announce(ctx, "cn-hangzhou", fromEvent(instances(1), "ev-running"), true)
	require.Len(t, first.Next, 1)
	// The poll message was lost; the lease passes with no record.
	now = t0.Add(40 * time.Minute)
	sweep := fromEvent(instances(1), "sweep-1")
	sweep[0].Sweep = true
	res := s.Announce(ctx, "cn-hangzhou", sweep, true)
	assert.Len(t, *calls, 1, "the takeover does not install again")
	require.Len(t, res.Next, 1)
	m := res.Next[0].Message
	assert.Equal(t, job.KindPoll, m.Kind)
	assert.Equal(t, "t-1", m.TaskID)
	assert.Equal(t, 2, m.Instances[0].Generation)
	assert.Equal(t, job.JobID("acs.ecs", "ev-running", "i-000"), m.Instances[0].Supersedes, "the new generation names the dead owner")
	assert.Equal(t, time.Second, res.Next[0].Delay, "the task's first poll is long past")
}

func TestLedgerFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("an unreachable ledger fails the invocation and installs nothing", func(t *testing.T) {
		s, calls := newService(allValid, t0)
		st := ledgertest.New()
		st.FailNext(100, nil)
		s.Ledger = &ledger.Ledger{Store: st, Prefix: "test/", Account: "1", Lease: time.Hour, Now: s.Now}
		res := s.Announce(ctx, "cn-hangzhou", fromEvent(instances(2), "ev"), true)
		assert.Empty(t, *calls)
		assert.Len(t, res.Failed, 2)
		for _, err := range res.Failed {
			assert.True(t, fault.Is(err, fault.Retryable), "%v", err)
		}
		assert.Empty(t, res.Outcomes)
		assert.Empty(t, res.Next)
	})
	t.Run("an unreadable entry is rejected with its key", func(t *testing.T) {
		s, calls := newService(allValid, t0)
		st := ledgertest.New()
		l := &ledger.Ledger{Store: st, Prefix: "test/", Account: "1", Lease: time.Hour, Now: s.Now}
		s.Ledger = l
		st.Put(l.InstancePrefix("cn-hangzhou", "i-000")+"g000001/claim", []byte("\x00garbage"))
		res := s.Announce(ctx, "cn-hangzhou", fromEvent(instances(1), "ev"), true)
		assert.Empty(t, *calls)
		require.Len(t, res.Invalid, 1)
		assert.True(t, fault.Is(res.Invalid[0].Err, fault.Invalid))
		assert.Contains(t, res.Invalid[0].Err.Error(), "i-000/g000001/claim")
	})
}

func TestDeferSchedulesReadinessRetry(t *testing.T) {
	s, calls := newService(allValid, t0)
	res := s.Defer("cn-hangzhou", instances(25), s.Policy.ReadinessWait(1))
	assert.Empty(t, *calls)
	require.Len(t, res.Next, 2)
	assert.Equal(t, 30*time.Second, res.Next[0].Delay)
	assert.Equal(t, job.KindInstallRetry, res.Next[0].Message.Kind)
}

func TestBackoff(t *testing.T) {
	p := testPolicy()
	assert.Equal(t, 5*time.Second, p.Backoff(1))
	assert.Equal(t, 10*time.Second, p.Backoff(2))
	assert.Equal(t, 2*time.Minute, p.Backoff(30))
	assert.Equal(t, 30*time.Second, p.ReadinessWait(1))
	assert.Equal(t, 50*time.Second, p.ReadinessWait(3))
}

// Issue 16: a client someone else created (HBR's tag policies, the
// console, Terraform, an earlier attempt), in any status and of any age,
// never silences an instance: ACTIVATED ends ALREADY_INSTALLED, INSTALLING
// is waited for, INSTALL_FAILED is installed over.
func TestAnotherInstallersClientNeverSilencesAnInstance(t *testing.T) {
	ins := fromEvent(instances(4), "ev-running")
	var installed [][]string
	s, _ := newService(allValid, t0)
	s.HBR = func(context.Context, string) (Installer, error) {
		return &withClients{installFunc: func(ids []string) (hbr.InstallResult, error) {
			installed = append(installed, ids)
			return allValid(ids)
		}, clients: []hbr.BackupClient{
			{InstanceID: "i-000", ClientID: "c-busy", Status: "INSTALLING", CreatedTime: t0.Add(-20 * time.Second).Unix()},
			{InstanceID: "i-001", ClientID: "c-new", Status: "ACTIVATED", CreatedTime: t0.Add(-90 * time.Second).Unix()},
			{InstanceID: "i-002", ClientID: "c-failed", Status: "INSTALL_FAILED", CreatedTime: t0.Add(-2 * time.Minute).Unix()},
		}}, nil
	}
	res := s.Announce(context.Background(), "cn-hangzhou", ins, true)
	got := outcomesByID(res.Outcomes)
	require.Len(t, res.Outcomes, 1)
	assert.Equal(t, outcome.AlreadyInstalled, got["i-001"].Outcome, "a client 90 s old is ALREADY_INSTALLED, not joined")
	assert.Equal(t, "c-new", got["i-001"].ClientID)
	assert.Contains(t, got["i-001"].Reason, "c-new")
	assert.Equal(t, 1, got["i-001"].Generation)
	require.Len(t, installed, 1)
	assert.Equal(t, []string{"i-002", "i-003"}, installed[0], "INSTALL_FAILED is installed over, with the instance that had none")
	var waiting []job.Instance
	for _, n := range res.Next {
		if n.Message.Kind == job.KindInstallRetry {
			waiting = append(waiting, n.Message.Instances...)
		}
	}
	require.Len(t, waiting, 1)
	assert.Equal(t, "i-000", waiting[0].ID, "an INSTALLING client is waited for")
	assert.Equal(t, CodeClientInstalling, waiting[0].LastCode)
	assert.Empty(t, res.Joined, "nobody joins an owner that does not exist")
}

// A client that this job's own chain installed (another delivery of it got
// there first) is not taken for another installer's.
func TestOwnChainsClientIsNotAnotherInstallers(t *testing.T) {
	ctx := context.Background()
	s, calls := newService(allValid, t0)
	own := instances(1)
	first := s.Install(ctx, "cn-hangzhou", own, 0)
	require.Len(t, *calls, 1)
	require.Len(t, first.Next, 1)
	// A copy of the chain (another delivery) now finds the client
	// INSTALLING: the ledger says whose it is.
	s.HBR = func(context.Context, string) (Installer, error) {
		return &withClients{installFunc: allValid, clients: []hbr.BackupClient{
			{InstanceID: "i-000", Status: "INSTALLING", CreatedTime: t0.Unix()}}}, nil
	}
	copied := instances(1)
	copied[0].Via = "another-delivery"
	res := s.Install(ctx, "cn-hangzhou", copied, 0)
	assert.Empty(t, res.Outcomes, "no ALREADY_INSTALLED for its own install")
	assert.Empty(t, res.Next, "no wait either: the other delivery follows the task")
	assert.Len(t, res.Dropped, 1)
}

// TestClientStatuses gives each row of the README's status table a test: a
// client that predates the job's event, in each status HBR can report.
func TestClientStatuses(t *testing.T) {
	tests := []struct {
		status    string
		reinstall bool
		want      outcome.Kind // "" when the job goes on
		install   bool
		waitCode  string
	}{
		{status: "ACTIVATED", want: outcome.AlreadyInstalled},
		{status: "INSTALLING", waitCode: CodeClientInstalling},
		{status: "UPGRADING", waitCode: "ClientUpgrading"},
		{status: "REGISTERED", waitCode: "ClientRegistered"},
		{status: "STOPPED", want: outcome.Skipped},
		{status: "DEACTIVATED", want: outcome.Skipped},
		{status: "UNINSTALLING", want: outcome.Skipped},
		{status: "UNINSTALL_FAILED", want: outcome.Skipped},
		{status: "STOPPED", reinstall: true, install: true},
		{status: "INSTALL_FAILED", install: true},
		{status: "UPGRADE_FAILED", install: true},
		{status: "NOT_INSTALLED", install: true},
		{status: "UNKNOWN", install: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s reinstall=%v", tt.status, tt.reinstall), func(t *testing.T) {
			in := fromEvent(instances(1), "ev")[0]
			installs := 0
			s, _ := newService(allValid, t0)
			s.HBR = func(context.Context, string) (Installer, error) {
				return &withClients{installFunc: func(ids []string) (hbr.InstallResult, error) {
					installs++
					return allValid(ids)
				}, clients: []hbr.BackupClient{{InstanceID: in.ID, ClientID: "c-1", Status: tt.status, CreatedTime: t0.Add(-time.Hour).Unix()}}}, nil
			}
			if tt.reinstall {
				s.Reinstall = map[string]bool{tt.status: true}
			}
			res := s.Install(context.Background(), "cn-hangzhou", []job.Instance{in}, 0)
			if tt.want != "" {
				require.Len(t, res.Outcomes, 1)
				assert.Equal(t, tt.want, res.Outcomes[0].Outcome)
				if tt.want == outcome.Skipped {
					assert.Equal(t, tt.status, res.Outcomes[0].Code, "the outcome names the status")
					assert.Contains(t, res.Outcomes[0].Reason, tt.status)
				}
			} else {
				assert.Empty(t, res.Outcomes)
			}
			assert.Equal(t, tt.install, installs == 1, "installed")
			if tt.waitCode != "" {
				require.Len(t, res.Next, 1)
				assert.Equal(t, job.KindInstallRetry, res.Next[0].Message.Kind)
				assert.Equal(t, tt.waitCode, res.Next[0].Message.Instances[0].LastCode)
				assert.Equal(t, t0.Add(17*time.Minute), res.Next[0].Message.Instances[0].ReadyBy, "waited for as long as an install task may run")
			}
		})
	}
	for _, st := range []string{"REGISTERED", "ACTIVATED", "DEACTIVATED", "INSTALLING", "INSTALL_FAILED", "NOT_INSTALLED",
		"UPGRADING", "UPGRADE_FAILED", "UNINSTALLING", "UNINSTALL_FAILED", "STOPPED", "UNKNOWN"} {
		assert.Contains(t, ClientActions, st, "every documented status has a decision")
	}
	var held []string
	for st, a := range ClientActions {
		if a == ActionHold {
			held = append(held, st)
		}
	}
	assert.ElementsMatch(t, config.HoldStatuses, held, "REINSTALL_STATUSES accepts exactly the held statuses")
}

// A transitional client that settles is decided on its next look.
func TestTransitionalClientIsLookedAtAgain(t *testing.T) {
	in := instances(1)[0]
	in.EventTime = t0
	in.LastCode = "ClientUpgrading"
	in.NotReady = 1
	s := &Service{
		HBR: func(context.Context, string) (Installer, error) {
			return &withClients{installFunc: allValid, clients: []hbr.BackupClient{
				{InstanceID: in.ID, ClientID: "c-1", Status: "ACTIVATED", CreatedTime: t0.Add(-time.Hour).Unix()}}}, nil
		},
		Policy: testPolicy(), Now: func() time.Time { return t0.Add(time.Minute) }, Ledger: testLedger(func() time.Time { return t0 }),
	}
	res := s.Install(context.Background(), "cn-hangzhou", []job.Instance{in}, 0)
	require.Len(t, res.Outcomes, 1)
	assert.Equal(t, outcome.AlreadyInstalled, res.Outcomes[0].Outcome)

	// One that never settles ends as TIMEOUT naming the status.
	s.HBR = func(context.Context, string) (Installer, error) {
		return &withClients{installFunc: allValid, clients: []hbr.BackupClient{
			{InstanceID: in.ID, ClientID: "c-1", Status: "UPGRADING", CreatedTime: t0.Add(-time.Hour).Unix()}}}, nil
	}
	s.Now = func() time.Time { return t0.Add(time.Hour) }
	in.ReadyBy = t0.Add(30 * time.Minute)
	res = s.Install(context.Background(), "cn-hangzhou", []job.Instance{in}, 0)
	require.Len(t, res.Outcomes, 1)
	assert.Equal(t, outcome.Timeout, res.Outcomes[0].Outcome)
	assert.Equal(t, "ClientUpgrading", res.Outcomes[0].Code)
}

func TestExistingCheckThrottledIsRetried(t *testing.T) {
	var installed int
	s := &Service{
		HBR: func(context.Context, string) (Installer, error) {
			return &withClients{installFunc: func(ids []string) (hbr.InstallResult, error) {
				installed++
				return allValid(ids)
			}, err: apiErr(fault.Retryable, "Throttling.User")}, nil
		},
		Policy: testPolicy(), Now: func() time.Time { return t0 }, Ledger: testLedger(func() time.Time { return t0 }),
	}
	res := s.Install(context.Background(), "cn-hangzhou", instances(2), 0)
	assert.Zero(t, installed, "no blind install while the check is throttled")
	require.Len(t, res.Next, 1)
	assert.Equal(t, job.KindInstallRetry, res.Next[0].Message.Kind)
	assert.Equal(t, "Throttling.User", res.Next[0].Message.LastError)
}

func TestExistingCheckFailureDoesNotBlockInstall(t *testing.T) {
	var installed int
	s := &Service{
		HBR: func(context.Context, string) (Installer, error) {
			return &withClients{installFunc: func(ids []string) (hbr.InstallResult, error) {
				installed++
				return allValid(ids)
			}, err: apiErr(fault.Permanent, "Forbidden.RAM")}, nil
		},
		Policy: testPolicy(), Now: func() time.Time { return t0 }, Ledger: testLedger(func() time.Time { return t0 }),
	}
	res := s.Install(context.Background(), "cn-hangzhou", instances(2), 0)
	assert.Equal(t, 1, installed)
	assert.Empty(t, res.Outcomes)
}

func TestInstallingClientTimesOutAtTheDeadline(t *testing.T) {
	in := instances(1)[0]
	in.LastCode = CodeClientInstalling
	in.NotReady = 3
	s, calls := newService(allValid, t0.Add(11*time.Minute))
	res := s.Install(context.Background(), "cn-hangzhou", []job.Instance{in}, 0)
	assert.Empty(t, *calls)
	require.Len(t, res.Outcomes, 1)
	assert.Equal(t, outcome.Timeout, res.Outcomes[0].Outcome)
	assert.Equal(t, CodeDeadline, res.Outcomes[0].Code, "the decision the installing chain reaches at its own deadline")
}

func TestFailureWaitsForAnotherInstallOnce(t *testing.T) {
	in := instances(1)[0]
	in.LastCode = "Throttling.User" // transient errors until the deadline…
	in.NotReady = 2
	now := t0.Add(11 * time.Minute)
	s := &Service{
		HBR: func(context.Context, string) (Installer, error) {
			return &withClients{installFunc: allValid, clients: []hbr.BackupClient{
				{InstanceID: in.ID, Status: "INSTALLING", CreatedTime: t0.Add(time.Minute).Unix()}}}, nil
		},
		Policy: testPolicy(), Now: func() time.Time { return now }, Ledger: testLedger(func() time.Time { return now }),
	}
	res := s.Install(context.Background(), "cn-hangzhou", []job.Instance{in}, 0)
	assert.Empty(t, res.Outcomes, "…while a twin installs the client, the verdict waits")
	require.Len(t, res.Next, 1)
	waiting := res.Next[0].Message.Instances[0]
	assert.Equal(t, CodeClientInstalling, waiting.LastCode)
	assert.Equal(t, now.Add(17*time.Minute), waiting.ReadyBy, "as long as that task may take")

	// At the end of that wait, the verdict stands.
	now = waiting.ReadyBy
	res = s.Install(context.Background(), "cn-hangzhou", []job.Instance{waiting}, 0)
	require.Len(t, res.Outcomes, 1)
	assert.Equal(t, outcome.Timeout, res.Outcomes[0].Outcome)
	assert.Empty(t, res.Next)
}

func TestReinstallWaitingForAnotherInstallLooksFirst(t *testing.T) {
	in := instances(1)[0]
	in.Attempts = 1
	in.LastCode = CodeClientInstalling
	in.ReadyBy = t0.Add(time.Hour)
	installed := 0
	s := &Service{
		HBR: func(context.Context, string) (Installer, error) {
			return &withClients{installFunc: func(ids []string) (hbr.InstallResult, error) {
				installed++
				return allValid(ids)
			}, clients: []hbr.BackupClient{{InstanceID: in.ID, Status: "ACTIVATED", CreatedTime: t0.Add(time.Minute).Unix()}}}, nil
		},
		Policy: testPolicy(), Now: func() time.Time { return t0.Add(5 * time.Minute) }, Ledger: testLedger(func() time.Time { return t0 }),
	}
	res := s.Install(context.Background(), "cn-hangzhou", []job.Instance{in}, 0)
	assert.Zero(t, installed, "the other install finished: no second one")
	require.Len(t, res.Outcomes, 1)
	assert.Equal(t, outcome.Installed, res.Outcomes[0].Outcome)
}

// Retries that cannot install yet (not ready, throttled) wait on a common
// grid, so the retries of many launches are due together and share
// InstallBackupClients calls.
func TestRetriesFallOnACommonGrid(t *testing.T) {
	p := testPolicy()
	for _, now := range []time.Time{t0.Add(3 * time.Second), t0.Add(17*time.Second + 400*time.Millisecond), t0.Add(29 * time.Second)} {
		for _, d := range []time.Duration{time.Second, 30 * time.Second, 45 * time.Second} {
			got := p.Align(now, d)
			due := now.Add(got)
			assert.GreaterOrEqual(t, got, d)
			assert.Less(t, got, d+31*time.Second)
			assert.Zero(t, got%time.Second, "MNS delays are whole seconds")
			assert.Less(t, due.Sub(due.Truncate(30*time.Second)), time.Second, "due within a second of a tick: %s", due)
		}
	}

}

// Only the codes of a wait for a settling client count as one: LastCode
// also carries error codes from HBR and ECS, whatever they are called.
func TestWaitingOnClientIsExact(t *testing.T) {
	for code, want := range map[string]bool{
		CodeClientInstalling: true, "ClientUpgrading": true, "ClientRegistered": true,
		"ClientNotFound": false, "ClientStopped": false, CodeCloudAssistDown: false, "": false,
	} {
		assert.Equal(t, want, waitingOnClient(code), code)
	}
}
