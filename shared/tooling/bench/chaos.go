package bench

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
)

// ChaosConfig configures the soak: the burst again, with faults.
type ChaosConfig struct {
	Binaries map[string]string
	Scenario Scenario
	Scale    Scale
	Real     localcloud.Timing
	// Coalesce is INSTALL_COALESCE_DELAY in real-cloud terms (0: off).
	Coalesce time.Duration
	// Policy, when set, turns binding on (BACKUP_POLICY_ID, a policy the
	// HBR emulator knows).
	Policy string
	// Batch and BatchWindow are the poller trigger's CountBasedWindow and
	// TimeBasedWindow (real-cloud); MaxInstances bounds each function's
	// processes and StreamConcurrency each event stream's batches in
	// flight (0: as many as MaxInstances).
	Batch, MaxInstances, StreamConcurrency int
	BatchWindow                            time.Duration
	// APILatency is every emulated API call's round trip (real-cloud).
	APILatency time.Duration
	Seed       int64
	// Timeout bounds the run; what has no outcome by then is lost.
	Timeout time.Duration
	Faults  Faults
}

// Faults are the injected faults of a chaos run.
type Faults struct {
	// HBRServerErrors is the share of HBR calls answered 503; HBRThrottle
	// the share answered Throttling.User outside storms.
	HBRServerErrors float64 `json:"hbr_server_error_rate"`
	HBRThrottle     float64 `json:"hbr_throttle_rate"`
	// Storm (local seconds) of every StormEvery, 90 % of HBR calls are
	// throttled.
	StormSeconds      float64 `json:"throttle_storm_seconds"`
	StormEverySeconds float64 `json:"throttle_storm_every_seconds"`
	// MNSSendFail is the share of MNS sends that fail with a 500.
	MNSSendFail float64 `json:"mns_send_fail_rate"`
	// Duplicate is the share of events and messages delivered twice.
	Duplicate float64 `json:"duplicate_rate"`
	// Crash is the share of poller invocations whose processes are killed.
	Crash float64 `json:"poller_crash_rate"`
	// InstallCrash is the share of the install function's
	// InstallBackupClients calls right after which its processes are
	// killed: a death between the install call and the poll message.
	InstallCrash float64 `json:"install_crash_rate"`
	// ForeignClients is the share of instances, per status of
	// localcloud.ForeignStatuses, on which another installer creates a
	// client inside the launch window.
	ForeignClients float64 `json:"foreign_client_share_per_status"`
	// Restarts is the share of instances whose installs fail every attempt
	// and that ECS announces again (a new StateChange Running event)
	// RestartAfterSeconds (real-cloud) after their failure is recorded.
	Restarts            float64 `json:"restart_share"`
	RestartAfterSeconds float64 `json:"restart_after_seconds"`
	// OutageSeconds is how long every MNS send fails, once, in local
	// (wall-clock) seconds: the functions' own send retries (200 ms, then
	// 400 ms) and the platform's redelivery run on the wall clock too, and
	// an outage scaled down with the delays (0.5 s at 1:10) would end
	// within those retries and test nothing. 5 s here is the harsher
	// reading: as long against the scaled delays as a 50 s outage at 1:10.
	OutageSeconds float64 `json:"mns_outage_seconds"`
}

// DefaultFaults are the faults: throttling storms, 5 % HBR 5xx,
// MNS send failures, duplicate deliveries, poller crashes, kills between
// an install call and its poll message, clients of other installers, restarts
// after a failure and a 5 s MNS send outage.
func DefaultFaults() Faults {
	return Faults{
		HBRServerErrors: 0.05, HBRThrottle: 0.02, StormSeconds: 1.5, StormEverySeconds: 8,
		MNSSendFail: 0.05, Duplicate: 0.05, Crash: 0.02, InstallCrash: 0.02,
		ForeignClients: 0.01, Restarts: 0.01, RestartAfterSeconds: 180, OutageSeconds: 5,
	}
}

// ChaosScenario is the default burst plus per-instance faults: 5 % whose
// first install fails, 1 % gone, 3 % whose task expires, 3 % cancelled, 1 %
// whose install hangs past the job deadline.
func ChaosScenario(base Scenario) Scenario {
	base.FailOnce, base.Gone, base.Expire, base.Cancel, base.Hung = 0.05, 0.01, 0.03, 0.03, 0.01
	return base
}

