package bench

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
)

// binaries are the functions and the minimal binary, built once.
var binaries map[string]string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "bench-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		root, err := localcloud.ModuleRoot(".")
		if err == nil {
			binaries, err = Build(context.Background(), root, dir)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "build:", err)
			return 1
		}
		return m.Run()
	}())
}

// smallScenario is a burst of 20 that runs in seconds at 1:30.
func smallScenario() Scenario {
	sc := DefaultScenario().WithInstances(20)
	sc.Arrival = 30 * time.Second
	sc.ReadyMin, sc.ReadyMax = 30*time.Second, time.Minute
	sc.TaskMin, sc.TaskMax = time.Minute, 2*time.Minute
	return sc
}

// realTiming is the product's timing; with short, the task timeout is cut so
// that hung installs reach their deadline within a test.
func realTiming(t *testing.T, short bool) localcloud.Timing {
	rt, err := RealTiming()
	require.NoError(t, err)
	if short {
		rt.TaskTimeout, rt.Margin = 150*time.Second, 30*time.Second
	}
	return rt
}

func TestRunBurstSmall(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := RunBurst(ctx, BurstConfig{
		Name: "small", Binaries: binaries, Scenario: smallScenario(), Scale: 30, Real: realTiming(t, false),
		Coalesce: 30 * time.Second, Batch: 5, BatchWindow: 2 * time.Second, MaxInstances: 2, Seed: 3, Timeout: 50 * time.Second,
		APILatency: 60 * time.Millisecond,
	})
	require.NoError(t, err)
	assert.True(t, b.Settled)
	assert.Equal(t, 20, b.Instances)
	assert.Equal(t, 20, b.Installed, "no faults: every instance installs; by outcome: %v", b.ByOutcome)
	assert.Equal(t, 1.0, b.CoalesceLocalSeconds)
	assert.Positive(t, b.Tasks)
	assert.GreaterOrEqual(t, b.DescribeTaskCalls, b.Tasks, "every task is polled")
	assert.Positive(t, b.DescribeTaskMinimum)
	assert.GreaterOrEqual(t, b.OutcomeLatency.N, 20, "a latency for every installed instance (and job)")
	assert.GreaterOrEqual(t, b.EventsPerInstance, 2.0)
	assert.Positive(t, b.InstallSlotsPerInstance)
	assert.GreaterOrEqual(t, b.OutcomeRecordsPerInstance, 1.0)
	assert.Positive(t, b.RunningToOutcomeRealP99)
	assert.Equal(t, 3.0, b.LatencyGoalSeconds)
	assert.Positive(t, b.PeakRSSMB["install"])
	assert.Positive(t, b.PeakRSSMB["poller"])
	assert.Equal(t, b.HBRCalls, b.Calls["hbr.InstallBackupClients"]+b.Calls["hbr.DescribeTask"]+b.Calls["hbr.DescribeBackupClients"])
	assert.Equal(t, 60.0, b.APILatencyMs, "real-cloud milliseconds")
	assert.Equal(t, 2, b.StreamConcurrency, "as many as the processes by default")
	assert.Positive(t, b.CallsByFunction["install"]["hbr.InstallBackupClients"], "calls by function: %v", b.CallsByFunction)
	assert.Positive(t, b.CallsByFunction["poller"]["hbr.DescribeTask"])
	assert.Equal(t, b.Calls["hbr.DescribeTask"], b.CallsByFunction["poller"]["hbr.DescribeTask"], "only the poller polls")
	assert.Zero(t, b.WithoutRecord)
	assert.LessOrEqual(t, b.Processes["install"], 2)
	assert.Positive(t, b.Processes["poller"])
	assert.Positive(t, b.CPU.Seconds["install"], "CPU: %+v", b.CPU)
	assert.Positive(t, b.CPU.Seconds["harness"])
	assert.InDelta(t, b.RunningToOutcomeRealP99, b.RunningToOutcomeReal.P99, 0.1, "the local cloud rounds to 0.1 s")
	require.NotNil(t, b.Breakdown)
	assert.Equal(t, b.Installed, b.Breakdown.Task.N)
	assert.GreaterOrEqual(t, b.Breakdown.Task.P50, b.Breakdown.OwnInstall.P50, "a task ends with its slowest instance")
	assert.Positive(t, b.PollLag.N)
	row := scalingRow(b)
	assert.Equal(t, 20, row.Instances)
	assert.Equal(t, b.HBRCallsPerInstance, row.HBRCallsPerInstance)
}

