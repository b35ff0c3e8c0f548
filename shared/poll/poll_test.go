package poll

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// fakeHBR is a hand-written fake of the HBR calls. The poll step must
// never call InstallBackupClients: the fake records it if it does.
type fakeHBR struct {
	task      func(id string) (hbr.Task, error)
	mu        sync.Mutex
	described []string
	installed [][]string
}

func (f *fakeHBR) DescribeTask(_ context.Context, id string) (hbr.Task, error) {
	f.mu.Lock()
	f.described = append(f.described, id)
	f.mu.Unlock()
	return f.task(id)
}

func (f *fakeHBR) DescribeBackupClients(context.Context, []string) ([]hbr.BackupClient, error) {
	return nil, nil
}

func (f *fakeHBR) InstallBackupClients(_ context.Context, ids []string) (hbr.InstallResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.installed = append(f.installed, ids)
	return hbr.InstallResult{}, fault.Wrap("fake", fault.Permanent, "PollerInstalled", fmt.Errorf("the poller must not install"))
}

func newService(f *fakeHBR, now time.Time) *Service {
	clock := func() time.Time { return now }
	return &Service{
		Tasks: func(context.Context, string) (TaskReader, error) { return f, nil },
		Install: &install.Service{
			HBR: func(context.Context, string) (install.Installer, error) { return f, nil },
			Policy: install.Policy{
				FirstPollDelay: 60 * time.Second, PollInterval: 30 * time.Second,
				TaskTimeout: 15 * time.Minute, DeadlineMargin: 2 * time.Minute,
				ReadinessTimeout: 10 * time.Minute, ReadinessDelay: 30 * time.Second, ReadinessDelayStep: 10 * time.Second,
				RetryBaseDelay: 5 * time.Second, RetryMaxDelay: 2 * time.Minute, MaxAttempts: 2,
			},
			Now: clock,
		},
		Now: clock,
	}
}

func pollMsg(ids ...string) job.Message {
	m := job.Message{Version: job.Version, Kind: job.KindPoll, Region: "cn-hangzhou", TaskID: "t-1",
		TaskStartedAt: t0, Deadline: t0.Add(17 * time.Minute), SentAt: t0}
	for _, id := range ids {
		m.Instances = append(m.Instances, job.Instance{ID: id, JobID: job.JobID("acs.ecs", "ev", id),
			FirstSeen: t0, ReadyBy: t0.Add(10 * time.Minute), Attempts: 1, Generation: 1})
	}
	return m
}

func task(state string, results ...hbr.ClientResult) func(string) (hbr.Task, error) {
	return func(id string) (hbr.Task, error) {
		return hbr.Task{TaskID: id, Description: state, Results: results}, nil
	}
}

func byID(rs []outcome.Record) map[string]outcome.Record {
	m := map[string]outcome.Record{}
	for _, r := range rs {
		m[r.InstanceID] = r
	}
	return m
}

