package bench

import (
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
	// TimeBasedWindow (real-cloud).
	Batch, MaxInstances int
	BatchWindow         time.Duration
	Seed                int64
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
}

// DefaultFaults are the faults: throttling storms, 5 % HBR 5xx,
// MNS send failures, duplicate deliveries and poller crashes.
func DefaultFaults() Faults {
	return Faults{
		HBRServerErrors: 0.05, HBRThrottle: 0.02, StormSeconds: 1.5, StormEverySeconds: 8,
		MNSSendFail: 0.05, Duplicate: 0.05, Crash: 0.02,
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
	ForkedOutcomes     int `json:"forked_outcomes"`
	RepeatedOutcomes   int `json:"repeated_outcomes"`
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
	// localcloud.Report.Faults).
	FaultsFired map[string]int `json:"faults_fired"`

	DeadLettered int            `json:"dead_lettered"`
	Calls        map[string]int `json:"calls"`
	Invocations  map[string]int `json:"invocations"`
	Errors       int            `json:"errors"`
	ErrorSamples []string       `json:"error_samples,omitempty"`
	Settled      bool           `json:"settled"`
	Seconds      float64        `json:"seconds"`
	// Pass is false on any loss, conflicting duplicate, poll past a deadline
	// or a run that did not settle.
	Pass bool `json:"pass"`
}

// RunChaos runs the soak and checks what must hold.
func RunChaos(ctx context.Context, cfg ChaosConfig) (Chaos, error) {
	rc, err := BurstConfig{
		Binaries: cfg.Binaries, Scenario: cfg.Scenario, Scale: cfg.Scale, Real: cfg.Real, Coalesce: cfg.Coalesce, Policy: cfg.Policy,
		Batch: cfg.Batch, MaxInstances: cfg.MaxInstances, BatchWindow: cfg.BatchWindow, Seed: cfg.Seed, Timeout: cfg.Timeout,
	}.scaled()
	if err != nil {
		return Chaos{}, err
	}
	f := cfg.Faults
	rc.hbrFaults = hbrsim.Faults{ThrottleRate: f.HBRThrottle, ServerErrorRate: f.HBRServerErrors}
	rc.storm, rc.stormEvery = seconds(f.StormSeconds), seconds(f.StormEverySeconds)
	rc.mnsFaults = mnssim.Faults{SendFailRate: f.MNSSendFail}
	rc.dup, rc.crash = f.Duplicate, f.Crash
	obs, err := run(ctx, rc)
	if err != nil {
		return Chaos{}, err
	}
	c := Chaos{Machine: ThisMachine(), Seed: cfg.Seed, Scale: float64(cfg.Scale), Faults: f, Scenario: cfg.Scenario.describe(cfg.Scale)}
	c.fill(obs)
	return c, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func (c *Chaos) fill(obs observation) {
	r := obs.report
	c.Accepted, c.Instances, c.Outcomes = r.Accepted, len(r.Outcomes), r.ByOutcome
	c.Lost, c.RepeatedOutcomes = r.Lost, r.Repeated
	c.DeadLettered, c.Calls, c.Invocations = r.DeadLettered, r.Calls, r.Invocations
	c.Errors, c.Settled, c.Seconds = len(r.Errors), obs.settled, round(obs.elapsed.Seconds(), 1)
	c.ErrorSamples = sampleErrors(r.Errors, 5)

	c.DuplicatedOutcomes, c.ForkedOutcomes, c.ConflictSamples = conflicts(obs.records, 6)
	// Conflicts across jobs of one instance count too (issue 9): records
	// that disagree where neither supersedes the other.
	c.DuplicatedOutcomes = max(c.DuplicatedOutcomes, r.DuplicatedOutcomes)
	c.EventsPerInstance, c.FaultsFired = r.EventsPerInstance, r.Faults
	c.LongestChain, c.LongestChainJob, c.LongestTaskChain = chains(obs.sends)
	calls, overshoot, closest := pastDeadline(obs.calls, obs.sends)
	c.PastDeadlineCalls, c.PastDeadline = calls, calls > 0
	c.MaxOvershootMs, c.ClosestToDeadlineMs = ms(overshoot), ms(closest)
	c.Pass = c.Lost == 0 && c.DuplicatedOutcomes == 0 && !c.PastDeadline && c.Settled
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