func TestRunChaosSmall(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := DefaultFaults()
	f.StormEverySeconds = 4
	f.InstallCrash = 0.3 // a few install calls in all: make the kill happen
	f.ForeignClients, f.Restarts, f.RestartAfterSeconds = 0.05, 0.05, 60
	f.OutageSeconds = 1
	c, err := RunChaos(ctx, ChaosConfig{
		Binaries: binaries, Scenario: ChaosScenario(smallScenario()), Scale: 30, Real: realTiming(t, true),
		Batch: 5, BatchWindow: 2 * time.Second, MaxInstances: 2, Seed: 5, Timeout: 110 * time.Second, Faults: f,
		APILatency: 30 * time.Millisecond,
	})
	require.NoError(t, err)
	// The harness is under test here, not the system: the verdict is logged
	// (make chaos reports it), the figures must add up.
	t.Logf("verdict: pass=%v lost=%d duplicated=%d without record=%d forked=%d past deadline=%v restarts=%+v sweeps=%+v; %v",
		c.Pass, c.Lost, c.DuplicatedOutcomes, c.WithoutRecord, c.ForkedOutcomes, c.PastDeadline, c.Restarts, c.Sweeps, c.ConflictSamples)
	assert.True(t, c.Settled)
	assert.GreaterOrEqual(t, c.Accepted, 20, "in the launch world several jobs may accept an instance")
	assert.Equal(t, 20, c.Instances)
	assert.GreaterOrEqual(t, c.EventsPerInstance, 2.0, "every instance is announced several times")
	assert.Positive(t, c.FaultsFired["bus_duplicates"]+c.FaultsFired["stream_duplicates"]+c.FaultsFired["mns_send_failures"]+c.FaultsFired["poller_crashes"])
	for _, status := range localcloud.ForeignStatuses {
		assert.Equal(t, 1, c.FaultsFired["foreign_client_"+status], "another installer's %s client", status)
		assert.Len(t, c.ForeignClients[status], 1, "%s: %v", status, c.ForeignClients[status])
	}
	assert.Equal(t, 1, c.FaultsFired["mns_outage"])
	assert.Equal(t, c.OutageFailedSends, c.FaultsFired["mns_outage_failed_sends"])
	assert.Positive(t, c.FaultsFired["install_crashes_after_install_call"])
	assert.Equal(t, 1, c.Restarts.Instances)
	assert.Equal(t, c.Restarts.Restarted, c.FaultsFired["restarts"])
	assert.Equal(t, len(c.Sweeps), c.FaultsFired["reconcile_sweeps"])
	total := 0
	for _, n := range c.Outcomes {
		total += n
	}
	assert.Equal(t, c.Instances, total, "one outcome per instance: %v", c.Outcomes)
	assert.Equal(t, c.Lost == 0 && c.DuplicatedOutcomes == 0 && c.WithoutRecord == 0 && !c.PastDeadline && c.Settled &&
		c.Restarts.Superseded == c.Restarts.Instances, c.Pass)
	assert.Equal(t, c.PastDeadlineCalls > 0, c.PastDeadline)
	assert.Positive(t, c.Calls["hbr.DescribeTask"])
	assert.Equal(t, c.Calls["hbr.DescribeTask"], c.CallsByFunction["poller"]["hbr.DescribeTask"])
	assert.GreaterOrEqual(t, c.LongestChain, c.LongestTaskChain)
	assert.Positive(t, c.LongestTaskChain)
	assert.NotEmpty(t, c.LongestChainJob)
	assert.Equal(t, 30.0, c.APILatencyMs)
}

func TestMeasureColdStart(t *testing.T) {
	t.Parallel()
	root, err := localcloud.ModuleRoot(".")
	require.NoError(t, err)
	cs, err := MeasureColdStart(context.Background(), ColdConfig{Binaries: binaries, ModuleDir: root, Runs: 1})
	require.NoError(t, err)
	for _, name := range append([]string{Minimal}, localcloud.Functions...) {
		c := cs[name]
		assert.Equal(t, 1, c.Runs, name)
		assert.Positive(t, c.NextMs, name)
		assert.GreaterOrEqual(t, c.AnswerMs, c.NextMs, "%s answers after it polls", name)
	}
	assert.Equal(t, 1.0, cs[Minimal].NextRatio)
	sizes, err := Sizes(binaries)
	require.NoError(t, err)
	assert.Greater(t, sizes["install"], sizes[Minimal])
}
