package bench

import (
	"context"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
)

// BurstConfig configures one burst run for the benchmark.
type BurstConfig struct {
	// Name labels the run ("default", "coalesce").
	Name     string
	Binaries map[string]string
	Scenario Scenario
	Scale    Scale
	// Real is the functions' real-cloud timing (RealTiming()).
	Real localcloud.Timing
	// Coalesce is INSTALL_COALESCE_DELAY in real-cloud terms (0: off).
	Coalesce time.Duration
	// Policy, when set, is BACKUP_POLICY_ID: the policy exists in the HBR
	// emulator and every activated instance is bound to it.
	Policy string
	// Batch and BatchWindow are the poller trigger's CountBasedWindow and
	// TimeBasedWindow (real-cloud; scaled like every delay, without
	// rounding); MaxInstances bounds each function's processes and
	// StreamConcurrency each event stream's batches in flight (0: as many
	// as MaxInstances).
	Batch, MaxInstances, StreamConcurrency int
	BatchWindow                            time.Duration
	// APILatency is every emulated API call's round trip, real-cloud
	// (scaled like every delay, without rounding).
	APILatency time.Duration
	Seed       int64
	// Timeout bounds the run (wall clock).
	Timeout time.Duration
	// instances, when set, is a scaling run's size (Run).
	instances int
}

// Burst is what one burst run measured. Durations are seconds of the local
// (scaled) run unless the name says real.
type Burst struct {
	Name string `json:"name"`
	// CoalesceSeconds is INSTALL_COALESCE_DELAY, real-cloud and local.
	CoalesceSeconds      float64 `json:"coalesce_seconds"`
	CoalesceLocalSeconds float64 `json:"coalesce_local_seconds"`
	Batch                int     `json:"batch"`
	BatchWindowSeconds   float64 `json:"batch_window_seconds"`
	MaxInstances         int     `json:"max_instances"`
	StreamConcurrency    int     `json:"stream_concurrency"`
	// APILatencyMs is every emulated API call's round trip, real-cloud
	// milliseconds (the run used it divided by the scale).
	APILatencyMs float64 `json:"api_latency_ms"`

	Accepted  int            `json:"accepted"`
	Instances int            `json:"instances"`
	Installed int            `json:"installed"`
	ByOutcome map[string]int `json:"by_outcome"`
	Lost      int            `json:"lost"`
	Settled   bool           `json:"settled"`
	Seconds   float64        `json:"seconds"`

	Calls map[string]int `json:"calls"`
	// CallsByFunction splits Calls by the function that made them.
	CallsByFunction     map[string]map[string]int `json:"calls_by_function"`
	HBRCalls            int                       `json:"hbr_calls"`
	HBRCallsPerInstance float64                   `json:"hbr_calls_per_instance"`
	// HBRCallsRatioVsNaive compares HBRCallsPerInstance with the naive
	// model's for the same scenario.
	HBRCallsRatioVsNaive float64 `json:"hbr_calls_ratio_vs_naive"`
	InstallCalls         int     `json:"install_calls"`
	// BindCalls counts CreatePolicyBindings and DescribePolicyBindings;
	// BindCallsPerInstance divides them by the instances installed.
	BindCalls            int     `json:"bind_calls"`
	BindCallsPerInstance float64 `json:"bind_calls_per_instance"`
	InstancesPerTask     float64 `json:"instances_per_task"`
	Tasks                int     `json:"tasks"`
	DescribeTaskCalls    int     `json:"describe_task_calls"`
	// DescribeTaskMinimum sums, over tasks, 1 + ceil((d − first delay) /
	// interval) (at least 1) for a task lasting d.
	DescribeTaskMinimum int     `json:"describe_task_minimum"`
	DescribeTaskRatio   float64 `json:"describe_task_ratio_vs_minimum"`
	MNSSends            int     `json:"mns_sends"`
	MNSSendsPerInstance float64 `json:"mns_sends_per_instance"`
	Invocations         int     `json:"fc_invocations"`
	InvocationsPer      float64 `json:"fc_invocations_per_instance"`

	// OutcomeLatency runs from the completion of the task that activated an
	// instance (emulator time) to its INSTALLED record (local seconds).
	OutcomeLatency Percentiles `json:"outcome_latency_seconds"`
	// LatencyGoalSeconds is the scaled poll interval + 2 s.
	LatencyGoalSeconds float64 `json:"outcome_latency_goal_seconds"`
	// EndToEnd runs from acceptance to the INSTALLED record; Real is the
	// same multiplied back by the scale (the delays dominate it).
	EndToEnd     Percentiles `json:"end_to_end_seconds"`
	EndToEndReal Percentiles `json:"end_to_end_real_seconds"`

	// The launch world's economy (issue 9): events published per distinct
	// instance, instance IDs sent to InstallBackupClients per instance
	// installed, outcome records per distinct instance.
	EventsPerInstance         float64 `json:"events_per_instance"`
	InstallSlotsPerInstance   float64 `json:"install_slots_per_instance"`
	OutcomeRecordsPerInstance float64 `json:"outcome_records_per_instance"`
	// RunningToOutcomeRealP99 is the p99 from an instance's first Running
	// event to its first outcome record, multiplied back by the scale;
	// RunningToOutcomeReal all the percentiles of it.
	RunningToOutcomeRealP99 float64     `json:"running_to_outcome_real_p99_seconds"`
	RunningToOutcomeReal    Percentiles `json:"running_to_outcome_real_seconds"`
	// Breakdown splits Running → outcome into its phases; PollLag says how
	// late DescribeTask calls came against the schedule (real seconds).
	Breakdown *Breakdown  `json:"running_to_outcome_breakdown,omitempty"`
	PollLag   Percentiles `json:"poll_lag_real_seconds"`
	// WithoutRecord counts accepted instances whose ledger holds no final
	// record for their latest generation at the end.
	WithoutRecord int `json:"without_record"`
	DeadLettered  int `json:"dead_lettered"`
	// Conflicts counts record pairs of one instance that disagree where
	// neither supersedes the other.
	Conflicts int `json:"duplicated_outcomes"`

	// PeakRSSMB is the largest VmHWM of each function's processes (MiB).
	PeakRSSMB map[string]float64 `json:"peak_rss_mb"`
	// Processes counts the processes each function started: a new one
	// starts only when every other is busy, so this is its peak
	// concurrency (at most MaxInstances).
	Processes map[string]int `json:"processes"`
	// CPU says how busy the machine was during the run.
	CPU    CPU `json:"cpu"`
	Errors int `json:"errors"`
}

