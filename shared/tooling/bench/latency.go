package bench

import (
	"sort"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
)

// Breakdown splits the time from an instance's Running event to its
// INSTALLED (or, binding, PROTECTED) record into phases, in real-cloud seconds (local ones
// multiplied by the scale), over the instances installed by a task of
// their own job: where the latency goes.
type Breakdown struct {
	// ToHeartbeat runs from the Running event to Cloud Assistant's first
	// heartbeat (the launch world's: the instance is not ready before).
	ToHeartbeat Percentiles `json:"running_to_heartbeat"`
	// ToInstall runs from the heartbeat to the InstallBackupClients call
	// whose task installed the instance (the readiness grid and the
	// install queue's batching).
	ToInstall Percentiles `json:"heartbeat_to_install_call"`
	// Task is that task's length: it ends with its slowest instance.
	// OwnInstall is the instance's own install time, and WaitForOthers
	// the task's length minus it (what sharing a call costs).
	Task          Percentiles `json:"task"`
	OwnInstall    Percentiles `json:"own_install"`
	WaitForOthers Percentiles `json:"wait_for_slowest_in_task"`
	// ToRecord runs from the task's end to the record: the poll schedule
	// (first poll after FIRST_POLL_DELAY, then every POLL_INTERVAL) and
	// the job queue's batching.
	ToRecord Percentiles `json:"task_end_to_record"`
	// Slowest averages each phase over the slowest 1 % of the instances
	// (Running → record at or above its 99th percentile): what the p99 is
	// made of.
	Slowest Phases `json:"slowest_1_percent"`
}

// Phases are mean phase lengths, real-cloud seconds (see Breakdown).
type Phases struct {
	N             int     `json:"n"`
	ToHeartbeat   float64 `json:"running_to_heartbeat"`
	ToInstall     float64 `json:"heartbeat_to_install_call"`
	Task          float64 `json:"task"`
	OwnInstall    float64 `json:"own_install"`
	WaitForOthers float64 `json:"wait_for_slowest_in_task"`
	ToRecord      float64 `json:"task_end_to_record"`
}

// breakdown measures b for a launch world run. start is the world's start.
func breakdown(obs observation, s Scale) *Breakdown {
	w := obs.plan.World
	if w == nil || obs.start.IsZero() {
		return nil
	}
	tasks := map[string]taskSpan{}
	for _, t := range obs.tasks {
		if !t.Completed.IsZero() {
			tasks[t.ID] = taskSpan{created: t.Created, completed: t.Completed}
		}
	}
	byID := map[string]localcloud.LaunchedInstance{}
	for _, in := range w.Instances {
		byID[in.ID] = in
	}
	var toHB, toInstall, task, own, wait, toRecord, total []time.Duration
	seen := map[string]bool{}
	for _, rec := range obs.records {
		in, ok := byID[rec.InstanceID]
		t, done := tasks[rec.TaskID]
		if seen[rec.InstanceID] || !ok || !done || (rec.Outcome != "INSTALLED" && rec.Outcome != "PROTECTED") {
			continue
		}
		seen[rec.InstanceID] = true
		heartbeat := obs.start.Add(in.Heartbeat)
		length := t.completed.Sub(t.created)
		mine := obs.plan.Behaviors[rec.InstanceID].InstallDuration
		toHB = append(toHB, s.Real(in.Heartbeat-in.Running))
		toInstall = append(toInstall, s.Real(max(t.created.Sub(heartbeat), 0)))
		task = append(task, s.Real(length))
		own = append(own, s.Real(mine))
		wait = append(wait, s.Real(max(length-mine, 0)))
		toRecord = append(toRecord, s.Real(max(rec.At.Sub(t.completed), 0)))
		total = append(total, s.Real(rec.At.Sub(obs.start.Add(in.Running))))
	}
	if len(seen) == 0 {
		return nil
	}
	b := &Breakdown{ToHeartbeat: percentiles(toHB), ToInstall: percentiles(toInstall), Task: percentiles(task),
		OwnInstall: percentiles(own), WaitForOthers: percentiles(wait), ToRecord: percentiles(toRecord)}
	p99 := time.Duration(percentiles(total).P99 * float64(time.Second))
	var sum [6]time.Duration
	for i, d := range total {
		if d >= p99-time.Millisecond {
			b.Slowest.N++
			for k, phase := range [][]time.Duration{toHB, toInstall, task, own, wait, toRecord} {
				sum[k] += phase[i]
			}
		}
	}
	if n := b.Slowest.N; n > 0 {
		mean := func(d time.Duration) float64 { return round(d.Seconds()/float64(n), 1) }
		b.Slowest.ToHeartbeat, b.Slowest.ToInstall, b.Slowest.Task = mean(sum[0]), mean(sum[1]), mean(sum[2])
		b.Slowest.OwnInstall, b.Slowest.WaitForOthers, b.Slowest.ToRecord = mean(sum[3]), mean(sum[4]), mean(sum[5])
	}
	return b
}

type taskSpan struct{ created, completed time.Time }

// pollLag measures how late each DescribeTask call came against the
// schedule, in real-cloud seconds: the first call of a task against its
// creation + FIRST_POLL_DELAY, each next against the call before it +
// POLL_INTERVAL. Late polls make fewer calls than the schedule's minimum
// and later outcomes.
func pollLag(obs observation, t localcloud.Timing, s Scale) Percentiles {
	created := map[string]time.Time{}
	for _, task := range obs.tasks {
		created[task.ID] = task.Created
	}
	calls := map[string][]time.Time{}
	for _, c := range obs.calls {
		if c.action == "DescribeTask" {
			calls[c.taskID] = append(calls[c.taskID], c.at)
		}
	}
	var lags []time.Duration
	for id, at := range calls {
		start, ok := created[id]
		if !ok {
			continue
		}
		sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
		due := start.Add(t.FirstPoll)
		for _, a := range at {
			lags = append(lags, s.Real(max(a.Sub(due), 0)))
			due = a.Add(t.Interval)
		}
	}
	return percentiles(lags)
}
