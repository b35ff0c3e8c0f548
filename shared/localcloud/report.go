package localcloud

import (
	"encoding/base64"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// InstanceOutcome is an instance's result in a report.
type InstanceOutcome struct {
	Outcome  string `json:"outcome"`
	Reason   string `json:"reason"`
	Code     string `json:"code,omitempty"`
	Attempts int    `json:"attempts"`
	// Jobs counts the jobs that concerned the instance (several events may
	// announce the same instance).
	Jobs int `json:"jobs"`
	// Elapsed is the seconds from acceptance to outcome of the last job.
	Elapsed float64 `json:"elapsedSeconds"`
	at      time.Time
}

// Report is the end state of a run.
type Report struct {
	Outcomes    map[string]InstanceOutcome `json:"outcomes"`
	Calls       map[string]int             `json:"calls"`
	Invocations map[string]int             `json:"invocations"`
	Pushes      map[string]int             `json:"pushes"`
	// Rejected counts emulator answers with an error code, keyed
	// "hbr.<Code>" or "ecs.<Code>" (throttling, 5xx, not-ready codes, …).
	Rejected map[string]int `json:"rejected"`
	Errors   []string       `json:"errors"`
	// Accepted counts accepted (job, instance) pairs.
	Accepted int `json:"accepted"`
	// Lost counts accepted pairs with no outcome record.
	Lost int `json:"lost"`
	// DuplicatedOutcomes counts extra records for a pair that disagree with
	// its first record on the decision (outcome or code); Repeated counts
	// extra records that agree, which at-least-once delivery allows. The
	// free-text reason, task id and attempt count may differ between two
	// deliveries that reached the same decision.
	DuplicatedOutcomes int `json:"duplicated_outcomes"`
	Repeated           int `json:"repeated_outcomes"`
	// ByOutcome counts instances per outcome.
	ByOutcome    map[string]int `json:"by_outcome"`
	DeadLettered int            `json:"dead_lettered"`
	Settled      bool           `json:"settled"`
	Seconds      float64        `json:"seconds"`
}

// Report summarises the run so far.
func (c *Cloud) Report() Report {
	r := Report{
		Outcomes:    map[string]InstanceOutcome{},
		Calls:       map[string]int{},
		Invocations: map[string]int{},
		Pushes:      map[string]int{},
		Rejected:    map[string]int{},
		Errors:      []string{},
		ByOutcome:   map[string]int{},
		Seconds:     c.elapsed().Seconds(),
	}
	for k, v := range c.HBR.Calls() {
		r.Calls[k] = v
	}
	for k, v := range c.MNS.Calls() {
		r.Calls[k] = v
	}
	for k, v := range c.ECS.Calls() {
		r.Calls[k] = v
	}
	for _, k := range []string{"hbr.InstallBackupClients", "hbr.DescribeTask", "mns.SendMessage"} {
		r.Calls[k] += 0
	}
	for name, f := range c.fns {
		r.Invocations[name] = f.Invocations()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.pushes {
		r.Pushes[k] = v
	}
	for k, v := range c.rejected {
		r.Rejected[k] = v
	}
	r.Errors = append(r.Errors, c.errors...)
	r.DeadLettered = c.dlq
	r.Accepted = len(c.accepted)
	jobs := map[string]int{}
	for k := range c.accepted {
		jobs[k.instance]++
		recs := c.records[k]
		if len(recs) == 0 {
			r.Lost++
			if _, ok := r.Outcomes[k.instance]; !ok {
				r.Outcomes[k.instance] = InstanceOutcome{Outcome: "LOST", Reason: "no outcome before the run ended"}
			}
			continue
		}
		first := recs[0]
		for _, o := range recs[1:] {
			if o.Outcome != first.Outcome || o.Code != first.Code {
				r.DuplicatedOutcomes++
			} else {
				r.Repeated++
			}
		}
		// An instance several jobs concerned shows its latest outcome.
		prev, seen := r.Outcomes[k.instance]
		if !seen || prev.Outcome == "LOST" || first.At.After(prev.at) {
			r.Outcomes[k.instance] = InstanceOutcome{Outcome: first.Outcome, Reason: first.Reason, Code: first.Code,
				Attempts: first.Attempts, Elapsed: first.Elapsed, at: first.At}
		}
	}
	// Records for pairs never seen accepted (should not happen) are errors.
	for k := range c.records {
		if _, ok := c.accepted[k]; !ok {
			r.Errors = append(r.Errors, fmt.Sprintf("outcome for %s (job %s) that was never accepted", k.instance, k.job))
		}
	}
	for id, o := range r.Outcomes {
		o.Jobs = jobs[id]
		r.Outcomes[id] = o
		r.ByOutcome[o.Outcome]++
	}
	return r
}

// PrintTable writes a per-instance outcome table and the totals.
func (r Report) PrintTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tOUTCOME\tATTEMPTS\tSECONDS\tREASON")
	for _, id := range sortedKeys(r.Outcomes) {
		o := r.Outcomes[id]
		reason := o.Reason
		if o.Code != "" && !strings.Contains(reason, o.Code) {
			reason += " [" + o.Code + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%s\n", id, o.Outcome, o.Attempts, o.Elapsed, reason)
	}
	_ = tw.Flush()
	var kinds []string
	for k, n := range r.ByOutcome {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "\n%d instances: %s; lost=%d, conflicting duplicates=%d, identical repeats=%d\n",
		len(r.Outcomes), strings.Join(kinds, " "), r.Lost, r.DuplicatedOutcomes, r.Repeated)
	fmt.Fprintf(w, "calls: hbr.InstallBackupClients=%d hbr.DescribeTask=%d mns.SendMessage=%d; invocations: install=%d poller=%d; dead-lettered=%d; %.1fs\n",
		r.Calls["hbr.InstallBackupClients"], r.Calls["hbr.DescribeTask"], r.Calls["mns.SendMessage"],
		r.Invocations["install"], r.Invocations["poller"], r.DeadLettered, r.Seconds)
}

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