// Chaos is what a chaos run found.
type Chaos struct {
	Command  string  `json:"command"`
	Machine  Machine `json:"machine"`
	Seed     int64   `json:"seed"`
	Scale    float64 `json:"scale"`
	Scenario string  `json:"scenario"`
	Faults   Faults  `json:"faults"`
	// APILatencyMs is every emulated API call's round trip, real-cloud
	// milliseconds (the run used it divided by the scale); MaxInstances
	// and StreamConcurrency the local cloud's bounds.
	APILatencyMs      float64 `json:"api_latency_ms"`
	MaxInstances      int     `json:"max_instances"`
	StreamConcurrency int     `json:"stream_concurrency"`

	// Accepted counts accepted (job, instance) pairs; Instances distinct
	// instances.
	Accepted  int            `json:"accepted"`
	Instances int            `json:"instances"`
	Outcomes  map[string]int `json:"outcomes"`
	// Lost counts accepted pairs without an outcome. DuplicatedOutcomes
	// counts pairs with records that disagree on the terminal outcome (kind
	// or code): a consumer deduping on (jobId, instanceId) would see two
	// verdicts. ForkedOutcomes counts pairs whose records agree on kind and
	// code but not on the reason: the job ran twice (say, two install tasks)
	// and reached the same verdict. RepeatedOutcomes counts identical
	// repeats (at-least-once delivery allows them).
	Lost               int `json:"lost"`
	DuplicatedOutcomes int `json:"duplicated_outcomes"`
	// ReportDuplicatedOutcomes is the local cloud's count of conflicts
	// across jobs (localcloud.Report.DuplicatedOutcomes), from the records
	// the local cloud kept; like DuplicatedOutcomes it follows chains of
	// supersedes (a third generation settles the first).
	ReportDuplicatedOutcomes int `json:"report_duplicated_outcomes"`
	// WithoutRecord counts accepted instances whose ledger holds no final
	// record for their latest generation when the run ends.
	WithoutRecord    int `json:"without_record"`
	ForkedOutcomes   int `json:"forked_outcomes"`
	RepeatedOutcomes int `json:"repeated_outcomes"`
	// LongestChain is the most job messages sent for one job (its id in
	// LongestChainJob); LongestTaskChain the most poll messages for one task.
	LongestChain     int    `json:"longest_chain"`
	LongestChainJob  string `json:"longest_chain_job"`
	LongestTaskChain int    `json:"longest_task_chain"`
	// PastDeadline is true when any DescribeTask call for a task arrived
	// after the deadline its poll messages carried.
	PastDeadline      bool    `json:"past_deadline"`
	PastDeadlineCalls int     `json:"past_deadline_calls"`
	MaxOvershootMs    float64 `json:"max_overshoot_ms"`
	// ClosestToDeadlineMs is the smallest margin a DescribeTask call kept
	// before its deadline.
	ClosestToDeadlineMs float64 `json:"closest_to_deadline_ms"`

	// ConflictSamples shows a few pairs with conflicting outcomes, each as
	// "instance: outcome/code (reason) ≠ …".
	ConflictSamples []string `json:"conflict_samples,omitempty"`

	// EventsPerInstance is events published per distinct instance.
	EventsPerInstance float64 `json:"events_per_instance"`
	// FaultsFired counts the injected faults that fired (see
	// localcloud.Report.Faults), with the run's own: "mns_outage" and
	// "mns_outage_failed_sends", "restarts", "reconcile_sweeps".
	FaultsFired map[string]int `json:"faults_fired"`
	// Restarts says how the restarted instances ended; ForeignClients how
	// the instances other installers put a client on did, by the client's
	// status.
	Restarts       RestartReport             `json:"restarts"`
	ForeignClients map[string]map[string]int `json:"foreign_clients"`
	// ForeignSurprises samples (up to 10) the instances whose other
	// installer's client ended otherwise than its status says it should
	// (ACTIVATED, INSTALLING, UPGRADING: ALREADY_INSTALLED; STOPPED:
	// SKIPPED), with their outcome, code and reason.
	ForeignSurprises []string `json:"foreign_client_surprises,omitempty"`
	// Sweeps are the reconcile sweeps the run invoked, as the daily timer
	// would, to finish chains only a takeover could (their leases passed).
	Sweeps            []Sweep `json:"reconcile_sweeps"`
	OutageFailedSends int     `json:"mns_outage_failed_sends"`

	DeadLettered int            `json:"dead_lettered"`
	DeadLetters  []string       `json:"dead_letter_samples,omitempty"`
	Calls        map[string]int `json:"calls"`
	// CallsByFunction splits Calls by the function that made them.
	CallsByFunction map[string]map[string]int `json:"calls_by_function"`
	Invocations     map[string]int            `json:"invocations"`
	// Processes is each function's peak concurrency (processes started);
	// CPU how busy the machine was.
	Processes    map[string]int `json:"processes"`
	CPU          CPU            `json:"cpu"`
	Errors       int            `json:"errors"`
	ErrorSamples []string       `json:"error_samples,omitempty"`
	Settled      bool           `json:"settled"`
	Seconds      float64        `json:"seconds"`
	// LastOutcomeSeconds is when the last outcome record came (local
	// seconds from the start): the rest of Seconds is the run making sure
	// nothing moves any more.
	LastOutcomeSeconds float64 `json:"last_outcome_seconds"`
	// Pass is false on any loss, conflicting duplicate, instance without a
	// final record, restart not superseding its failure, poll past a
	// deadline or a run that did not settle.
	Pass bool `json:"pass"`
}