// RunBurst pushes the scenario through the local cloud with the functions'
// timing scaled down, and measures it.
func RunBurst(ctx context.Context, cfg BurstConfig) (Burst, error) {
	rc, err := cfg.scaled()
	if err != nil {
		return Burst{}, err
	}
	b := Burst{Name: cfg.Name, Batch: cfg.Batch, BatchWindowSeconds: cfg.BatchWindow.Seconds(), MaxInstances: cfg.MaxInstances,
		StreamConcurrency: rc.streamConcurrency, APILatencyMs: ms(cfg.APILatency)}
	if b.StreamConcurrency == 0 {
		b.StreamConcurrency = cfg.MaxInstances
	}
	if cfg.Coalesce > 0 {
		b.CoalesceSeconds, b.CoalesceLocalSeconds = cfg.Coalesce.Seconds(), cfg.Scale.Delay(cfg.Coalesce).Seconds()
	}
	obs, err := run(ctx, rc)
	if err != nil {
		return Burst{}, err
	}
	b.fill(obs, rc.timing, cfg.Scale)
	return b, nil
}

// scaled plans the scenario and configures the run with the functions'
// timing and every real-cloud setting scaled down; faults are left out.
func (cfg BurstConfig) scaled() (runConfig, error) {
	local := cfg.Scale.Timing(cfg.Real)
	plan, err := cfg.Scenario.Plan(cfg.Scale, cfg.Seed, 3*(local.TaskTimeout+local.Margin))
	if err != nil {
		return runConfig{}, err
	}
	env := scaledEnv(cfg.Scale, cfg.Real)
	if cfg.Coalesce > 0 {
		env["INSTALL_COALESCE_DELAY"] = cfg.Scale.Delay(cfg.Coalesce).String()
	}
	if cfg.Policy != "" {
		env["BACKUP_POLICY_ID"] = cfg.Policy
	}
	return runConfig{
		binaries: cfg.Binaries, plan: plan, timing: local, env: env,
		batch: cfg.Batch, window: windowOf(cfg.Scale, cfg.BatchWindow), maxInstances: cfg.MaxInstances,
		streamConcurrency: cfg.StreamConcurrency, apiLatency: cfg.Scale.Span(cfg.APILatency), retry: cfg.Scale.Retry(),
		seed: cfg.Seed, timeout: cfg.Timeout,
	}, nil
}

// scaledEnv holds the functions' settings that are real-cloud durations or
// rates the local cloud does not scale itself: the ledger lease (its
// default adds an unscaled 5 min) and the reconcile sweep's rate.
func scaledEnv(s Scale, real localcloud.Timing) map[string]string {
	lease := real.ReadinessTimeout + real.TaskTimeout + real.Margin + config.LeaseSlack
	return map[string]string{
		"LEDGER_LEASE":   max(s.Delay(lease), time.Minute).String(),
		"RECONCILE_RATE": strconv.Itoa(int(math.Ceil(float64(reconcileRate()) * float64(s)))),
	}
}

// reconcileRate is RECONCILE_RATE's default (instances per minute), from
// package config.
func reconcileRate() int {
	n, err := strconv.Atoi(configDefault("RECONCILE_RATE"))
	if err != nil || n <= 0 {
		return 600
	}
	return n
}