func TestPollDecisions(t *testing.T) {
	tests := []struct {
		name        string
		task        func(string) (hbr.Task, error)
		attempts    int
		now         time.Time
		wantOutcome outcome.Kind
		wantCode    string
		wantPoll    bool
		wantInstall bool
		wantCalls   int
	}{
		{name: "activated", task: task("completed", hbr.ClientResult{InstanceID: "i-a", ClientID: "c-1", ClientStatus: "ACTIVATED"}), wantOutcome: outcome.Installed, wantCalls: 1},
		{name: "still running, empty result", task: task("created"), wantPoll: true, wantCalls: 1},
		{name: "still installing", task: task("created", hbr.ClientResult{InstanceID: "i-a", ClientStatus: "INSTALLING"}), wantPoll: true, wantCalls: 1},
		{name: "failed, attempts left", task: task("completed", hbr.ClientResult{InstanceID: "i-a", ClientStatus: "INSTALL_FAILED", ErrorCode: "ExecTimeout"}), wantInstall: true, wantCalls: 1},
		{name: "failed, no attempts left", attempts: 2, task: task("completed", hbr.ClientResult{InstanceID: "i-a", ClientStatus: "INSTALL_FAILED", ErrorCode: "ExecTimeout"}), wantOutcome: outcome.Failed, wantCode: "ExecTimeout", wantCalls: 1},
		{name: "deactivated", attempts: 2, task: task("completed", hbr.ClientResult{InstanceID: "i-a", ClientStatus: "DEACTIVATED"}), wantOutcome: outcome.Failed, wantCode: "DEACTIVATED", wantCalls: 1},
		{name: "expired", task: task("expired"), wantOutcome: outcome.Timeout, wantCode: "TaskExpired", wantCalls: 1},
		{name: "cancelled", task: task("cancelled"), wantOutcome: outcome.Cancelled, wantCode: "TaskCancelled", wantCalls: 1},
		{name: "completed without a result", attempts: 2, task: task("completed"), wantOutcome: outcome.Failed, wantCode: "NoResult", wantCalls: 1},
		{name: "progress -1 counts as done", attempts: 2, task: func(id string) (hbr.Task, error) {
			return hbr.Task{TaskID: id, Description: "running", Progress: -1}, nil
		}, wantOutcome: outcome.Failed, wantCode: "NoResult", wantCalls: 1},
		{name: "past deadline: no call", now: t0.Add(17 * time.Minute), task: task("created"), wantOutcome: outcome.Timeout, wantCode: "Deadline"},
		{name: "throttled: poll again", task: func(string) (hbr.Task, error) {
			return hbr.Task{}, fault.Wrap("hbr.DescribeTask", fault.Retryable, "Throttling.User", fmt.Errorf("throttled"))
		}, wantPoll: true, wantCalls: 1},
		{name: "task unknown, no attempts left", attempts: 2, task: func(string) (hbr.Task, error) {
			return hbr.Task{}, fault.Wrap("hbr.DescribeTask", fault.Permanent, "InvalidTaskId.NotFound", fmt.Errorf("no task"))
		}, wantOutcome: outcome.Failed, wantCode: "InvalidTaskId.NotFound", wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeHBR{task: tt.task}
			now := tt.now
			if now.IsZero() {
				now = t0.Add(2 * time.Minute)
			}
			m := pollMsg("i-a")
			if tt.attempts > 0 {
				m.Instances[0].Attempts = tt.attempts
			}
			res := newService(f, now).Handle(context.Background(), []job.Message{m})
			assert.Len(t, f.described, tt.wantCalls)
			if tt.wantOutcome != "" {
				require.Len(t, res.Outcomes, 1)
				assert.Equal(t, tt.wantOutcome, res.Outcomes[0].Outcome)
				assert.Equal(t, tt.wantCode, res.Outcomes[0].Code)
				assert.Empty(t, res.Next)
				return
			}
			assert.Empty(t, res.Outcomes)
			require.Len(t, res.Next, 1)
			n := res.Next[0]
			if tt.wantPoll {
				assert.Equal(t, job.KindPoll, n.Message.Kind)
				assert.Equal(t, "t-1", n.Message.TaskID)
				assert.LessOrEqual(t, n.Delay, 30*time.Second)
			}
			if tt.wantInstall {
				assert.Equal(t, job.KindInstallRetry, n.Message.Kind, "a reinstall goes back to the install function")
				assert.Empty(t, n.Message.TaskID)
				assert.Equal(t, 1, n.Message.Instances[0].Attempts, "attempts count the tasks started so far")
				assert.Equal(t, "ExecTimeout", n.Message.Instances[0].LastCode)
				assert.Equal(t, 1, n.Message.Instances[0].Generation)
			}
			assert.Empty(t, f.installed, "the poller never installs")
			_, err := job.Encode(n.Message)
			assert.NoError(t, err)
		})
	}
}

func TestPollNeverSchedulesPastDeadline(t *testing.T) {
	f := &fakeHBR{task: task("created")}
	now := t0.Add(17*time.Minute - 10*time.Second)
	res := newService(f, now).Handle(context.Background(), []job.Message{pollMsg("i-a")})
	require.Len(t, res.Next, 1)
	assert.Equal(t, 10*time.Second, res.Next[0].Delay)
	assert.Equal(t, 1, res.Next[0].Message.PollCount)
}

func TestMixedTaskSplitsInstances(t *testing.T) {
	f := &fakeHBR{task: task("created",
		hbr.ClientResult{InstanceID: "i-a", ClientStatus: "ACTIVATED", ClientID: "c-a"},
		hbr.ClientResult{InstanceID: "i-b", ClientStatus: "INSTALLING"},
		hbr.ClientResult{InstanceID: "i-c", ClientStatus: "INSTALL_FAILED"},
	)}
	res := newService(f, t0.Add(time.Minute)).Handle(context.Background(), []job.Message{pollMsg("i-a", "i-b", "i-c")})
	got := byID(res.Outcomes)
	assert.Equal(t, outcome.Installed, got["i-a"].Outcome)
	assert.Equal(t, "c-a", got["i-a"].ClientID)
	require.Len(t, res.Next, 2)
	kinds := map[job.Kind][]string{}
	for _, n := range res.Next {
		kinds[n.Message.Kind] = n.Message.IDs()
	}
	assert.Equal(t, []string{"i-b"}, kinds[job.KindPoll])
	assert.Equal(t, []string{"i-c"}, kinds[job.KindInstallRetry])
	assert.Empty(t, f.installed)
}

func TestInstallRetriesAreNotThePollers(t *testing.T) {
	f := &fakeHBR{}
	m := pollMsg("i-a")
	m.Kind, m.TaskID = job.KindInstallRetry, ""
	res := newService(f, t0.Add(time.Minute)).Handle(context.Background(), []job.Message{m})
	assert.Empty(t, f.installed)
	assert.Empty(t, res.Next, "the handler forwards install work; the poll step leaves it alone")
	assert.Empty(t, res.Outcomes)
}

