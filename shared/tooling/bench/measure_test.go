package bench

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
)

func TestCPUMeter(t *testing.T) {
	busy, total, ok := machineTicks()
	require.True(t, ok, "/proc/stat is readable")
	assert.Positive(t, total)
	assert.LessOrEqual(t, busy, total)
	ticks, ok := processTicks(os.Getpid())
	require.True(t, ok)
	assert.GreaterOrEqual(t, ticks, uint64(0))
	_, ok = processTicks(-1)
	assert.False(t, ok)

	m := newCPUMeter(10 * time.Millisecond)
	deadline := time.Now().Add(30 * time.Millisecond)
	for time.Now().Before(deadline) { // some CPU of our own to see
	}
	m.sample(nil)
	m.sample(nil)
	c := m.result()
	assert.Equal(t, 0.01, c.SampleSeconds)
	assert.GreaterOrEqual(t, c.OwnMax, c.OwnMean)
	assert.LessOrEqual(t, c.BusyMean, 1.0)
	assert.Contains(t, c.Seconds, "harness")
}

func TestSpread(t *testing.T) {
	mean, p90, top, hot := spread([]float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.95, 1})
	assert.Equal(t, 0.555, mean)
	assert.Equal(t, 1.0, p90)
	assert.Equal(t, 1.0, top)
	assert.Equal(t, 0.2, hot)
	mean, p90, top, hot = spread(nil)
	assert.Zero(t, mean+p90+top+hot)
}

func TestSizes(t *testing.T) {
	cfg := Config{Scenario: DefaultScenario()}
	assert.Equal(t, []int{1000}, cfg.Sizes())
	cfg.Scenario = DefaultScenario().WithInstances(10000)
	assert.Equal(t, []int{1000, 10000}, cfg.Sizes())
	cfg.Scenario = QuickScenario()
	assert.Equal(t, []int{200}, cfg.Sizes())
}

func TestScalingGoals(t *testing.T) {
	base := ScalingRow{Instances: 1000, P99RealS: 250, HBRCallsPerInstance: 0.7, OutcomeRecordsPerInstance: 1, DescribeTaskRatioVsMinimum: 1}
	assert.Nil(t, scalingGoals([]ScalingRow{base}), "one size: nothing to compare")

	good := ScalingRow{Instances: 10000, P99RealS: 270, HBRCallsPerInstance: 0.5, OutcomeRecordsPerInstance: 1, DescribeTaskRatioVsMinimum: 0.95}
	goals := scalingGoals([]ScalingRow{base, good})
	require.Len(t, goals, 7)
	for _, g := range goals {
		assert.True(t, g.Met, "%s = %g", g.Name, g.Value)
		assert.True(t, strings.HasSuffix(g.Name, "_10000"), g.Name)
	}
	assert.Equal(t, 1.08, goals[0].Value, "p99 growth")

	bad := ScalingRow{Instances: 10000, P99RealS: 320, HBRCallsPerInstance: 1.2, OutcomeRecordsPerInstance: 1.01,
		Conflicting: 1, Lost: 1, DescribeTaskRatioVsMinimum: 0.8}
	for _, g := range scalingGoals([]ScalingRow{base, bad}) {
		assert.False(t, g.Met, "%s = %g must be missed", g.Name, g.Value)
	}
	assert.Equal(t, Goal{Name: "x", Value: 0.95, Low: 0.9, Limit: 1.1, Met: true}, between("x", 0.95, 0.9, 1.1, "", ""))
}

func TestScaledEnv(t *testing.T) {
	rt, err := RealTiming()
	require.NoError(t, err)
	env := scaledEnv(Scale(10), rt)
	// 10 min + 15 min + 2 min + 5 min of slack, at 1:10.
	assert.Equal(t, "3m12s", env["LEDGER_LEASE"])
	assert.Equal(t, "6000", env["RECONCILE_RATE"], "600 a minute, 10 times faster")
	assert.Equal(t, "1m0s", scaledEnv(Scale(1000), rt)["LEDGER_LEASE"], "the product's minimum")
	r := Scale(10).Retry()
	assert.Equal(t, 3, r.Retries)
	assert.Equal(t, time.Second, r.MinDelay)
	assert.Equal(t, 2*time.Second, r.MaxDelay)
}

func TestClipLines(t *testing.T) {
	assert.Equal(t, "a\nb\n…", clipLines("a\nb\nc\nd", 2))
	assert.Equal(t, "a", clipLines("a", 2))
}

