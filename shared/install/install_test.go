package install

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
		{"third", t0.Add(2 * time.Minute), 2, 50 * time.Second, false},
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

func TestTopLevelNotReadySplitsTheChunk(t *testing.T) {
	bad := "i-002"
	s, calls := newService(func(ids []string) (hbr.InstallResult, error) {
		for _, id := range ids {
			if id == bad {
				return hbr.InstallResult{}, apiErr(fault.Permanent, CodeInstanceNotRunning)
			}
		}
		return allValid(ids)
	}, t0)
	res := s.Install(context.Background(), "cn-hangzhou", instances(8), 0)
	started, retried := 0, 0
	for _, n := range res.Next {
		if n.Message.Kind == job.KindPoll {
			started += len(n.Message.Instances)
		} else {
			assert.Equal(t, []string{bad}, n.Message.IDs())
			retried++
		}
	}
	assert.Equal(t, 7, started, "one not-ready instance does not hold the others back")
	assert.Equal(t, 1, retried)
	assert.LessOrEqual(t, len(*calls), 8)
}

func TestTransientErrorsBackOff(t *testing.T) {
	s, _ := newService(func([]string) (hbr.InstallResult, error) {
		return hbr.InstallResult{}, apiErr(fault.Retryable, "Throttling.User")
	}, t0)
	res := s.Install(context.Background(), "cn-hangzhou", instances(3), 2)
	require.Len(t, res.Next, 1)
	assert.Equal(t, 3, res.Next[0].Message.Retries)
	assert.Equal(t, 20*time.Second, res.Next[0].Delay)
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
	b := a
	b.JobID = job.JobID("acs.ecs", "other-event", a.ID)
	res := s.Install(context.Background(), "cn-hangzhou", []job.Instance{a, b}, 0)
	require.Len(t, *calls, 1)
	assert.Equal(t, []string{a.ID}, (*calls)[0])
	require.Len(t, res.Next, 1)
	assert.Len(t, res.Next[0].Message.Instances, 2, "both jobs follow the one task")
	_, err := job.Encode(res.Next[0].Message)
	assert.NoError(t, err)
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
	ins := instances(4)
	for i := range ins {
		ins[i].EventTime = t0.Add(-time.Minute)
	}
	ins[3].Attempts = 1 // a reinstall is never short-cut
	fake := &withClients{installFunc: allValid, clients: []hbr.BackupClient{
		{InstanceID: "i-000", ClientID: "c-old", Status: "ACTIVATED", CreatedTime: t0.Add(-24 * time.Hour).Unix()},
		{InstanceID: "i-001", ClientID: "c-new", Status: "ACTIVATED", CreatedTime: t0.Unix()},
		{InstanceID: "i-002", ClientID: "c-busy", Status: "INSTALLING"},
		{InstanceID: "i-003", ClientID: "c-x", Status: "ACTIVATED", CreatedTime: 1},
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
	assert.Equal(t, outcome.AlreadyInstalled, got["i-000"].Outcome, "a client older than the event")
	assert.Equal(t, "c-old", got["i-000"].ClientID)
	assert.Equal(t, outcome.Installed, got["i-001"].Outcome, "a client created after the event: this job's own install, delivered twice")
	require.Len(t, installed, 1)
	assert.Equal(t, []string{"i-003"}, installed[0], "only the reinstall is installed")
	var kinds []job.Kind
	for _, n := range res.Next {
		kinds = append(kinds, n.Message.Kind)
		if n.Message.Kind == job.KindInstallRetry {
			assert.Equal(t, []string{"i-002"}, n.Message.IDs())
			assert.Equal(t, CodeClientInstalling, n.Message.Instances[0].LastCode)
		}
	}
	assert.ElementsMatch(t, []job.Kind{job.KindPoll, job.KindInstallRetry}, kinds)
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
