// Package status reads one region's instance ledger (shared/ledger) and
// reports what it holds: every instance with the state of its latest
// generation — claimed, installing, final (with its outcome), stale (the
// lease passed with no final record) or unreadable — then a summary, the
// instances that are not protected, with their reasons, and the stale
// claims. `make status` prints it (scripts/status); the local demo can show
// it against the local cloud with [Read] and [Report.PrintTable].
//
// The region's keys are listed a page at a time (ledger.Ledger.Scan, one
// call per 1000 keys) and the instances are read with bounded parallelism
// (shared/fanout; ledger.Ledger.Load, one listing and up to three reads
// each), so a ledger of tens of thousands of instances is read in one run.
//
// Errors: Read returns the store's classified errors (package fault) when
// the listing itself fails, with the report of what was read before it
// (Report.Incomplete says so), and the ctx's error when it ends. An entry
// that cannot be read or decoded does not stop the run: its instance is
// reported as unreadable with the error, which names the entry's key.
package status

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fanout"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
)

// State is what an instance's latest generation is doing.
type State string

// States.
const (
	// Claimed: a job owns the instance and has not started an install
	// task yet (it may be waiting for the instance to be ready).
	Claimed State = "claimed"
	// Installing: the owner's install task is recorded and its lease holds.
	Installing State = "installing"
	// Final: the generation's outcome is recorded.
	Final State = "final"
	// Stale: the lease passed with no final record; the next announcement
	// (or the reconcile sweep) takes the instance over.
	Stale State = "stale"
	// Unreadable: an entry could not be read or decoded.
	Unreadable State = "unreadable"
)

// states is the order reports list states in.
var states = []State{Final, Installing, Claimed, Stale, Unreadable}

// DefaultWorkers bounds the instances read at once when Options.Workers is
// not set: OSS takes far more requests per second than that many round
// trips make.
const DefaultWorkers = 32

