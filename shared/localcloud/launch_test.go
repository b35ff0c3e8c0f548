package localcloud

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecsevent"
)

func TestNewWorldShapesLaunches(t *testing.T) {
	t.Parallel()
	w, err := NewWorld(LaunchOptions{Instances: 300, Seed: 4, Speedup: 1, DuplicateRate: 0.1})
	require.NoError(t, err)
	require.Len(t, w.Instances, 300)
	types := map[string]int{}
	perInstance := map[string]int{}
	singles, batches, dups := 0, 0, 0
	for i, e := range w.Events {
		if i > 0 {
			assert.GreaterOrEqual(t, e.At, w.Events[i-1].At, "sorted by time")
		}
		types[e.Type]++
		if e.Duplicate {
			dups++
			continue
		}
		for _, id := range e.IDs {
			perInstance[id]++
		}
		if e.Type != TypeStateChange && e.Type != TypeHeartbeat {
			assert.LessOrEqual(t, len(e.IDs), 100)
			if len(e.IDs) == 1 {
				singles++
			} else {
				batches++
			}
		}
	}
	for _, in := range w.Instances {
		assert.Equal(t, 3, perInstance[in.ID], "%s: RunInstances, Running and FirstHeartbeat", in.ID)
		run, hb := in.Running-in.Launched, in.Heartbeat-in.Running
		assert.True(t, run >= 20*time.Second && run <= 90*time.Second, "running %s after launch", run)
		assert.True(t, hb >= 10*time.Second && hb <= 60*time.Second, "heartbeat %s after running", hb)
	}
	assert.Positive(t, singles)
	assert.Positive(t, batches)
	assert.Positive(t, dups)
	for _, typ := range []string{TypeApiCall, TypeConsole, TypeServiceEvent, TypeStateChange, TypeHeartbeat} {
		assert.Positive(t, types[typ], typ)
	}

	again, err := NewWorld(LaunchOptions{Instances: 300, Seed: 4, Speedup: 1, DuplicateRate: 0.1})
	require.NoError(t, err)
	assert.Equal(t, w, again, "repeatable for a seed")
	_, err = NewWorld(LaunchOptions{})
	assert.Error(t, err)
}

