package bench

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecsevent"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
)

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/hbr-autoinstall/hbr-autoinstall/shared/handler
cpu: AMD EPYC
BenchmarkInstallHandle-2   	    1234	    812345 ns/op	   54321 B/op	     612 allocs/op
BenchmarkPollHandle        	     987	    402000.5 ns/op	   23456 B/op	     301 allocs/op
BenchmarkBroken-2 notanumber ns/op
PASS
ok  	github.com/hbr-autoinstall/hbr-autoinstall/shared/handler	3.1s
`
	got := ParseGoBench(out)
	assert.Equal(t, []GoBench{
		{Name: "BenchmarkInstallHandle", Iterations: 1234, NsPerOp: 812345, BytesPerOp: 54321, AllocsPerOp: 612},
		{Name: "BenchmarkPollHandle", Iterations: 987, NsPerOp: 402000.5, BytesPerOp: 23456, AllocsPerOp: 301},
	}, got)
	assert.Empty(t, ParseGoBench("PASS\n"))
}

// TestHandlerBenchmarksRun runs the handler step of `make bench` once per
// benchmark: the product's benchmarks must keep running (they stopped when
// the ledger came, and the bench reported handler_benchmarks_error).
func TestHandlerBenchmarksRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the handler benchmarks")
	}
	root, err := localcloud.ModuleRoot(".")
	require.NoError(t, err)
	got, err := RunGoBench(context.Background(), root, "./shared/handler", "3x")
	require.NoError(t, err)
	var names []string
	for _, b := range got {
		names = append(names, b.Name)
		assert.Positive(t, b.NsPerOp, b.Name)
		assert.Positive(t, b.AllocsPerOp, b.Name)
	}
	assert.ElementsMatch(t, []string{"BenchmarkInstallHandle", "BenchmarkPollHandle", "BenchmarkPollHandleRunning"}, names)
}

func TestMinimumPolls(t *testing.T) {
	const first, interval = 60 * time.Second, 30 * time.Second
	tests := []struct {
		d    time.Duration
		want int
	}{
		{0, 1},
		{59 * time.Second, 1},
		{60 * time.Second, 1},
		{61 * time.Second, 2},
		{90 * time.Second, 2},
		{91 * time.Second, 3},
		{180 * time.Second, 5},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, minimumPolls(tt.d, first, interval), "d=%s", tt.d)
	}
}

func TestPercentilesAndMedian(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Second)
	}
	p := percentiles(ds)
	assert.Equal(t, Percentiles{N: 100, P50: 50, P90: 90, P99: 99, Max: 100}, p)
	assert.Equal(t, Percentiles{}, percentiles(nil))
	assert.Equal(t, 2*time.Second, median([]time.Duration{3 * time.Second, time.Second, 2 * time.Second}))
	assert.Equal(t, 2500*time.Millisecond, median([]time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second}))
	assert.Zero(t, median(nil))
}

func TestScale(t *testing.T) {
	s := Scale(30)
	tests := []struct {
		real, delay, span time.Duration
	}{
		{60 * time.Second, 2 * time.Second, 2 * time.Second},
		{30 * time.Second, time.Second, time.Second},
		{10 * time.Second, time.Second, 333333333},
		{15 * time.Minute, 30 * time.Second, 30 * time.Second},
		{45 * time.Second, 2 * time.Second, 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.delay, s.Delay(tt.real), "Delay(%s)", tt.real)
		assert.Equal(t, tt.span, s.Span(tt.real), "Span(%s)", tt.real)
	}
	assert.Equal(t, time.Minute, s.Real(2*time.Second))

	rt, err := RealTiming()
	require.NoError(t, err)
	assert.Equal(t, 60*time.Second, rt.FirstPoll, "the product's documented default")
	assert.Equal(t, 30*time.Second, rt.Interval)
	local := s.Timing(rt)
	assert.Equal(t, 2*time.Second, local.FirstPoll)
	assert.Equal(t, time.Second, local.Interval)
	assert.Equal(t, rt.MaxAttempts, local.MaxAttempts)
}

func TestNaiveCost(t *testing.T) {
	s := Scale(1) // behaviours already in real-cloud time
	tests := []struct {
		name          string
		b             hbrsim.Behavior
		install, desc int
		installed     int
	}{
		{"ready, 60 s task", hbrsim.Behavior{InstallDuration: time.Minute}, 1, 12, 1},
		{"ready, 61 s task", hbrsim.Behavior{InstallDuration: 61 * time.Second}, 1, 13, 1},
		{"ready after 45 s: calls at 0, 30, 70 s", hbrsim.Behavior{ReadyAfter: 45 * time.Second, InstallDuration: 5 * time.Second}, 3, 1, 1},
		{"ready after 120 s: calls at 0, 30, 70, 120 s", hbrsim.Behavior{ReadyAfter: 120 * time.Second, InstallDuration: time.Second}, 4, 1, 1},
		{"never ready within 5 min", hbrsim.Behavior{ReadyAfter: time.Hour}, 6, 0, 0},
		{"gone", hbrsim.Behavior{Gone: true}, 1, 0, 0},
		{"fails once, then installs", hbrsim.Behavior{FailInstalls: 1, InstallDuration: 10 * time.Second}, 2, 4, 1},
		{"fails every attempt", hbrsim.Behavior{FailInstalls: 5, InstallDuration: 10 * time.Second}, 2, 4, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := naiveCost(map[string]hbrsim.Behavior{"i-1": tt.b}, s, 2)
			assert.Equal(t, tt.install, n.InstallCalls, "install calls")
			assert.Equal(t, tt.desc, n.DescribeCalls, "describe calls")
			assert.Equal(t, tt.installed, n.Installed)
			assert.Equal(t, tt.install+tt.desc, n.HBRCalls)
		})
	}
}

func TestChainsAndPastDeadline(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	in := func(id, jobID string) job.Instance { return job.Instance{ID: id, JobID: jobID} }
	sends := []sent{
		{msg: job.Message{Kind: job.KindInstallRetry, Instances: []job.Instance{in("i-a", "j-a"), in("i-b", "j-b")}}},
		{msg: job.Message{Kind: job.KindPoll, TaskID: "t-1", Deadline: t0, Instances: []job.Instance{in("i-a", "j-a"), in("i-b", "j-b")}}},
		{msg: job.Message{Kind: job.KindPoll, TaskID: "t-1", Deadline: t0, Instances: []job.Instance{in("i-a", "j-a")}}},
		{msg: job.Message{Kind: job.KindPoll, TaskID: "t-2", Deadline: t0.Add(time.Minute), Instances: []job.Instance{in("i-c", "j-c")}}},
	}
	longest, jobID, task := chains(sends)
	assert.Equal(t, 3, longest)
	assert.Equal(t, "j-a", jobID)
	assert.Equal(t, 2, task)

	tests := []struct {
		name      string
		calls     []hbrCall
		n         int
		overshoot time.Duration
		closest   time.Duration
	}{
		{"in time", []hbrCall{
			{at: t0.Add(-time.Second), action: "DescribeTask", taskID: "t-1"},
			{at: t0.Add(-300 * time.Millisecond), action: "DescribeTask", taskID: "t-1"},
		}, 0, 0, 300 * time.Millisecond},
		{"late", []hbrCall{
			{at: t0.Add(20 * time.Millisecond), action: "DescribeTask", taskID: "t-1"},
			{at: t0.Add(30 * time.Second), action: "DescribeTask", taskID: "t-2"},
		}, 1, 20 * time.Millisecond, 30 * time.Second},
		{"other actions and unknown tasks are not judged", []hbrCall{
			{at: t0.Add(time.Hour), action: "InstallBackupClients", taskID: "t-1"},
			{at: t0.Add(time.Hour), action: "DescribeTask", taskID: "t-unknown"},
		}, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, over, closest := pastDeadline(tt.calls, sends)
			assert.Equal(t, tt.n, n)
			assert.Equal(t, tt.overshoot, over)
			assert.Equal(t, tt.closest, closest)
		})
	}
}

func TestConflicts(t *testing.T) {
	rec := func(job, outcome, code, reason string) localcloud.Record {
		return localcloud.Record{JobID: job, InstanceID: "i-" + job, Outcome: outcome, Code: code, Reason: reason}
	}
	records := []localcloud.Record{
		rec("a", "INSTALLED", "", "activated"), rec("a", "INSTALLED", "", "activated"), // repeat
		rec("b", "TIMEOUT", "TaskExpired", "task t-1 expired"), rec("b", "TIMEOUT", "TaskExpired", "task t-2 expired"), // fork
		rec("c", "INSTALLED", "", "activated"), rec("c", "TIMEOUT", "Deadline", "late"), // duplicated
		rec("d", "FAILED", "X", "one"), rec("d", "FAILED", "X", "two"), rec("d", "CANCELLED", "Y", "three"), // fork, then duplicated
	}
	dup, fork, samples := conflicts(records, 10)
	assert.Equal(t, 2, dup)
	assert.Equal(t, 1, fork)
	require.Len(t, samples, 4)
	assert.Contains(t, samples[0], "duplicated i-c: INSTALLED/")
	assert.Contains(t, samples[1], "duplicated i-d: FAILED/X (one) ≠ CANCELLED/Y (three)")
	assert.Contains(t, samples[2], "forked i-b")
	_, _, samples = conflicts(records, 1)
	assert.Len(t, samples, 1)
}

func TestScenarioPlan(t *testing.T) {
	sc := BurstScenario().WithInstances(100)
	require.Equal(t, 10, sc.BurstSize)
	p, err := sc.Plan(Scale(30), 7, time.Minute)
	require.NoError(t, err)
	assert.Len(t, p.IDs, 100)
	assert.Len(t, p.Behaviors, 100)
	assert.Len(t, p.Arrivals, 40+6)

	seen := map[string]bool{}
	var last time.Duration
	for _, a := range p.Arrivals {
		assert.GreaterOrEqual(t, a.At, last, "arrivals are in order")
		assert.LessOrEqual(t, a.At, 10*time.Second, "within the scaled arrival window")
		last = a.At
		b, err := ecsevent.Parse(a.Payload, "cn-hangzhou")
		require.NoError(t, err)
		require.Len(t, b.Candidates, len(a.IDs))
		for i, c := range b.Candidates {
			assert.Equal(t, a.IDs[i], c.InstanceID)
			assert.True(t, job.ValidInstanceID(c.InstanceID))
			seen[c.InstanceID] = true
		}
	}
	assert.Len(t, seen, 100, "every instance is announced once")

	notReady := 0
	for _, b := range p.Behaviors {
		assert.GreaterOrEqual(t, b.InstallDuration, 2*time.Second)
		assert.LessOrEqual(t, b.InstallDuration, 6*time.Second)
		if b.ReadyAfter > 0 {
			notReady++
			assert.GreaterOrEqual(t, b.ReadyAfter, 2*time.Second)
			assert.LessOrEqual(t, b.ReadyAfter, 4*time.Second)
		}
	}
	assert.InDelta(t, 30, notReady, 15, "about 30 %% not ready")

	again, err := sc.Plan(Scale(30), 7, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, p.Behaviors, again.Behaviors, "a seed gives the same plan")

	chaos, err := ChaosScenario(sc).Plan(Scale(30), 7, time.Minute)
	require.NoError(t, err)
	hung := 0
	for _, b := range chaos.Behaviors {
		if b.InstallDuration == time.Minute {
			hung++
			assert.False(t, b.Gone)
			assert.Empty(t, b.TaskEnd)
		}
	}
	assert.Equal(t, 1, hung, "1 %% of 100 instances hang, and at least one always does")

	_, err = Scenario{Instances: 10, Bursts: 2, BurstSize: 10}.Plan(Scale(30), 1, time.Minute)
	assert.Error(t, err, "more burst instances than instances")
}

func TestVmHWM(t *testing.T) {
	kb, err := vmHWM(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, kb)
	_, err = vmHWM(-1)
	assert.Error(t, err)
}

func TestWorldScenarioPlan(t *testing.T) {
	sc := ChaosScenario(DefaultScenario().WithInstances(100))
	require.True(t, sc.World)
	p, err := sc.Plan(Scale(30), 7, time.Minute)
	require.NoError(t, err)
	require.NotNil(t, p.World)
	assert.Empty(t, p.Arrivals, "the world replaces the arrivals")
	assert.Len(t, p.IDs, 100)
	assert.Equal(t, p.World.IDs(), p.IDs)
	assert.Len(t, p.Behaviors, 100)
	hung := 0
	for _, in := range p.World.Instances {
		b := p.Behaviors[in.ID]
		assert.Equal(t, in.Heartbeat-in.Launched, b.ReadyAfter, "%s: ready at its heartbeat, for the naive model", in.ID)
		if b.InstallDuration == time.Minute {
			hung++
		}
	}
	assert.Equal(t, 1, hung)
	again, err := sc.Plan(Scale(30), 7, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, p, again, "a seed gives the same plan")
	assert.Contains(t, sc.describe(30), "launch world: 100 instances")
}

func TestRunNaive(t *testing.T) {
	sc := DefaultScenario().WithInstances(40)
	sc.FailOnce = 0.2
	p, err := sc.Plan(Scale(30), 3, time.Minute)
	require.NoError(t, err)
	n, err := RunNaive(context.Background(), p, Scale(30), 2, 3)
	require.NoError(t, err)
	assert.Equal(t, 40, n.Installed, "every instance installs in the end")
	assert.Equal(t, n.InstallCalls+n.DescribeCalls, n.HBRCalls)
	// Each instance is announced about three times, and each announcement
	// installs and polls on its own: far more calls than one per instance.
	assert.Greater(t, n.InstallCalls, 3*40)
	assert.Greater(t, n.DescribeCalls, 3*40*12, "installs of 1–3 min polled every 5 s, per announcement")
	t.Logf("naive run: %+v; model: %+v", n, naiveCost(p.Behaviors, Scale(30), 2))
	assert.Equal(t, NaiveModel, n.Model)
	again, err := RunNaive(context.Background(), p, Scale(30), 2, 3)
	require.NoError(t, err)
	assert.Equal(t, n, again, "the virtual clock makes the run repeatable")

	_, err = RunNaive(context.Background(), Plan{}, Scale(30), 2, 3)
	assert.Error(t, err)
}