// Instance is one instance as the ledger holds it.
type Instance struct {
	Instance string `json:"instanceId"`
	// Generation is the latest generation (0 when unreadable).
	Generation int   `json:"generation,omitempty"`
	State      State `json:"state"`
	// Job owns the generation; ClaimedAt is when it claimed it, Why why
	// the generation began; LeaseUntil is when the claim (or its latest
	// task) stops holding the instance.
	Job        string    `json:"jobId,omitempty"`
	ClaimedAt  time.Time `json:"claimedAt,omitzero"`
	Why        string    `json:"claimReason,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	// TaskID and Attempt are the latest install task's.
	TaskID  string `json:"taskId,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	// Outcome, Code, Reason, PolicyID, Supersedes and RecordedAt are the
	// final record's.
	Outcome    string    `json:"outcome,omitempty"`
	Code       string    `json:"code,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	PolicyID   string    `json:"policyId,omitempty"`
	Supersedes string    `json:"supersedes,omitempty"`
	RecordedAt time.Time `json:"recordedAt,omitzero"`
	// Error says why an unreadable instance could not be read; it names
	// the entry's key.
	Error string `json:"error,omitempty"`
}

// Describe says in one line what the instance's generation is doing.
func (in Instance) Describe() string {
	switch in.State {
	case Final:
		s := in.Outcome
		if in.Code != "" {
			s += " (" + in.Code + ")"
		}
		if in.Reason != "" {
			s += ": " + in.Reason
		}
		if in.PolicyID != "" {
			s += "; policy " + in.PolicyID
		}
		if in.Supersedes != "" {
			s += "; supersedes " + in.Supersedes
		}
		return s + fmt.Sprintf("; recorded by %s at %s", in.Job, stamp(in.RecordedAt))
	case Installing:
		return fmt.Sprintf("installing task %s (attempt %d) for %s, lease until %s", in.TaskID, in.Attempt, in.Job, stamp(in.LeaseUntil))
	case Claimed:
		return fmt.Sprintf("claimed by %s at %s (lease until %s)", in.Job, stamp(in.ClaimedAt), stamp(in.LeaseUntil))
	case Stale:
		s := fmt.Sprintf("claimed by %s at %s, lease passed at %s with no final record", in.Job, stamp(in.ClaimedAt), stamp(in.LeaseUntil))
		if in.TaskID != "" {
			s += fmt.Sprintf(" (last task %s, attempt %d)", in.TaskID, in.Attempt)
		}
		return s + ": the next announcement or the reconcile sweep takes it over"
	case Unreadable:
		return in.Error
	}
	return string(in.State)
}

// Entry is an instance in the report's lists: why it is listed.
type Entry struct {
	Instance   string `json:"instanceId"`
	Generation int    `json:"generation,omitempty"`
	State      State  `json:"state"`
	Outcome    string `json:"outcome,omitempty"`
	Code       string `json:"code,omitempty"`
	Reason     string `json:"reason"`
}

func entry(in Instance) Entry {
	e := Entry{Instance: in.Instance, Generation: in.Generation, State: in.State, Outcome: in.Outcome, Code: in.Code}
	if in.State == Final {
		e.Reason = in.Reason
	} else {
		e.Reason = in.Describe()
	}
	return e
}

// Summary counts the report's instances.
type Summary struct {
	Instances int `json:"instances"`
	// States counts instances by state; Outcomes the final ones by outcome.
	States   map[State]int  `json:"states"`
	Outcomes map[string]int `json:"outcomes"`
	// Protected counts the instances whose outcome is in Report.Protecting;
	// Unprotected all the others.
	Protected   int `json:"protected"`
	Unprotected int `json:"unprotected"`
	Stale       int `json:"stale"`
	Unreadable  int `json:"unreadable"`
}

// Report is what one region's ledger holds.
type Report struct {
	Region  string `json:"region"`
	Account string `json:"account"`
	// Prefix is the region's key prefix that was read.
	Prefix string `json:"prefix"`
	// At is the time the states are judged at (leases are compared to it).
	At time.Time `json:"at"`
	// Protecting lists the outcomes counted as protected.
	Protecting []string   `json:"protectingOutcomes"`
	Instances  []Instance `json:"instances"`
	Summary    Summary    `json:"summary"`
	// Unprotected lists every instance whose outcome is not in Protecting,
	// the ones in flight, stale or unreadable included, with the reason.
	Unprotected []Entry `json:"unprotected"`
	// Stale lists the claims whose lease passed with no final record.
	Stale []Entry `json:"stale"`
	// Incomplete says why the listing stopped early, when it did.
	Incomplete string `json:"incomplete,omitempty"`
}

// Options tune Read.
type Options struct {
	// Workers bounds the instances read at once (default DefaultWorkers).
	Workers int
	// PolicyExpected counts only PROTECTED and ALREADY_PROTECTED as
	// protected (a backup policy is configured); otherwise an ACTIVATED
	// client (INSTALLED, ALREADY_INSTALLED) counts too.
	PolicyExpected bool
	// Progress, when set, is called after each instance is read with the
	// number read so far and the total, from several goroutines at once.
	Progress func(done, total int)
}

// Protecting returns the outcomes that count as protected.
func (o Options) Protecting() []string {
	if o.PolicyExpected {
		return []string{string(outcome.Protected), string(outcome.AlreadyProtected)}
	}
	return []string{string(outcome.Installed), string(outcome.AlreadyInstalled), string(outcome.Protected), string(outcome.AlreadyProtected)}
}

// Read reports what l holds for region, judged at now, with the default
// Options.
func Read(ctx context.Context, l *ledger.Ledger, region string, now time.Time) (Report, error) {
	return Options{}.Read(ctx, l, region, now)
}

// Read reports what l holds for region, judged at now: it scans the
// region's keys, then loads every instance found.
func (o Options) Read(ctx context.Context, l *ledger.Ledger, region string, now time.Time) (Report, error) {
	rep := Report{Region: region, Account: l.Account, Prefix: l.RegionPrefix(region), At: now.UTC(), Protecting: o.Protecting(),
		Instances: []Instance{}, Unprotected: []Entry{}, Stale: []Entry{}}
	var found []ledger.Summary
	scanErr := l.Scan(ctx, region, func(s ledger.Summary) error {
		found = append(found, s)
		return nil
	})
	if scanErr != nil {
		rep.Incomplete = fmt.Sprintf("the listing stopped after %d instances: %v", len(found), scanErr)
	}

	workers := o.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	loaded := make([]Instance, len(found))
	var done atomic.Int64
	fanout.Each(len(found), workers, func(i int) {
		loaded[i] = load(ctx, l, region, found[i].Instance, now)
		if o.Progress != nil {
			o.Progress(int(done.Add(1)), len(found))
		}
	})
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("read the ledger of %s: %w", region, err)
	}
	protecting := o.Protecting()
	sum := Summary{States: map[State]int{}, Outcomes: map[string]int{}}
	for _, in := range loaded {
		if in.State == "" {
			continue // its entries went (expired) between the scan and the read
		}
		rep.Instances = append(rep.Instances, in)
		sum.Instances++
		sum.States[in.State]++
		if in.State == Final {
			sum.Outcomes[in.Outcome]++
		}
		if in.State == Final && slices.Contains(protecting, in.Outcome) {
			sum.Protected++
			continue
		}
		sum.Unprotected++
		rep.Unprotected = append(rep.Unprotected, entry(in))
		if in.State == Stale {
			rep.Stale = append(rep.Stale, entry(in))
		}
	}
	sum.Stale, sum.Unreadable = sum.States[Stale], sum.States[Unreadable]
	rep.Summary = sum
	if scanErr != nil {
		return rep, fmt.Errorf("list the ledger of %s: %w", region, scanErr)
	}
	return rep, nil
}

// load reads one instance and judges its state at now. It returns the zero
// Instance when the ledger holds nothing for it any more.
func load(ctx context.Context, l *ledger.Ledger, region, id string, now time.Time) Instance {
	st, err := l.Load(ctx, region, id)
	if err != nil {
		return Instance{Instance: id, State: Unreadable, Error: err.Error()}
	}
	if st.Generation == 0 || st.Claim == nil {
		return Instance{}
	}
	in := Instance{Instance: id, Generation: st.Generation, Job: st.Claim.Job, ClaimedAt: st.Claim.At,
		Why: st.Claim.Reason, LeaseUntil: st.LeaseUntil()}
	if st.Task != nil {
		in.TaskID, in.Attempt = st.Task.TaskID, st.Task.Attempt
	}
	switch {
	case st.Final != nil:
		f := st.Final
		in.State = Final
		in.Outcome, in.Code, in.Reason, in.PolicyID, in.Supersedes, in.RecordedAt = f.Outcome, f.Code, f.Reason, f.PolicyID, f.Supersedes, f.At
		if f.Job != "" {
			in.Job = f.Job
		}
		if in.TaskID == "" {
			in.TaskID = f.TaskID
		}
	case now.After(in.LeaseUntil):
		in.State = Stale
	case st.Task != nil:
		in.State = Installing
	default:
		in.State = Claimed
	}
	return in
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return t.UTC().Format(time.RFC3339)
}

// WriteJSON writes the report as one indented JSON document.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// PrintTable writes the report for a person: a line per instance, the
// summary, the instances not protected and the stale claims.
func (r Report) PrintTable(w io.Writer) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "instance ledger %s (region %s) at %s: %d instances\n", r.Prefix, r.Region, stamp(r.At), r.Summary.Instances)
	if r.Incomplete != "" {
		fmt.Fprintf(ew, "INCOMPLETE: %s\n", r.Incomplete)
	}
	if len(r.Instances) > 0 {
		tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "INSTANCE\tGEN\tSTATE\tDETAIL")
		for _, in := range r.Instances {
			gen := "-"
			if in.Generation > 0 {
				gen = fmt.Sprint(in.Generation)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", in.Instance, gen, in.State, oneLine(in.Describe()))
		}
		_ = tw.Flush() // errors reach ew
	}
	fmt.Fprintf(ew, "\nsummary: %s\n", r.Summary.line())
	fmt.Fprintf(ew, "protected: %d (outcome %s)\n", r.Summary.Protected, strings.Join(r.Protecting, ", "))
	fmt.Fprintf(ew, "not protected: %d\n", len(r.Unprotected))
	for _, e := range r.Unprotected {
		what := string(e.State)
		if e.State == Final {
			what = e.Outcome
			if e.Code != "" {
				what += " (" + e.Code + ")"
			}
		}
		fmt.Fprintf(ew, "  %s  %s: %s\n", e.Instance, what, oneLine(e.Reason))
	}
	fmt.Fprintf(ew, "stale claims: %d\n", len(r.Stale))
	for _, e := range r.Stale {
		fmt.Fprintf(ew, "  %s  generation %d: %s\n", e.Instance, e.Generation, oneLine(e.Reason))
	}
	return ew.err
}

// line renders the counts: "5 instances: 3 final (INSTALLED 2, FAILED 1),
// 1 installing, 1 stale".
func (s Summary) line() string {
	parts := []string{fmt.Sprintf("%d instances", s.Instances)}
	var detail []string
	for _, st := range states {
		n := s.States[st]
		if n == 0 {
			continue
		}
		d := fmt.Sprintf("%d %s", n, st)
		if st == Final {
			d += " (" + outcomes(s.Outcomes) + ")"
		}
		detail = append(detail, d)
	}
	if len(detail) == 0 {
		return parts[0]
	}
	return parts[0] + ": " + strings.Join(detail, ", ")
}

// outcomes renders the counts in the order of outcome.Kinds, then any
// other outcome by name.
func outcomes(m map[string]int) string {
	var out []string
	seen := map[string]bool{}
	for _, k := range outcome.Kinds {
		if n := m[string(k)]; n > 0 {
			out = append(out, fmt.Sprintf("%s %d", k, n))
		}
		seen[string(k)] = true
	}
	var others []string
	for k := range m {
		if !seen[k] {
			others = append(others, k)
		}
	}
	sort.Strings(others)
	for _, k := range others {
		out = append(out, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(out, ", ")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