func TestWorldPayloadsParseWithTheRunsClock(t *testing.T) {
	t.Parallel()
	w, err := NewWorld(LaunchOptions{Instances: 5, Seed: 2, SingleShare: 0.01})
	require.NoError(t, err)
	start := time.Now().Truncate(time.Second)
	for _, e := range w.Events {
		p := w.Payload(e, start)
		var ev struct {
			Type string `json:"type"`
			Time string `json:"time"`
			Data struct {
				Resp struct {
					Sets struct {
						IDs []string `json:"InstanceIdSet"`
					} `json:"InstanceIdSets"`
				} `json:"responseElements"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(p, &ev))
		assert.Equal(t, start.Add(e.At).Truncate(time.Second).Unix(), ecsevent.ParseTime(ev.Time).Unix(), "time follows the run's clock")
		if e.Type == TypeApiCall || e.Type == TypeStateChange || e.Type == TypeHeartbeat {
			b, err := ecsevent.Parse(p, "cn-hangzhou")
			require.NoError(t, err)
			var got []string
			for _, c := range b.Candidates {
				got = append(got, c.InstanceID)
			}
			assert.ElementsMatch(t, e.IDs, got, "%s announces its instances", e.Type)
		} else {
			assert.Equal(t, e.IDs, ev.Data.Resp.Sets.IDs)
		}
	}
}

func TestInstallRulesFromSYAML(t *testing.T) {
	t.Parallel()
	root, err := ModuleRoot(".")
	require.NoError(t, err)
	rules, err := InstallRules(root)
	require.NoError(t, err)
	require.NotEmpty(t, rules)
	match := func(p []byte) bool {
		for _, r := range rules {
			if r.Match(p) {
				return true
			}
		}
		return false
	}
	w, err := NewWorld(LaunchOptions{Instances: 1, Seed: 1})
	require.NoError(t, err)
	for _, e := range w.Events {
		if e.Type == TypeStateChange || e.Type == TypeHeartbeat || e.Type == TypeApiCall {
			assert.True(t, match(w.Payload(e, time.Now())), "s.yaml's rules accept %s", e.Type)
		}
	}
	assert.True(t, match(runInstancesEvent("ev", []string{"i-1"})))
	assert.False(t, match([]byte(`{"source":"acs.oss","type":"oss:ObjectCreated"}`)))

	_, err = ParseInstallRules([]byte("resources:\n  poller: {}\n"))
	assert.Error(t, err, "no install function")
	_, err = ParseInstallRules([]byte("resources:\n  install:\n    props:\n      triggers:\n        - triggerType: eventbridge\n          triggerConfig:\n            eventRuleFilterPattern: '{\"type\":[{\"numeric\":[1]}]}'\n"))
	assert.Error(t, err, "an operator the emulator cannot judge")
}

func TestJudgeCountsConflictsAndRepeats(t *testing.T) {
	t.Parallel()
	rec := func(job, outcome, code, supersedes string) Record {
		return Record{JobID: job, InstanceID: "i-1", Outcome: outcome, Code: code, Supersedes: supersedes}
	}
	tests := []struct {
		name               string
		recs               []Record
		conflicts, repeats int
	}{
		{"one record", []Record{rec("a", "INSTALLED", "", "")}, 0, 0},
		{"identical repeat", []Record{rec("a", "INSTALLED", "", ""), rec("b", "INSTALLED", "", "")}, 0, 1},
		{"disagreement", []Record{rec("a", "FAILED", "X", ""), rec("b", "INSTALLED", "", "")}, 1, 0},
		{"correction", []Record{rec("a", "FAILED", "X", ""), rec("b", "INSTALLED", "", "a/FAILED")}, 0, 0},
		{"correction repeated without the field", []Record{rec("a", "FAILED", "X", ""), rec("b", "INSTALLED", "", "a/FAILED"), rec("b", "INSTALLED", "", "")}, 0, 1},
		{"correction names another record", []Record{rec("a", "FAILED", "X", ""), rec("b", "INSTALLED", "", "c/FAILED")}, 1, 0},
		{"three ways", []Record{rec("a", "FAILED", "X", ""), rec("b", "INSTALLED", "", ""), rec("c", "NOT_READY", "Y", "")}, 3, 0},
		// A restart (generation 2), then a sweep (generation 3): each names
		// the one before, and the third settles the first too.
		{"third generation", []Record{rec("a", "FAILED", "X", ""), rec("b", "FAILED", "X", "a/FAILED"), rec("c", "CANCELLED", "Z", "b/FAILED")}, 0, 1},
		{"takeover then correction", []Record{rec("a", "TIMEOUT", "T", ""), rec("b", "FAILED", "X", "a"), rec("c", "INSTALLED", "", "b/FAILED")}, 0, 0},
		{"a chain in any order", []Record{rec("c", "INSTALLED", "", "b/FAILED"), rec("b", "FAILED", "X", "a/FAILED"), rec("a", "FAILED", "Y", "")}, 0, 0},
		{"a chain does not settle an outsider", []Record{rec("a", "FAILED", "X", ""), rec("b", "FAILED", "Y", "a/FAILED"), rec("c", "INSTALLED", "", "b/FAILED"), rec("d", "NOT_READY", "N", "")}, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, r := judge(tt.recs)
			assert.Equal(t, tt.conflicts, c, "conflicts")
			assert.Equal(t, tt.repeats, r, "repeats")
		})
	}
}

// launchWorld is the e2e tests' world: a few launches, every instance
// announced two or three times, some events delivered twice.
func launchWorld(t *testing.T) World {
	t.Helper()
	w, err := NewWorld(LaunchOptions{Instances: 12, Seed: 8, Speedup: 30, SingleShare: 0.4, MaxBatch: 6, Span: time.Minute, DuplicateRate: 0.2})
	require.NoError(t, err)
	return w
}

func TestE2ELaunchWorld(t *testing.T) {
	t.Parallel()
	w := launchWorld(t)
	r := run(t, Options{Seed: 8}, 90*time.Second, func(c *Cloud) { c.Launch(context.Background(), w, false) })
	assert.Equal(t, len(w.Instances), r.ByOutcome["INSTALLED"], "by outcome: %v", r.ByOutcome)
	assert.GreaterOrEqual(t, r.EventsPerInstance, 2.0, "every instance is announced several times")
	assert.Equal(t, len(w.Instances), r.Instances)
	assert.Empty(t, r.DeadLetters)
	assert.Positive(t, r.RunningToOutcomeRealP99)
}

// TestE2ELaunchWorldInstallsOnce runs every function with several
// invocations at once (4 processes each, 4 batches in flight per stream) on
// the launch world: the ledger, not a lock, gives one install slot and one
// outcome record per instance, no conflict, nothing without a record,
// whether the events arrive a minute apart or all at once. The install
// function makes every install call; the poller none.
func TestE2ELaunchWorldInstallsOnce(t *testing.T) {
	t.Parallel()
	for _, allAtOnce := range []bool{false, true} {
		w := launchWorld(t)
		var cloud *Cloud
		r := run(t, Options{Seed: 8, MaxInstances: 4, StreamConcurrency: 4}, 90*time.Second,
			func(c *Cloud) { cloud = c; c.Launch(context.Background(), w, allAtOnce) })
		assertAll(t, r, "INSTALLED", len(w.Instances))
		assert.Len(t, r.Records, len(w.Instances), "one outcome record per instance")
		assert.Zero(t, r.WithoutRecord)
		for _, id := range w.IDs() {
			assert.Equal(t, 1, cloud.HBR.Installs(id), "%s is in exactly one install task", id)
		}
		assert.Equal(t, r.Calls["hbr.InstallBackupClients"], r.CallsByFunction["install"]["hbr.InstallBackupClients"],
			"the install function makes every install call")
		assert.Zero(t, r.CallsByFunction["poller"]["hbr.InstallBackupClients"], "the poller never installs")
		assert.Positive(t, r.CallsByFunction["poller"]["hbr.DescribeTask"], "the poller watches the tasks")
		assert.Empty(t, r.Unmatched, "s.yaml's rules accept every launch path")
	}
}

func TestE2ELaunchWorldStatesInECSAndHBR(t *testing.T) {
	t.Parallel()
	w, err := NewWorld(LaunchOptions{Instances: 3, Seed: 5, Speedup: 30, SingleShare: 0.01, Span: time.Second})
	require.NoError(t, err)
	var cloud *Cloud
	run(t, Options{Seed: 5}, 60*time.Second, func(c *Cloud) {
		cloud = c
		before := time.Now()
		c.Launch(context.Background(), w, false)
		for _, in := range w.Instances {
			got, ok := c.ECS.Instance(in.ID)
			require.True(t, ok, "ECS holds %s from its launch", in.ID)
			assert.Equal(t, "Starting", got.Status, "before its Running event")
			assert.WithinDuration(t, before.Add(in.Heartbeat), got.AssistantReadyAt, time.Second, "ready from the heartbeat")
		}
	})
	for _, in := range w.Instances {
		got, _ := cloud.ECS.Instance(in.ID)
		assert.Equal(t, "Running", got.Status, "after its Running event")
		st, _ := cloud.HBR.Client(in.ID)
		assert.Equal(t, "ACTIVATED", st)
	}
}

// With a backup policy configured, the launch world ends every instance
// PROTECTED, still with one record each, and binding costs a few calls per
// batch of instances, never one per instance (issue 11).
func TestE2ELaunchWorldProtects(t *testing.T) {
	t.Parallel()
	w := launchWorld(t)
	const policy = "po-0000e2e000000001"
	var cloud *Cloud
	r := run(t, Options{Seed: 8, Env: map[string]string{"BACKUP_POLICY_ID": policy}}, 90*time.Second,
		func(c *Cloud) { cloud = c; c.Launch(context.Background(), w, false) })
	assertAll(t, r, "PROTECTED", len(w.Instances))
	assert.Len(t, r.Records, len(w.Instances), "one outcome record per instance")
	bound := cloud.HBR.Bindings()
	for _, id := range w.IDs() {
		assert.Equal(t, policy, bound[id], "%s is bound", id)
	}
	binds := r.Calls["hbr.CreatePolicyBindings"] + r.Calls["hbr.DescribePolicyBindings"]
	assert.Positive(t, binds)
	assert.Less(t, binds, len(w.Instances), "bindings are batched")
}