func TestBreakdownAndPollLag(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s := Scale(10)
	w := &localcloud.World{Instances: []localcloud.LaunchedInstance{
		{ID: "i-a", Launched: 0, Running: 2 * time.Second, Heartbeat: 5 * time.Second},
	}}
	obs := observation{
		start: t0,
		plan:  Plan{World: w, Behaviors: map[string]hbrsim.Behavior{"i-a": {InstallDuration: 10 * time.Second}}},
		tasks: []hbrsim.TaskInfo{{ID: "t-1", Created: t0.Add(8 * time.Second), Completed: t0.Add(20 * time.Second)}},
		records: []localcloud.Record{
			{InstanceID: "i-a", Outcome: "INSTALLED", TaskID: "t-1", At: t0.Add(23 * time.Second)},
			{InstanceID: "i-a", Outcome: "INSTALLED", TaskID: "t-1", At: t0.Add(24 * time.Second)}, // a repeat: counted once
		},
		calls: []hbrCall{
			{at: t0.Add(15 * time.Second), action: "DescribeTask", taskID: "t-1"},
			{at: t0.Add(19 * time.Second), action: "DescribeTask", taskID: "t-1"},
			{at: t0.Add(23 * time.Second), action: "DescribeTask", taskID: "t-1"},
			{at: t0.Add(9 * time.Second), action: "InstallBackupClients", taskID: "t-1"},
		},
	}
	b := breakdown(obs, s)
	require.NotNil(t, b)
	assert.Equal(t, 1, b.ToHeartbeat.N)
	assert.Equal(t, 30.0, b.ToHeartbeat.P50, "3 s local, real")
	assert.Equal(t, 30.0, b.ToInstall.P50)
	assert.Equal(t, 120.0, b.Task.P50)
	assert.Equal(t, 100.0, b.OwnInstall.P50)
	assert.Equal(t, 20.0, b.WaitForOthers.P50)
	assert.Equal(t, 30.0, b.ToRecord.P50)
	assert.Equal(t, Phases{N: 1, ToHeartbeat: 30, ToInstall: 30, Task: 120, OwnInstall: 100, WaitForOthers: 20, ToRecord: 30}, b.Slowest)
	assert.Nil(t, breakdown(observation{}, s), "not a launch world")

	// First poll due at 8 + 6 = 14 s (1 s late), the next at 15 + 3 = 18 s
	// (1 s late), the last at 19 + 3 = 22 s (1 s late): 10 s real each.
	lag := pollLag(obs, localcloud.Timing{FirstPoll: 6 * time.Second, Interval: 3 * time.Second}, s)
	assert.Equal(t, Percentiles{N: 3, P50: 10, P90: 10, P99: 10, Max: 10}, lag)
}

func TestPrintTables(t *testing.T) {
	d := Doc{Scale: 5, APILatencyMs: 100, MaxInstances: 64, StreamConcurrency: 64,
		Goals: []Goal{
			goal("a", 2, 1, "", "over"),
			between("b", 0.95, 0.9, 1.1, "×", "within"),
		},
		Scaling:      []ScalingRow{{Instances: 1000, P50RealS: 260, P99RealS: 320}, {Instances: 10000, P50RealS: 262, P99RealS: 321}},
		Bursts:       []Burst{{Name: "default", CallsByFunction: map[string]map[string]int{"poller": {"hbr.DescribeTask": 3}}}},
		HandlerError: "go test failed",
	}
	var sb strings.Builder
	d.PrintTable(&sb)
	out := sb.String()
	assert.Contains(t, out, "missed")
	assert.Contains(t, out, "0.9–1.1")
	assert.Contains(t, out, "Scaling (the launch world at each size, same scale 1:5")
	assert.Contains(t, out, "260 / 320")
	assert.Contains(t, out, "not measured: go test failed")
	assert.Contains(t, out, "calls by function, default: poller map[hbr.DescribeTask:3];")
	assert.Contains(t, out, "API latency 100 ms real (20 ms local)")

	sb.Reset()
	Chaos{Restarts: RestartReport{Instances: 2, Superseded: 1, Problems: []string{"i-x: never restarted"}},
		ForeignClients: map[string]map[string]int{"STOPPED": {"SKIPPED": 2}},
		Sweeps:         []Sweep{{AtSeconds: 90, Stuck: 3, Queued: 40}}}.PrintTable(&sb)
	out = sb.String()
	assert.Contains(t, out, "superseded / instances (must be all)     1 / 2")
	assert.Contains(t, out, "restart problem: i-x: never restarted")
	assert.Contains(t, out, "another installer's STOPPED client: ended as")
	assert.Contains(t, out, "FAIL")
}