// RestartReport is how the instances announced again after a failure
// ended: each must end with a record of a later generation that names
// the failure it supersedes (not a conflict).
type RestartReport struct {
	// Instances were picked to fail every install; Failed reached a first
	// failure record, Restarted were announced again after it.
	Instances int `json:"instances"`
	Failed    int `json:"failed"`
	Restarted int `json:"restarted"`
	// Superseded ended with a record of another job naming the first
	// failure (or its job) in supersedes, from a ledger generation above 1.
	Superseded int `json:"superseded"`
	// Problems names a few restart instances that did not.
	Problems []string `json:"problems,omitempty"`
}

// RunChaos runs the soak and checks what must hold.
func RunChaos(ctx context.Context, cfg ChaosConfig) (Chaos, error) {
	f := cfg.Faults
	sc := cfg.Scenario
	sc.ForeignClients, sc.Restarts = f.ForeignClients, f.Restarts
	rc, err := BurstConfig{
		Binaries: cfg.Binaries, Scenario: sc, Scale: cfg.Scale, Real: cfg.Real, Coalesce: cfg.Coalesce, Policy: cfg.Policy,
		Batch: cfg.Batch, MaxInstances: cfg.MaxInstances, StreamConcurrency: cfg.StreamConcurrency, BatchWindow: cfg.BatchWindow,
		APILatency: cfg.APILatency, Seed: cfg.Seed, Timeout: cfg.Timeout,
	}.scaled()
	if err != nil {
		return Chaos{}, err
	}
	rc.hbrFaults = hbrsim.Faults{ThrottleRate: f.HBRThrottle, ServerErrorRate: f.HBRServerErrors}
	rc.storm, rc.stormEvery = seconds(f.StormSeconds), seconds(f.StormEverySeconds)
	rc.mnsFaults = mnssim.Faults{SendFailRate: f.MNSSendFail}
	rc.dup, rc.crash, rc.installCrash = f.Duplicate, f.Crash, f.InstallCrash
	rc.soak = &soak{
		restarts: rc.plan.Restarts, restartAfter: cfg.Scale.Span(seconds(f.RestartAfterSeconds)),
		outage: seconds(f.OutageSeconds), outageAt: cfg.Scale.Span(sc.Arrival/2 + time.Minute),
		// Nothing moves for longer than the platform's retries take.
		quiet:     max(5*time.Second, 3*rc.retry.MaxDelay),
		maxSweeps: 3, retry: rc.retry.MaxDelay,
	}
	obs, err := run(ctx, rc)
	if err != nil {
		return Chaos{}, err
	}
	c := Chaos{Machine: ThisMachine(), Seed: cfg.Seed, Scale: float64(cfg.Scale), Faults: f, Scenario: sc.describe(cfg.Scale),
		APILatencyMs: ms(cfg.APILatency), MaxInstances: cfg.MaxInstances, StreamConcurrency: cmp.Or(cfg.StreamConcurrency, cfg.MaxInstances)}
	c.fill(obs)
	return c, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func (c *Chaos) fill(obs observation) {
	r := obs.report
	c.Accepted, c.Instances, c.Outcomes = r.Accepted, len(r.Outcomes), r.ByOutcome
	c.Lost, c.RepeatedOutcomes, c.WithoutRecord = r.Lost, r.Repeated, r.WithoutRecord
	c.DeadLettered, c.Calls, c.Invocations = r.DeadLettered, r.Calls, r.Invocations
	c.CallsByFunction, c.Processes, c.CPU = r.CallsByFunction, obs.processes, obs.cpu
	for _, d := range r.DeadLetters {
		if len(c.DeadLetters) < 5 {
			c.DeadLetters = append(c.DeadLetters, d.Source+": "+d.Reason)
		}
	}
	c.Errors, c.Settled, c.Seconds = len(r.Errors), obs.settled, round(obs.elapsed.Seconds(), 1)
	c.ErrorSamples = sampleErrors(r.Errors, 5)

	c.DuplicatedOutcomes, c.ForkedOutcomes, c.ConflictSamples = conflicts(obs.records, 6)
	// Conflicts across jobs of one instance count too (issue 9): records
	// that disagree where neither supersedes the other, through any chain
	// of supersedes (localcloud.Conflicts, which the local cloud's own
	// count uses too).
	across, samples := instanceConflicts(obs.records, 6-len(c.ConflictSamples))
	c.DuplicatedOutcomes = max(c.DuplicatedOutcomes, across)
	c.ConflictSamples = append(c.ConflictSamples, samples...)
	c.ReportDuplicatedOutcomes = r.DuplicatedOutcomes
	c.EventsPerInstance, c.FaultsFired = r.EventsPerInstance, r.Faults
	if c.FaultsFired == nil {
		c.FaultsFired = map[string]int{}
	}
	c.Sweeps, c.OutageFailedSends = obs.soak.Sweeps, obs.soak.OutageFailedSends
	if c.Faults.OutageSeconds > 0 {
		c.FaultsFired["mns_outage"] = 1
		c.FaultsFired["mns_outage_failed_sends"] = obs.soak.OutageFailedSends
	}
	if len(c.Sweeps) > 0 {
		c.FaultsFired["reconcile_sweeps"] = len(c.Sweeps)
	}
	c.Restarts = restartReport(obs)
	for _, rec := range obs.records {
		c.LastOutcomeSeconds = max(c.LastOutcomeSeconds, round(rec.At.Sub(obs.start).Seconds(), 1))
	}
	c.ForeignClients, c.ForeignSurprises = foreignReport(obs)
	c.LongestChain, c.LongestChainJob, c.LongestTaskChain = chains(obs.sends)
	calls, overshoot, closest := pastDeadline(obs.calls, obs.sends)
	c.PastDeadlineCalls, c.PastDeadline = calls, calls > 0
	c.MaxOvershootMs, c.ClosestToDeadlineMs = ms(overshoot), ms(closest)
	c.Pass = c.Lost == 0 && c.DuplicatedOutcomes == 0 && c.WithoutRecord == 0 && !c.PastDeadline && c.Settled &&
		c.Restarts.Superseded == c.Restarts.Instances
}

// restartReport checks that every restart instance ended with a record of
// a later generation superseding its first failure.
func restartReport(obs observation) RestartReport {
	rr := RestartReport{Instances: len(obs.plan.Restarts), Failed: len(obs.failed), Restarted: len(obs.restarted)}
	byInstance := map[string][]localcloud.Record{}
	for _, r := range obs.records {
		byInstance[r.InstanceID] = append(byInstance[r.InstanceID], r)
	}
	for _, id := range obs.plan.Restarts {
		first, failed := obs.failed[id]
		ok := false
		for _, r := range byInstance[id] {
			if failed && r.JobID != first.JobID && (r.Supersedes == first.JobID+"/"+first.Outcome || r.Supersedes == first.JobID) {
				ok = true
			}
		}
		switch st := obs.ledger[id]; {
		case ok && st.generation > 1 && st.final:
			rr.Superseded++
		case len(rr.Problems) >= 5:
		case !failed:
			rr.Problems = append(rr.Problems, fmt.Sprintf("%s: no failure recorded (%d records)", id, len(byInstance[id])))
		case obs.restarted[id].IsZero():
			rr.Problems = append(rr.Problems, fmt.Sprintf("%s: %s, never restarted", id, first.Outcome))
		default:
			rr.Problems = append(rr.Problems, fmt.Sprintf("%s: %s, restarted, then %d records, ledger generation %d (final %v)",
				id, first.Outcome, len(byInstance[id]), st.generation, st.final))
		}
	}
	return rr
}

// foreignReport counts how the instances other installers put a client on
// ended, by the client's status, and samples those that ended otherwise
// than the status says they should.
func foreignReport(obs observation) (map[string]map[string]int, []string) {
	if obs.plan.World == nil || len(obs.plan.World.Clients) == 0 {
		return nil, nil
	}
	expect := map[string]string{"ACTIVATED": "ALREADY_INSTALLED", "INSTALLING": "ALREADY_INSTALLED",
		"UPGRADING": "ALREADY_INSTALLED", "STOPPED": "SKIPPED"}
	out := map[string]map[string]int{}
	var surprises []string
	for _, fc := range obs.plan.World.Clients {
		if out[fc.Status] == nil {
			out[fc.Status] = map[string]int{}
		}
		o, ok := obs.report.Outcomes[fc.ID]
		if !ok {
			o.Outcome = "LOST"
		}
		out[fc.Status][o.Outcome]++
		if want := expect[fc.Status]; want != "" && o.Outcome != want && len(surprises) < 10 {
			surprises = append(surprises, fmt.Sprintf("%s (%s client): %s %s: %s", fc.ID, fc.Status, o.Outcome, o.Code, o.Reason))
		}
	}
	return out, surprises
}

// chains counts the job messages sent per job id and the poll messages sent
// per task, and returns the longest of each.
func chains(sends []sent) (longest int, job string, longestTask int) {
	perJob := map[string]int{}
	perTask := map[string]int{}
	for _, s := range sends {
		for _, in := range s.msg.Instances {
			perJob[in.JobID]++
		}
		if s.msg.TaskID != "" {
			perTask[s.msg.TaskID]++
		}
	}
	for id, n := range perJob {
		if n > longest || (n == longest && id < job) {
			longest, job = n, id
		}
	}
	for _, n := range perTask {
		longestTask = max(longestTask, n)
	}
	return longest, job, longestTask
}

// pastDeadline counts DescribeTask calls that arrived after the deadline of
// their task's poll messages, the largest overshoot, and the smallest margin
// kept by calls in time. Calls for a task no poll message names (none in a
// normal run) are not judged.
func pastDeadline(calls []hbrCall, sends []sent) (n int, overshoot, closest time.Duration) {
	deadline := map[string]time.Time{}
	for _, s := range sends {
		if id := s.msg.TaskID; id != "" && s.msg.Deadline.After(deadline[id]) {
			deadline[id] = s.msg.Deadline
		}
	}
	closest = -1
	for _, c := range calls {
		d, ok := deadline[c.taskID]
		if c.action != "DescribeTask" || !ok {
			continue
		}
		if late := c.at.Sub(d); late > 0 {
			n++
			overshoot = max(overshoot, late)
		} else if closest < 0 || -late < closest {
			closest = -late
		}
	}
	return n, overshoot, max(closest, 0)
}

// conflicts compares every record of a (job, instance) pair with the first:
// it counts the pairs with a different kind or code (duplicated) and those
// that differ only otherwise (forked), and describes up to n of them,
// duplicated ones first.
func conflicts(records []localcloud.Record, n int) (duplicated, forked int, samples []string) {
	first := map[string]localcloud.Record{}
	state := map[string]int{} // 0 consistent so far, 1 forked, 2 duplicated
	var dup, fork []string
	for _, r := range records {
		k := r.JobID + "/" + r.InstanceID
		f, ok := first[k]
		if !ok {
			first[k] = r
			continue
		}
		desc := fmt.Sprintf("%s: %s/%s (%s) ≠ %s/%s (%s)", r.InstanceID, f.Outcome, f.Code, f.Reason, r.Outcome, r.Code, r.Reason)
		switch {
		case (f.Outcome != r.Outcome || f.Code != r.Code) && state[k] < 2:
			if state[k] == 1 {
				forked--
			}
			state[k] = 2
			duplicated++
			dup = append(dup, "duplicated "+desc)
		case f.Reason != r.Reason && state[k] == 0:
			state[k] = 1
			forked++
			fork = append(fork, "forked "+desc)
		}
	}
	samples = append(dup, fork...)
	if len(samples) > n {
		samples = samples[:n]
	}
	return duplicated, forked, samples
}

// instanceConflicts counts the pairs of one instance's records that
// disagree on the decision (outcome or code) where neither supersedes the
// other through any chain of supersedes (localcloud.Conflicts), and
// describes up to n of them.
func instanceConflicts(records []localcloud.Record, n int) (count int, samples []string) {
	byInstance := map[string][]localcloud.Record{}
	var order []string
	for _, r := range records {
		if byInstance[r.InstanceID] == nil {
			order = append(order, r.InstanceID)
		}
		byInstance[r.InstanceID] = append(byInstance[r.InstanceID], r)
	}
	for _, id := range order {
		recs := byInstance[id]
		for _, p := range localcloud.Conflicts(recs) {
			count++
			if len(samples) < n {
				a, b := recs[p[0]], recs[p[1]]
				samples = append(samples, fmt.Sprintf("conflicting %s: %s %s/%s (%s; supersedes %q) ≠ %s %s/%s (%s; supersedes %q)", id,
					a.JobID, a.Outcome, a.Code, clip(a.Reason, 80), a.Supersedes, b.JobID, b.Outcome, b.Code, clip(b.Reason, 80), b.Supersedes))
			}
		}
	}
	return count, samples
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func sampleErrors(errs []string, n int) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range errs {
		if len(e) > 200 {
			e = e[:200] + "…"
		}
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	sort.Strings(out)
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// describe is a one-line summary of a scenario.
func (sc Scenario) describe(s Scale) string {
	if sc.World {
		d := fmt.Sprintf("launch world: %d instances launched over %s (%.0f%% of launches single, the rest batches of up to 100), "+
			"each announced by RunInstances, Running 20–90 s later and FirstHeartbeat 10–60 s after (ready from then), %.0f%% of events delivered twice; installs of %s–%s",
			sc.Instances, sc.Arrival, 100*sc.SingleShare, 100*sc.Duplicate, sc.TaskMin, sc.TaskMax)
		if sc.FailOnce+sc.Gone+sc.Expire+sc.Cancel+sc.Hung > 0 {
			d += fmt.Sprintf("; %.0f%% fail once, %.0f%% gone, %.0f%% expire, %.0f%% cancelled, %.0f%% hang past the deadline",
				100*sc.FailOnce, 100*sc.Gone, 100*sc.Expire, 100*sc.Cancel, 100*sc.Hung)
		}
		if sc.ForeignClients > 0 {
			d += fmt.Sprintf("; on %g%% of instances per status another installer creates an ACTIVATED, INSTALLING (→ ACTIVATED), INSTALL_FAILED, UPGRADING (→ ACTIVATED) or STOPPED client 2–10 s after the launch",
				100*sc.ForeignClients)
		}
		if sc.Restarts > 0 {
			d += fmt.Sprintf("; %g%% fail every install and are announced again after their failure", 100*sc.Restarts)
		}
		return d + fmt.Sprintf(" (real-cloud time; run at 1:%g)", float64(s))
	}
	d := fmt.Sprintf("%d instances (%d Running events + %d RunInstances of %d) over %s, %.0f%% not ready for %s–%s, installs of %s–%s",
		sc.Instances, sc.Instances-sc.Bursts*sc.BurstSize, sc.Bursts, sc.BurstSize, sc.Arrival,
		100*sc.NotReady, sc.ReadyMin, sc.ReadyMax, sc.TaskMin, sc.TaskMax)
	if sc.FailOnce+sc.Gone+sc.Expire+sc.Cancel+sc.Hung > 0 {
		d += fmt.Sprintf("; %.0f%% fail once, %.0f%% gone, %.0f%% expire, %.0f%% cancelled, %.0f%% hang past the deadline",
			100*sc.FailOnce, 100*sc.Gone, 100*sc.Expire, 100*sc.Cancel, 100*sc.Hung)
	}
	return d + fmt.Sprintf(" (real-cloud time; run at 1:%g)", float64(s))
}
