package install

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
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
		RetryBaseDelay: 5 * time.Second, RetryMaxDelay: 2 * time.Minute, MaxAttempts: 2,
	}
}

func newService(inst installFunc, now time.Time) (*Service, *[][]string) {
	var calls [][]string
	return &Service{
		HBR: func(context.Context, string) (Installer, error) {
			return installFunc(func(ids []string) (hbr.InstallResult, error) {
				calls = append(calls, append([]string(nil), ids...))
				return inst(ids)
			}), nil
		},
		Policy: testPolicy(),
		Now:    func() time.Time { return now },
	}, &calls
}

func instances(n int) []job.Instance {
	var out []job.Instance
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("i-%03d", i)
		out = append(out, job.Instance{ID: id, JobID: job.JobID("acs.ecs", "ev", id), FirstSeen: t0, ReadyBy: t0.Add(10 * time.Minute)})
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

func TestSameInstanceFromTwoJobsIsInstalledOnce(t *testing.T) {
	s, calls := newService(allValid, t0)
	a := instances(1)[0]
	a.EventTime = t0.Add(-time.Minute)
	b := a
	b.JobID = job.JobID("acs.ecs", "other-event", a.ID)
	b.EventTime = t0.Add(-30 * time.Second)
	res := s.Install(context.Background(), "cn-hangzhou", []job.Instance{b, a, a}, 0)
	require.Len(t, *calls, 1)
	assert.Equal(t, []string{a.ID}, (*calls)[0])
	require.Len(t, res.Next, 1)
	require.Len(t, res.Next[0].Message.Instances, 1, "the owner alone follows the task")
	assert.Equal(t, a.JobID, res.Next[0].Message.Instances[0].JobID, "the job announced first owns the install")
	require.Len(t, res.Joined, 1, "the other job joins; the owner's copy is dropped silently")
	assert.Equal(t, outcome.Join{JobID: b.JobID, InstanceID: a.ID, Region: "cn-hangzhou", Owner: a.JobID,
		Reason: "another job for the same instance is handled in the same batch"}, res.Joined[0])
}

// A batch can hold 20 instances each announced by two jobs, or install
// retries of 20 + 1 + 1 instances that overlap: the poll message still holds
// at most 20 entries (before, it held one per job and failed to encode).
func TestPollMessagesHoldAtMostTwentyWhateverTheOverlap(t *testing.T) {
	twice := instances(20)
	for _, in := range instances(20) {
		in.JobID = job.JobID("acs.ecs", "second-event", in.ID)
		twice = append(twice, in)
	}
	overlap := instances(20)
	extra := instances(21)[20]
	again := instances(1)[0]
	again.JobID = job.JobID("acs.ecs", "heartbeat", again.ID)
	overlap = append(overlap, extra, again)
	for name, ins := range map[string][]job.Instance{"20 ids × 2 jobs": twice, "20 + 1 + 1": overlap} {
		t.Run(name, func(t *testing.T) {
			s, _ := newService(allValid, t0)
			res := s.Install(context.Background(), "cn-hangzhou", ins, 0)
			polled := map[string]int{}
			for _, n := range res.Next {
				require.Equal(t, job.KindPoll, n.Message.Kind)
				assert.LessOrEqual(t, len(n.Message.Instances), job.MaxInstances)
				_, err := job.Encode(n.Message)
				require.NoError(t, err, "every poll message encodes")
				for _, in := range n.Message.Instances {
					polled[in.ID]++
				}
			}
			assert.Empty(t, res.Outcomes, "nothing ends FAILED for want of a message")
			for id, n := range polled {
				assert.Equal(t, 1, n, "%s is followed by one job", id)
			}
			assert.Len(t, res.Joined, len(ins)-len(polled))
		})
	}
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

func TestExistingClients(t *testing.T) {
	ins := instances(6)
	for i := range ins {
		ins[i].EventTime = t0.Add(-time.Minute)
	}
	ins[3].Attempts = 1 // a reinstall is never short-cut
	// The event time keeps fractions; HBR's CreatedTime is whole seconds: a
	// client created in the event's own second was created after it.
	ins[4].EventTime = t0.Add(-time.Minute + 700*time.Millisecond)
	fake := &withClients{installFunc: allValid, clients: []hbr.BackupClient{
		{InstanceID: "i-000", ClientID: "c-old", Status: "ACTIVATED", CreatedTime: t0.Add(-24 * time.Hour).Unix()},
		{InstanceID: "i-001", ClientID: "c-new", Status: "ACTIVATED", CreatedTime: t0.Unix()},
		{InstanceID: "i-002", ClientID: "c-busy", Status: "INSTALLING", CreatedTime: t0.Add(-time.Hour).Unix()},
		{InstanceID: "i-003", ClientID: "c-x", Status: "INSTALL_FAILED", CreatedTime: t0.Unix()},
		{InstanceID: "i-004", ClientID: "c-same", Status: "INSTALLING", CreatedTime: t0.Add(-time.Minute).Unix()},
		// Installed for an earlier event of the same launch: this job (say,
		// the heartbeat's) knows only its own event's time.
		{InstanceID: "i-005", ClientID: "c-launch", Status: "ACTIVATED", CreatedTime: t0.Add(-4 * time.Minute).Unix()},
	}}
	var installed [][]string
	s := &Service{
		HBR: func(context.Context, string) (Installer, error) {
			return &withClients{installFunc: func(ids []string) (hbr.InstallResult, error) {
				installed = append(installed, ids)
				return allValid(ids)
			}, clients: fake.clients}, nil
		},
		Policy: testPolicy(), Now: func() time.Time { return t0 },
	}
	res := s.Install(context.Background(), "cn-hangzhou", ins, 0)
	got := outcomesByID(res.Outcomes)
	assert.Len(t, res.Outcomes, 1)
	assert.Equal(t, outcome.AlreadyInstalled, got["i-000"].Outcome, "a client older than the event")
	assert.Equal(t, "c-old", got["i-000"].ClientID)
	var joined []string
	for _, j := range res.Joined {
		joined = append(joined, j.InstanceID)
		assert.Contains(t, j.Owner, "the install that created client")
	}
	assert.Equal(t, []string{"i-001", "i-004", "i-005"}, joined, "clients created by this launch belong to another job's install")
	require.Len(t, installed, 1)
	assert.Equal(t, []string{"i-003"}, installed[0], "only the reinstall is installed")
	var kinds []job.Kind
	for _, n := range res.Next {
		kinds = append(kinds, n.Message.Kind)
		if n.Message.Kind == job.KindInstallRetry {
			assert.Equal(t, []string{"i-002"}, n.Message.IDs(), "an install older than the launch is waited for")
			assert.Equal(t, CodeClientInstalling, n.Message.Instances[0].LastCode)
		}
	}
	assert.ElementsMatch(t, []job.Kind{job.KindPoll, job.KindInstallRetry}, kinds)
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
			in := instances(1)[0]
			in.EventTime = t0
			installs := 0
			s := &Service{
				HBR: func(context.Context, string) (Installer, error) {
					return &withClients{installFunc: func(ids []string) (hbr.InstallResult, error) {
						installs++
						return allValid(ids)
					}, clients: []hbr.BackupClient{{InstanceID: in.ID, ClientID: "c-1", Status: tt.status, CreatedTime: t0.Add(-time.Hour).Unix()}}}, nil
				},
				Policy: testPolicy(), Now: func() time.Time { return t0 },
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
		Policy: testPolicy(), Now: func() time.Time { return t0.Add(time.Minute) },
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
		Policy: testPolicy(), Now: func() time.Time { return t0 },
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
		Policy: testPolicy(), Now: func() time.Time { return t0 },
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
		Policy: testPolicy(), Now: func() time.Time { return now },
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
		Policy: testPolicy(), Now: func() time.Time { return t0.Add(5 * time.Minute) },
	}
	res := s.Install(context.Background(), "cn-hangzhou", []job.Instance{in}, 0)
	assert.Zero(t, installed, "the other install finished: no second one")
	require.Len(t, res.Outcomes, 1)
	assert.Equal(t, outcome.Installed, res.Outcomes[0].Outcome)
}

// Jobs for one instance that cannot install (not ready, throttled) wait on a
// common grid, so they are due together, meet in one batch, and one takes
// over the others with the latest readiness deadline among them: a launch's
// chains become one, and end with one record.
func TestChainsForOneInstanceMeetOnTheGrid(t *testing.T) {
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

	notReady := func([]string) (hbr.InstallResult, error) {
		return hbr.InstallResult{}, apiErr(fault.Permanent, CodeCloudAssistDown)
	}
	s, _ := newService(notReady, t0.Add(4*time.Minute))
	a := instances(1)[0]
	b := a
	b.JobID = job.JobID("acs.ecs", "running-event", a.ID)
	b.EventTime, b.ReadyBy = t0.Add(time.Minute), t0.Add(11*time.Minute)
	res := s.Install(context.Background(), "cn-hangzhou", []job.Instance{a, b}, 0)
	require.Len(t, res.Next, 1)
	require.Len(t, res.Next[0].Message.Instances, 1, "one chain goes on")
	assert.Equal(t, t0.Add(11*time.Minute), res.Next[0].Message.Instances[0].ReadyBy, "with the later deadline")
	assert.Len(t, res.Joined, 1)
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
