package localcloud

import (
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
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
	Outcomes map[string]InstanceOutcome `json:"outcomes"`
	Calls    map[string]int             `json:"calls"`
	// CallsByFunction splits Calls by the function that made them (each
	// signs with its own key pair): "install", "poller", "reconcile".
	CallsByFunction map[string]map[string]int `json:"calls_by_function"`
	Invocations     map[string]int            `json:"invocations"`
	// PeakConcurrency is, per function, the most invocations its processes
	// held at once (bounded by Options.MaxInstances): what Function
	// Compute's per-region instance quota must allow.
	PeakConcurrency map[string]int `json:"peak_concurrency"`
	Pushes          map[string]int `json:"pushes"`
	// Rejected counts emulator answers with an error code, keyed
	// "hbr.<Code>" or "ecs.<Code>" (throttling, 5xx, not-ready codes, …).
	Rejected map[string]int `json:"rejected"`
	Errors   []string       `json:"errors"`
	// Accepted counts accepted (job, instance) pairs.
	Accepted int `json:"accepted"`
	// Lost counts instances accepted by any job that have no outcome record
	// at all (a job that joins another's install writes none of its own).
	Lost int `json:"lost"`
	// WithoutRecord counts accepted instances whose ledger holds no final
	// record for their latest generation when the report is made.
	WithoutRecord int `json:"without_record"`
	// DuplicatedOutcomes counts conflicts: per instance, pairs of records
	// that disagree on the decision (outcome or code) where neither
	// supersedes the other, through any chain of supersedes
	// (Record.Supersedes names "<jobId>/<OUTCOME>" of the record it
	// corrects, or "<jobId>" of a dead owner it took over; see Conflicts).
	// Repeated counts records identical in
	// (outcome, code) to an earlier record of the instance, which
	// at-least-once delivery allows.
	DuplicatedOutcomes int `json:"duplicated_outcomes"`
	Repeated           int `json:"repeated_outcomes"`
	// Records is every outcome record, in arrival order.
	Records []RecordLine `json:"records"`
	// DeadLetters lists everything that reached the dead-letter queue —
	// what the platform dead-lettered after its retries and what the
	// functions sent there themselves — with its reason and source;
	// DeadLettered counts them.
	DeadLetters []DeadLetter `json:"dead_letters"`
	// Faults counts the injected faults that fired: "bus_duplicates",
	// "stream_duplicates", "poller_crashes", "mns_send_failures" and the
	// HBR answers in Rejected.
	Faults map[string]int `json:"faults_fired"`
	// Unmatched lists the events no install rule matched (not delivered).
	Unmatched []string `json:"unmatched_events"`
	// EventsPublished counts events put on the bus (duplicates included);
	// Announcements the (event, instance) pairs they named (a RunInstances
	// record of 100 instances is 100 announcements); Instances the distinct
	// instances they named.
	EventsPublished int `json:"events_published"`
	Announcements   int `json:"announcements"`
	Instances       int `json:"instances"`
	// InstallSlots counts the instance IDs sent to InstallBackupClients.
	InstallSlots int `json:"install_slots"`
	// The economy of the run, per distinct instance: the events that
	// announced it (Announcements / Instances: how many times each instance
	// arrives), install slots (per instance installed), outcome records and
	// HBR calls.
	EventsPerInstance         float64 `json:"events_per_instance"`
	InstallSlotsPerInstance   float64 `json:"install_slots_per_instance"`
	OutcomeRecordsPerInstance float64 `json:"outcome_records_per_instance"`
	HBRCallsPerInstance       float64 `json:"hbr_calls_per_instance"`
	// RunningToOutcome is, per instance with a Running event, the local
	// seconds from its first Running event to its first outcome record;
	// RunningToOutcomeRealP99 is their 99th percentile in real-cloud terms
	// (multiplied by the launch world's speedup; 0 without one).
	RunningToOutcome        map[string]float64 `json:"-"`
	RunningToOutcomeRealP99 float64            `json:"running_to_outcome_real_p99_seconds"`
	// ByOutcome counts instances per outcome.
	ByOutcome map[string]int `json:"by_outcome"`
	// Coverage is the reconcile sweep's report when the run swept (demo
	// -sweep).
	Coverage     map[string]any `json:"coverage,omitempty"`
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
	r.CallsByFunction = map[string]map[string]int{}
	for _, by := range []map[string]map[string]int{c.HBR.CallsBy(), c.ECS.CallsBy(), c.MNS.CallsBy(), c.OSS.CallsBy()} {
		for who, calls := range by {
			if who == "" {
				continue // the local cloud's own key: seeding and tools
			}
			if r.CallsByFunction[who] == nil {
				r.CallsByFunction[who] = map[string]int{}
			}
			for k, v := range calls {
				r.CallsByFunction[who][k] += v
			}
		}
	}
	for k, v := range c.OSS.Calls() {
		r.Calls[k] = v
	}
	recorded := c.recordedInLedger()
	r.PeakConcurrency = map[string]int{}
	for name, f := range c.fns {
		r.Invocations[name] = f.Invocations()
		r.PeakConcurrency[name] = f.PeakConcurrency()
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
	r.Faults = map[string]int{"mns_send_failures": c.MNS.FailedSends()}
	for k, v := range c.fired {
		r.Faults[k] = v
	}
	r.Coverage = c.coverage
	r.DeadLetters = append([]DeadLetter{}, c.deadLetters...)
	r.DeadLettered = len(r.DeadLetters)
	r.Unmatched = append([]string{}, c.unmatched...)
	r.Accepted = len(c.accepted)
	r.EventsPublished, r.Announcements = c.published, c.announcements
	r.InstallSlots = c.installSlots

	byInstance := map[string][]Record{}
	for _, rec := range c.arrivals {
		byInstance[rec.InstanceID] = append(byInstance[rec.InstanceID], rec)
		r.Records = append(r.Records, RecordLine{Instance: rec.InstanceID, Outcome: rec.Outcome, Code: rec.Code,
			JobID: rec.JobID, TaskID: rec.TaskID, Supersedes: rec.Supersedes})
	}
	if r.Records == nil {
		r.Records = []RecordLine{}
	}
	jobs := map[string]int{}
	for k := range c.accepted {
		jobs[k.instance]++
	}
	for id := range jobs {
		if !recorded[id] {
			r.WithoutRecord++
		}
	}
	for id := range jobs {
		if len(byInstance[id]) == 0 {
			r.Lost++
			r.Outcomes[id] = InstanceOutcome{Outcome: "LOST", Reason: "no outcome before the run ended"}
		}
	}
	for id, recs := range byInstance {
		conflicts, repeats := judge(recs)
		r.DuplicatedOutcomes += conflicts
		r.Repeated += repeats
		// An instance shows its latest record.
		last := recs[len(recs)-1]
		r.Outcomes[id] = InstanceOutcome{Outcome: last.Outcome, Reason: last.Reason, Code: last.Code,
			Attempts: last.Attempts, Elapsed: last.Elapsed, at: last.At}
	}
	// Records for pairs never seen accepted (should not happen) are errors.
	for k := range c.records {
		if _, ok := c.accepted[k]; !ok {
			r.Errors = append(r.Errors, fmt.Sprintf("outcome for %s (job %s) that was never accepted", k.instance, k.job))
		}
	}
	instances := map[string]bool{}
	for id := range c.announced {
		instances[id] = true
	}
	for id := range jobs {
		instances[id] = true
	}
	r.Instances = len(instances)
	hbrCalls := 0
	for k, v := range r.Calls {
		if strings.HasPrefix(k, "hbr.") {
			hbrCalls += v
		}
	}
	r.EventsPerInstance = perUnit(r.Announcements, r.Instances)
	r.OutcomeRecordsPerInstance = perUnit(len(r.Records), r.Instances)
	r.HBRCallsPerInstance = perUnit(hbrCalls, r.Instances)
	installed := 0
	for _, o := range r.Outcomes {
		switch o.Outcome {
		case "INSTALLED", "PROTECTED", "ALREADY_PROTECTED", "BIND_FAILED": // the client is ACTIVATED in all four
			installed++
		}
	}
	r.InstallSlotsPerInstance = perUnit(r.InstallSlots, installed)
	var lat []float64
	for id, at := range c.running {
		if recs := byInstance[id]; len(recs) > 0 {
			if r.RunningToOutcome == nil {
				r.RunningToOutcome = map[string]float64{}
			}
			d := recs[0].At.Sub(at).Seconds()
			r.RunningToOutcome[id] = math.Round(d*1000) / 1000
			lat = append(lat, d)
		}
	}
	if len(lat) > 0 && c.speedup > 0 {
		sort.Float64s(lat)
		i := min(max(int(math.Ceil(0.99*float64(len(lat))))-1, 0), len(lat)-1)
		r.RunningToOutcomeRealP99 = math.Round(lat[i]*c.speedup*10) / 10
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
	fmt.Fprintf(w, "\n%d instances: %s; lost=%d, without a ledger record=%d, conflicting duplicates=%d, identical repeats=%d\n",
		len(r.Outcomes), strings.Join(kinds, " "), r.Lost, r.WithoutRecord, r.DuplicatedOutcomes, r.Repeated)
	fmt.Fprintf(w, "calls: hbr.InstallBackupClients=%d hbr.DescribeTask=%d mns.SendMessage=%d; invocations: install=%d poller=%d; dead-lettered=%d; %.1fs\n",
		r.Calls["hbr.InstallBackupClients"], r.Calls["hbr.DescribeTask"], r.Calls["mns.SendMessage"],
		r.Invocations["install"], r.Invocations["poller"], r.DeadLettered, r.Seconds)
	fmt.Fprintf(w, "per instance: events=%.2f install slots=%.2f outcome records=%.2f HBR calls=%.2f; events no rule matched=%d\n",
		r.EventsPerInstance, r.InstallSlotsPerInstance, r.OutcomeRecordsPerInstance, r.HBRCallsPerInstance, len(r.Unmatched))
	for _, d := range r.DeadLetters {
		fmt.Fprintf(w, "dead letter (%s): %s\n", d.Source, d.Reason)
	}
}

// RecordLine is one outcome record in a report.
type RecordLine struct {
	Instance   string `json:"instance"`
	Outcome    string `json:"outcome"`
	Code       string `json:"code"`
	JobID      string `json:"jobId"`
	TaskID     string `json:"taskId"`
	Supersedes string `json:"supersedes"`
}

// judge counts an instance's conflicting record pairs and identical
// repeats (see Report.DuplicatedOutcomes).
func judge(recs []Record) (conflicts, repeats int) {
	seen := map[[2]string]bool{}
	for _, a := range recs {
		if seen[[2]string{a.Outcome, a.Code}] {
			repeats++
		}
		seen[[2]string{a.Outcome, a.Code}] = true
	}
	return len(Conflicts(recs)), repeats
}

// Conflicts returns the pairs {i, j} (i < j) of one instance's records
// that disagree on the decision (outcome or code) where neither supersedes
// the other. A record supersedes another when it, or a record of the same
// job and decision, names the other as "<jobId>/<OUTCOME>", or names its
// job alone (a takeover) — and it supersedes whatever that one supersedes,
// through any chain: a third generation (a sweep after a restart) settles
// the first as well as the second.
func Conflicts(recs []Record) [][2]int {
	type decision struct{ job, outcome, code string }
	names := map[decision]map[string]bool{} // decision → records it names
	for _, r := range recs {
		d := decision{r.JobID, r.Outcome, r.Code}
		if names[d] == nil {
			names[d] = map[string]bool{}
		}
		if r.Supersedes != "" {
			names[d][r.Supersedes] = true
		}
	}
	// "<jobId>/<OUTCOME>" names one record; a bare "<jobId>" (a takeover of
	// a dead owner) names any record of that job.
	direct := func(a, b Record) bool {
		n := names[decision{a.JobID, a.Outcome, a.Code}]
		return n[b.JobID+"/"+b.Outcome] || n[b.JobID]
	}
	// reach[i][j]: record i supersedes record j, directly or through
	// others (an instance has few records).
	reach := make([][]bool, len(recs))
	for i := range recs {
		reach[i] = make([]bool, len(recs))
		for j := range recs {
			reach[i][j] = i != j && direct(recs[i], recs[j])
		}
	}
	for k := range recs {
		for i := range recs {
			if !reach[i][k] {
				continue
			}
			for j := range recs {
				if reach[k][j] {
					reach[i][j] = true
				}
			}
		}
	}
	var out [][2]int
	for i, a := range recs {
		for j := i + 1; j < len(recs); j++ {
			b := recs[j]
			if (a.Outcome != b.Outcome || a.Code != b.Code) && !reach[i][j] && !reach[j][i] {
				out = append(out, [2]int{i, j})
			}
		}
	}
	return out
}

// Superseded reports whether a later record of the same instance names this
// one (the record at index i of Records) as the one it corrects.
func (r Report) Superseded(i int) bool {
	rec := r.Records[i]
	for _, o := range r.Records[i+1:] {
		if o.Instance == rec.Instance && (o.Supersedes == rec.JobID+"/"+rec.Outcome || o.Supersedes == rec.JobID) {
			return true
		}
	}
	return false
}

// recordedInLedger returns the instances whose latest ledger generation has
// a final record, from the ledger bucket's keys.
func (c *Cloud) recordedInLedger() map[string]bool {
	type gen struct {
		latest int
		final  map[int]bool
	}
	prefix := LedgerPrefix + c.opts.AccountID + "/" + c.opts.Region + "/"
	gens := map[string]*gen{}
	for key := range c.OSS.Objects(LedgerBucket, prefix) {
		id, rest, ok := strings.Cut(strings.TrimPrefix(key, prefix), "/")
		g, name, ok2 := strings.Cut(rest, "/")
		n, err := strconv.Atoi(strings.TrimPrefix(g, "g"))
		if !ok || !ok2 || err != nil {
			continue
		}
		e := gens[id]
		if e == nil {
			e = &gen{final: map[int]bool{}}
			gens[id] = e
		}
		switch name {
		case "claim":
			e.latest = max(e.latest, n)
		case "final":
			e.final[n] = true
		}
	}
	out := make(map[string]bool, len(gens))
	for id, e := range gens {
		out[id] = e.final[e.latest]
	}
	return out
}

func perUnit(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return math.Round(float64(n)/float64(d)*1000) / 1000
}

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