func TestDuplicateDeliveriesDecideTheSame(t *testing.T) {
	f := &fakeHBR{task: task("completed", hbr.ClientResult{InstanceID: "i-a", ClientStatus: "ACTIVATED", ClientID: "c-1"})}
	s := newService(f, t0.Add(2*time.Minute))
	a := s.Handle(context.Background(), []job.Message{pollMsg("i-a")})
	b := s.Handle(context.Background(), []job.Message{pollMsg("i-a")})
	require.Len(t, a.Outcomes, 1)
	assert.Equal(t, a.Outcomes, b.Outcomes)
}

// twinHBR is a fake where another task (a duplicate delivery's twin) has
// installed or is installing the client.
type twinHBR struct {
	fakeHBR
	client hbr.BackupClient
}

func (f *twinHBR) DescribeBackupClients(context.Context, []string) ([]hbr.BackupClient, error) {
	return []hbr.BackupClient{f.client}, nil
}

func TestFailureVerdictsAreConfirmedAgainstTheClient(t *testing.T) {
	tests := []struct {
		name     string
		status   string
		want     outcome.Kind
		wantPoll bool
	}{
		{"twin activated the client", "ACTIVATED", outcome.Installed, false},
		{"twin still installing", "INSTALLING", "", true},
		{"nobody else", "INSTALL_FAILED", outcome.Cancelled, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &twinHBR{fakeHBR: fakeHBR{task: task("cancelled")},
				client: hbr.BackupClient{InstanceID: "i-a", ClientID: "c-twin", Status: tt.status, CreatedTime: t0.Add(time.Minute).Unix()}}
			now := t0.Add(2 * time.Minute)
			clock := func() time.Time { return now }
			s := &Service{
				Tasks: func(context.Context, string) (TaskReader, error) { return f, nil },
				Install: &install.Service{
					HBR:    func(context.Context, string) (install.Installer, error) { return f, nil },
					Policy: newService(&f.fakeHBR, now).Install.Policy, Now: clock,
				},
				Now: clock,
			}
			res := s.Handle(context.Background(), []job.Message{pollMsg("i-a")})
			if tt.wantPoll {
				assert.Empty(t, res.Outcomes, "the verdict waits while another task installs the client")
				require.Len(t, res.Next, 1)
				assert.Equal(t, job.KindPoll, res.Next[0].Message.Kind)
				return
			}
			require.Len(t, res.Outcomes, 1)
			assert.Equal(t, tt.want, res.Outcomes[0].Outcome)
		})
	}
}

// Polls keep to the task's grid (first poll 60 s after the start, then
// every 30 s): a poll that ran late does not push every later one back,
// and one that ran very late skips a grid point rather than follow in a
// burst.
func TestNextPollKeepsToTheTasksGrid(t *testing.T) {
	s := newService(&fakeHBR{}, t0)
	for _, tc := range []struct {
		name    string
		started time.Time
		now     time.Duration // since t0
		want    time.Duration
	}{
		{"on time", t0, 60 * time.Second, 30 * time.Second},
		{"5 s late", t0, 65 * time.Second, 25 * time.Second},
		{"15 s late: still the next point", t0, 105 * time.Second, 15 * time.Second},
		{"20 s late: the point after", t0, 110 * time.Second, 40 * time.Second},
		{"early, before the first poll", t0, 10 * time.Second, 50 * time.Second},
		{"an older message without the start", time.Time{}, 65 * time.Second, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, s.nextPoll(tc.started, t0.Add(tc.now)))
		})
	}
}

func TestStillRunningIsPolledOnTheGrid(t *testing.T) {
	now := t0.Add(67 * time.Second) // the first poll, delivered 7 s late
	s := newService(&fakeHBR{task: task("running", hbr.ClientResult{InstanceID: "i-a", ClientStatus: "INSTALLING"})}, now)
	res := s.Handle(context.Background(), []job.Message{pollMsg("i-a")})
	require.Len(t, res.Next, 1)
	assert.Equal(t, 23*time.Second, res.Next[0].Delay, "due 90 s after the start, not 30 s after this poll")
	assert.Equal(t, 1, res.Next[0].Message.PollCount)
}

// A batch's tasks are polled side by side: it waits for the slowest
// DescribeTask, not for the sum of them.
func TestTasksOfABatchArePolledAtOnce(t *testing.T) {
	var live, peak atomic.Int32
	f := &fakeHBR{task: func(id string) (hbr.Task, error) {
		n := live.Add(1)
		defer live.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		return hbr.Task{TaskID: id, Description: "completed", Progress: 100,
			Results: []hbr.ClientResult{{InstanceID: "i-" + id, ClientStatus: "ACTIVATED", ClientID: "c-" + id}}}, nil
	}}
	s := newService(f, t0.Add(time.Minute))
	s.Parallel = 4
	var msgs []job.Message
	for i := range 12 {
		m := pollMsg(fmt.Sprintf("i-t-%02d", i))
		m.TaskID = fmt.Sprintf("t-%02d", i)
		msgs = append(msgs, m)
	}
	res := s.Handle(context.Background(), msgs)
	assert.Len(t, res.Outcomes, 12, "every task's instance ends")
	assert.Len(t, f.described, 12)
	assert.Equal(t, int32(4), peak.Load(), "at most Parallel at once, and more than one")
}