func (b *Burst) fill(obs observation, t localcloud.Timing, s Scale) {
	r := obs.report
	b.Accepted, b.Instances, b.ByOutcome, b.Lost = r.Accepted, len(r.Outcomes), r.ByOutcome, r.Lost
	// An installed instance ends INSTALLED, or, with a backup policy, as
	// one of the binding outcomes (its client is ACTIVATED in all of them).
	b.Installed = r.ByOutcome["INSTALLED"] + r.ByOutcome["PROTECTED"] + r.ByOutcome["ALREADY_PROTECTED"] + r.ByOutcome["BIND_FAILED"]
	b.EventsPerInstance, b.InstallSlotsPerInstance = r.EventsPerInstance, r.InstallSlotsPerInstance
	b.OutcomeRecordsPerInstance, b.Conflicts = r.OutcomeRecordsPerInstance, r.DuplicatedOutcomes
	if r.RunningToOutcomeRealP99 > 0 {
		b.RunningToOutcomeRealP99 = r.RunningToOutcomeRealP99
	}
	b.Settled, b.Seconds, b.Calls, b.Errors = obs.settled, round(obs.elapsed.Seconds(), 1), r.Calls, len(r.Errors)
	b.CallsByFunction, b.WithoutRecord, b.DeadLettered = r.CallsByFunction, r.WithoutRecord, r.DeadLettered
	b.Processes, b.CPU = obs.processes, obs.cpu
	var running []time.Duration
	for _, secs := range r.RunningToOutcome {
		running = append(running, s.Real(time.Duration(secs*float64(time.Second))))
	}
	b.RunningToOutcomeReal = percentiles(running)
	b.Breakdown, b.PollLag = breakdown(obs, s), pollLag(obs, t, s)
	for k, n := range r.Calls {
		if strings.HasPrefix(k, "hbr.") {
			b.HBRCalls += n
		}
	}
	b.HBRCallsPerInstance = ratio(float64(b.HBRCalls), float64(b.Installed))
	b.MNSSends = r.Calls["mns.SendMessage"]
	b.MNSSendsPerInstance = ratio(float64(b.MNSSends), float64(b.Instances))
	b.Invocations = r.Invocations["install"] + r.Invocations["poller"] + r.Invocations["reconcile"]
	b.InvocationsPer = ratio(float64(b.Invocations), float64(b.Instances))

	b.InstallCalls = r.Calls["hbr.InstallBackupClients"]
	b.BindCalls = r.Calls["hbr.CreatePolicyBindings"] + r.Calls["hbr.DescribePolicyBindings"]
	b.BindCallsPerInstance = ratio(float64(b.BindCalls), float64(b.Installed))
	ids := 0
	for _, task := range obs.tasks {
		ids += len(task.Instances)
	}
	b.Tasks = len(obs.tasks)
	b.InstancesPerTask = ratio(float64(ids), float64(b.Tasks))
	polls := map[string]int{}
	for _, c := range obs.calls {
		if c.action == "DescribeTask" {
			polls[c.taskID]++
			b.DescribeTaskCalls++
		}
	}
	for _, task := range obs.tasks {
		if task.Completed.IsZero() {
			continue
		}
		b.DescribeTaskMinimum += minimumPolls(task.Completed.Sub(task.Created), t.FirstPoll, t.Interval)
	}
	b.DescribeTaskRatio = ratio(float64(b.DescribeTaskCalls), float64(b.DescribeTaskMinimum))

	completed := map[string]time.Time{}
	for _, task := range obs.tasks {
		completed[task.ID] = task.Completed
	}
	seen := map[string]bool{}
	var lat, e2e, e2eReal []time.Duration
	for _, rec := range obs.records {
		k := rec.JobID + "/" + rec.InstanceID
		if seen[k] || (rec.Outcome != "INSTALLED" && rec.Outcome != "PROTECTED") {
			continue
		}
		seen[k] = true
		if done, ok := completed[rec.TaskID]; ok && !done.IsZero() {
			lat = append(lat, max(rec.At.Sub(done), 0))
		}
		d := time.Duration(rec.Elapsed * float64(time.Second))
		e2e = append(e2e, d)
		e2eReal = append(e2eReal, s.Real(d))
	}
	b.OutcomeLatency = percentiles(lat)
	b.LatencyGoalSeconds = (t.Interval + 2*time.Second).Seconds()
	b.EndToEnd, b.EndToEndReal = percentiles(e2e), percentiles(e2eReal)
	b.PeakRSSMB = map[string]float64{}
	for fn, kb := range obs.peakRSS {
		b.PeakRSSMB[fn] = round(float64(kb)/1024, 1)
	}
}

// windowOf scales a TimeBasedWindow, to at least a millisecond: 0 (deliver
// at once) cannot be passed to localcloud, which takes it as its default.
func windowOf(s Scale, real time.Duration) time.Duration {
	return max(s.Span(real), time.Millisecond)
}

// minimumPolls is the fewest DescribeTask calls the schedule allows for a task
// lasting d: the first at firstDelay, then one per interval until one falls at
// or after d.
func minimumPolls(d, firstDelay, interval time.Duration) int {
	if d <= firstDelay || interval <= 0 {
		return 1
	}
	return 1 + int(math.Ceil(float64(d-firstDelay)/float64(interval)))
}
