package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
)

// Claim is a generation's first entry: the job that owns the instance's
// install and outcome, and until when it holds it without further progress.
type Claim struct {
	Instance   string `json:"instanceId"`
	Region     string `json:"region"`
	Generation int    `json:"generation"`
	// Job is the owning job; Trigger and OriginEventID the announcement that
	// won the claim, EventTime when it happened.
	Job           string    `json:"jobId"`
	Trigger       string    `json:"trigger,omitempty"`
	OriginEventID string    `json:"originEventId,omitempty"`
	EventTime     time.Time `json:"eventTime,omitzero"`
	At            time.Time `json:"claimedAt"`
	LeaseUntil    time.Time `json:"leaseUntil"`
	// Supersedes names what this generation replaces: "<jobId>/<OUTCOME>",
	// the latest final record before it, or "<jobId>", the owner of a
	// generation whose chain died (a takeover) when no record came before.
	// A takeover of a generation that was itself correcting a record
	// names that record: the dead chain recorded nothing, so the record
	// this generation writes corrects that one. Empty for generation 1.
	Supersedes string `json:"supersedes,omitempty"`
	// Reason says why the generation began.
	Reason string `json:"reason"`
	// Via is the delivery (event or message id) that wrote the claim.
	Via string `json:"via,omitempty"`
}

// Intent says that a delivery of the owning job is about to call
// InstallBackupClients for one attempt.
type Intent struct {
	Job     string    `json:"jobId"`
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Via     string    `json:"via,omitempty"`
}

// Task is the HBR install task an attempt started.
type Task struct {
	Job       string    `json:"jobId"`
	Attempt   int       `json:"attempt"`
	TaskID    string    `json:"taskId"`
	StartedAt time.Time `json:"startedAt"`
	// Deadline is the job's hard stop for the task (start + task timeout +
	// margin); LeaseUntil renews the generation's lease.
	Deadline   time.Time `json:"deadline"`
	LeaseUntil time.Time `json:"leaseUntil"`
	Via        string    `json:"via,omitempty"`
}

// Final is a generation's outcome: the record the function logged.
type Final struct {
	Instance   string    `json:"instanceId"`
	Region     string    `json:"region"`
	Generation int       `json:"generation"`
	Job        string    `json:"jobId"`
	Outcome    string    `json:"outcome"`
	Code       string    `json:"code,omitempty"`
	Reason     string    `json:"reason"`
	Detail     string    `json:"detail,omitempty"`
	TaskID     string    `json:"taskId,omitempty"`
	ClientID   string    `json:"clientId,omitempty"`
	PolicyID   string    `json:"policyId,omitempty"`
	Attempts   int       `json:"attempts"`
	Supersedes string    `json:"supersedes,omitempty"`
	At         time.Time `json:"at"`
	// Via is the delivery whose handling wrote the record; Function the
	// function that wrote it.
	Via      string `json:"via,omitempty"`
	Function string `json:"function,omitempty"`
}

// Ref names the record as other records name it in "supersedes":
// "<jobId>/<OUTCOME>".
func (f Final) Ref() string { return f.Job + "/" + f.Outcome }

// Owner is what a job's messages carry of its claim: enough to act as the
// owner without reading the claim again.
type Owner struct {
	Region, Instance, Job string
	Generation            int
	// LeaseUntil is the lease the owner last renewed; past it, the owner
	// checks that no later generation took the instance over before it
	// records.
	LeaseUntil time.Time
	// Supersedes is the claim's (copied into the final record).
	Supersedes string
}

// Ledger reads and writes the instance ledger in a Store. It is cheap to
// build (one per invocation, over that invocation's credentials) and safe
// for concurrent use if its Store is.
type Ledger struct {
	Store Store
	// Prefix starts every key (a "folder", ending in "/"); Account is the
	// account id the instances belong to.
	Prefix, Account string
	// Lease is how long a claim, or the latest task of its generation,
	// holds the instance: past it, with no final record, the generation is
	// taken over. It must outlast the longest healthy step of a chain.
	Lease time.Duration
	// StaleIntent is how long an intent with no task may stand before
	// another delivery of the same job takes it for dead and installs the
	// next attempt.
	StaleIntent time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// MaxGeneration bounds the generations of one instance (the key holds six
// digits).
const MaxGeneration = 999999

// maxRounds bounds how often Claim re-reads an instance whose claim it
// lost to a concurrent announcement.
const maxRounds = 4

func (l *Ledger) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// InstancePrefix is the prefix of every key of an instance.
func (l *Ledger) InstancePrefix(region, instance string) string {
	return l.RegionPrefix(region) + instance + "/"
}

// RegionPrefix is the prefix of every key of a region's instances.
func (l *Ledger) RegionPrefix(region string) string {
	return l.Prefix + l.Account + "/" + region + "/"
}

func (l *Ledger) key(region, instance string, gen int, name string) string {
	return fmt.Sprintf("%sg%06d/%s", l.InstancePrefix(region, instance), gen, name)
}

func intentName(n int) string { return fmt.Sprintf("intent-%02d", n) }
func taskName(n int) string   { return fmt.Sprintf("task-%02d", n) }

// Announcement is one job announcing an instance: an ECS event, or a
// reconcile sweep that found the instance not covered.
type Announcement struct {
	Region, Instance, Job string
	// Trigger names the announcing event type ("reconcile" for a sweep);
	// OriginEventID the event.
	Trigger, OriginEventID string
	// EventTime is when the announcement happened (the event's time, the
	// sweep's start); zero when unknown.
	EventTime time.Time
	// Sweep marks a reconcile sweep's announcement: evidence that the
	// instance is not covered now, so it reopens any recorded generation
	// older than the sweep.
	Sweep bool
	// Via is the delivery: the event id, or the MNS message id.
	Via string
	// Follower marks an announcement that usually comes after another of
	// the same instance (an instance's Running event and first heartbeat
	// follow its launch): Claim reads the ledger beside its first create,
	// so that joining the owner waits one round trip instead of two.
	Follower bool
}

// Kind is what a claim decided for an announcement.
type Kind int

const (
	// Owned: the announcement won a new generation and owns it.
	Owned Kind = iota
	// Resumed: the announcing job already owns the current generation (a
	// redelivery): it resumes its chain.
	Resumed
	// Joined: another job owns the current generation, or recorded it and
	// the announcement does not reopen it; the announcement records nothing.
	Joined
	// Recorded: the announcing job owns the current generation and its
	// final record exists (a redelivery after the chain ended).
	Recorded
)

// String names the kind for logs.
func (k Kind) String() string {
	return [...]string{"owned", "resumed", "joined", "recorded"}[k]
}

// Decision is the answer to an announcement.
type Decision struct {
	Kind Kind
	// Owner is the generation's owner: the announcing job for Owned and
	// Resumed, another for Joined.
	Owner Owner
	// State is what the ledger held for the instance when it decided (the
	// zero State for a first claim won at once).
	State State
	// Inherit is, for a takeover, the dead chain's latest task: the new
	// owner follows it instead of installing again.
	Inherit *Task
	// Reason says why: how the generation began, or why the announcement
	// joined.
	Reason string
}

// State is what the ledger holds for one instance: its latest generation.
type State struct {
	Region, Instance string
	// Generation is the latest generation with a claim (0: none).
	Generation int
	Claim      *Claim
	// Intents and Tasks count the generation's intent and task entries;
	// Intent and Task are the latest of each. Compare their Job with the
	// owner's: an entry of another job is a leftover of an earlier claim of
	// the generation whose claim expired.
	Intents, Tasks int
	Intent         *Intent
	Task           *Task
	Final          *Final
}

// LeaseUntil is when the generation stops holding the instance: the latest
// lease of its claim and its latest task.
func (s State) LeaseUntil() time.Time {
	var t time.Time
	if s.Claim != nil {
		t = s.Claim.LeaseUntil
	}
	if task := s.OwnTask(); task != nil && task.LeaseUntil.After(t) {
		t = task.LeaseUntil
	}
	return t
}

// OwnTask is the generation's latest task when it is the owner's (not a
// leftover of an expired claim).
func (s State) OwnTask() *Task {
	if s.Task != nil && s.Claim != nil && s.Task.Job == s.Claim.Job {
		return s.Task
	}
	return nil
}

// OwnIntent is the generation's latest intent when it is the owner's.
func (s State) OwnIntent() *Intent {
	if s.Intent != nil && s.Claim != nil && s.Intent.Job == s.Claim.Job {
		return s.Intent
	}
	return nil
}

// Describe says what the generation's owner is doing, for "joined" lines
// and status reports: "final INSTALLED", "installing task t-… (attempt 1)",
// "claimed at 2026-…".
func (s State) Describe() string {
	switch {
	case s.Generation == 0:
		return "unclaimed"
	case s.Final != nil:
		return fmt.Sprintf("generation %d recorded %s at %s", s.Generation, s.Final.Outcome, s.Final.At.UTC().Format(time.RFC3339))
	case s.OwnTask() != nil:
		return fmt.Sprintf("generation %d installing task %s (attempt %d)", s.Generation, s.Task.TaskID, s.Task.Attempt)
	case s.Claim != nil:
		return fmt.Sprintf("generation %d claimed at %s", s.Generation, s.Claim.At.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("generation %d", s.Generation)
}

// owner returns the generation's owner.
func (s State) owner() Owner {
	o := Owner{Region: s.Region, Instance: s.Instance, Generation: s.Generation, LeaseUntil: s.LeaseUntil()}
	if s.Claim != nil {
		o.Job, o.Supersedes = s.Claim.Job, s.Claim.Supersedes
	}
	return o
}

// reopens reports whether a announces the instance anew after the final
// record f: a restart (or another announcement) after a failed outcome, or
// a sweep that found the instance uncovered after the record was written.
// Announcements older than the record belong to the generation it ended.
func reopens(f Final, a Announcement) (bool, string) {
	if !a.EventTime.After(f.At) {
		return false, ""
	}
	if a.Sweep {
		return true, fmt.Sprintf("a reconcile sweep found the instance without an active, bound client after %s's %s record", f.Job, f.Outcome)
	}
	switch outcome.Kind(f.Outcome) {
	case outcome.Failed, outcome.NotReady, outcome.Timeout, outcome.Cancelled, outcome.BindFailed:
		return true, fmt.Sprintf("announced again (%s) after %s's %s record", orUnknown(a.Trigger), f.Job, f.Outcome)
	}
	return false, ""
}

// Claim decides who owns the instance an announcement names: the first
// claim of a new instance is one create; otherwise the ledger is read and
// the announcement resumes its own generation, joins the owner, reopens a
// recorded generation or takes over one whose lease passed. Lost races are
// read again, a few times at most. A Follower's first read runs beside its
// create.
func (l *Ledger) Claim(ctx context.Context, a Announcement) (Decision, error) {
	now := l.now()
	create := func(gen int, supersedes, reason string) (Decision, bool, error) {
		if gen > MaxGeneration {
			return Decision{}, false, fault.Invalidf("ledger.Claim", "instance %s: more than %d generations", a.Instance, MaxGeneration)
		}
		c := Claim{Instance: a.Instance, Region: a.Region, Generation: gen, Job: a.Job, Trigger: a.Trigger,
			OriginEventID: a.OriginEventID, EventTime: a.EventTime, At: now, LeaseUntil: now.Add(l.Lease),
			Supersedes: supersedes, Reason: reason, Via: a.Via}
		ok, err := l.create(ctx, l.key(a.Region, a.Instance, gen, "claim"), c)
		if !ok || err != nil {
			return Decision{}, false, err
		}
		st := State{Region: a.Region, Instance: a.Instance, Generation: gen, Claim: &c}
		return Decision{Kind: Owned, Owner: st.owner(), State: st, Reason: reason}, true, nil
	}
	type loaded struct {
		st  State
		err error
	}
	var early chan loaded
	if a.Follower {
		// Read beside the create. Not waited for when the create wins: the
		// read ends on its own, and the owner goes on at once.
		early = make(chan loaded, 1)
		go func() {
			st, err := l.Load(ctx, a.Region, a.Instance)
			early <- loaded{st, err}
		}()
	}
	if d, ok, err := create(1, "", "first announcement of the instance"); ok || err != nil {
		return d, err
	}
	for round := 0; round < maxRounds; round++ {
		var st State
		var err error
		if round == 0 && early != nil {
			// A read that began before the create failed may predate the
			// entry that made it fail: it then shows no generation, and
			// the round goes on as after a lost race.
			r := <-early
			st, err = r.st, r.err
		} else {
			st, err = l.Load(ctx, a.Region, a.Instance)
		}
		if err != nil {
			return Decision{}, err
		}
		var d Decision
		var ok bool
		switch {
		case st.Generation == 0:
			d, ok, err = create(1, "", "first announcement of the instance")
		case st.Final != nil && st.Claim.Job == a.Job:
			return Decision{Kind: Recorded, Owner: st.owner(), State: st, Reason: "this job's generation is recorded"}, nil
		case st.Final != nil:
			reopen, why := reopens(*st.Final, a)
			if !reopen {
				return Decision{Kind: Joined, Owner: st.owner(), State: st,
					Reason: "the instance is recorded and this announcement does not reopen it"}, nil
			}
			d, ok, err = create(st.Generation+1, st.Final.Ref(), why)
		case st.Claim.Job == a.Job:
			return Decision{Kind: Resumed, Owner: st.owner(), State: st, Reason: "this job owns the generation (a redelivery)"}, nil
		case now.After(st.LeaseUntil()):
			d, ok, err = create(st.Generation+1, takenOver(*st.Claim), fmt.Sprintf("took over generation %d of %s: no progress since %s (lease passed)",
				st.Generation, st.Claim.Job, lastProgress(st).UTC().Format(time.RFC3339)))
			d.Inherit = st.OwnTask()
		default:
			return Decision{Kind: Joined, Owner: st.owner(), State: st, Reason: "another job owns the instance"}, nil
		}
		if ok || err != nil {
			return d, err
		}
	}
	return Decision{}, fault.Wrap("ledger.Claim", fault.Retryable, "Contended",
		fmt.Errorf("instance %s: claim lost to concurrent announcements %d times", a.Instance, maxRounds))
}

// takenOver is what a takeover of the dead generation c supersedes: the
// record c was correcting, or else c's owner.
func takenOver(c Claim) string {
	if strings.Contains(c.Supersedes, "/") {
		return c.Supersedes
	}
	return c.Job
}

func lastProgress(s State) time.Time {
	t := s.Claim.At
	if task := s.OwnTask(); task != nil && task.StartedAt.After(t) {
		t = task.StartedAt
	}
	return t
}

// Load reads an instance's latest generation: one listing (beside which
// the first generation's claim is read), then, side by side, its claim
// (unless read already), its final record, its latest task and (when that
// has no task yet) its latest intent.
func (l *Ledger) Load(ctx context.Context, region, instance string) (State, error) {
	prefix := l.InstancePrefix(region, instance)
	st := State{Region: region, Instance: instance}
	type gen struct {
		claim, final              bool
		intents, lastTsk, lastInt int
		tasks                     int
	}
	gens := map[int]*gen{}
	// The first generation's claim is read while the listing runs: it is
	// nearly always the claim wanted, and an announcement that joins its
	// owner waits one round trip less. Entries are never rewritten, so
	// reading it before the listing sees the same entry.
	var first Claim
	var errFirst error
	firstRead := make(chan struct{})
	go func() {
		defer close(firstRead)
		errFirst = l.get(ctx, l.key(region, instance, 1, "claim"), &first)
	}()
	defer func() { <-firstRead }()
	after := ""
	for {
		keys, more, err := l.Store.List(ctx, prefix, after, 1000)
		if err != nil {
			return State{}, fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, k := range keys {
			g, name, ok := parseKey(strings.TrimPrefix(k, prefix))
			if !ok {
				continue // not ours: left alone
			}
			e := gens[g]
			if e == nil {
				e = &gen{}
				gens[g] = e
			}
			switch {
			case name == "claim":
				e.claim = true
			case name == "final":
				e.final = true
			case strings.HasPrefix(name, "intent-"):
				e.intents++
				if n, err := strconv.Atoi(strings.TrimPrefix(name, "intent-")); err == nil && n > e.lastInt {
					e.lastInt = n
				}
			case strings.HasPrefix(name, "task-"):
				e.tasks++
				if n, err := strconv.Atoi(strings.TrimPrefix(name, "task-")); err == nil && n > e.lastTsk {
					e.lastTsk = n
				}
			}
		}
		if !more || len(keys) == 0 {
			break
		}
		after = keys[len(keys)-1]
	}
	// The latest generation is the latest with a claim or a final record:
	// the bucket's lifecycle rule deletes entries one by one by age, so a
	// generation's claim (its oldest entry) may be gone while its record
	// lingers for a while. Lingering intents and tasks alone make no
	// generation: their claim is gone, and the next claim goes past them.
	for g, e := range gens {
		if (e.claim || e.final) && g > st.Generation {
			st.Generation = g
		}
	}
	if st.Generation == 0 {
		return st, nil
	}
	e := gens[st.Generation]
	st.Intents, st.Tasks = e.intents, e.tasks
	// The entries are read side by side: each read is a round trip, and
	// the install function's announcements wait on them. The latest intent
	// is read only when it has no task yet: an intent with its task is the
	// task's writer's, and the task says all the intent would.
	var (
		f           Final
		c           Claim
		t           Task
		in          Intent
		errF, errC  error
		errT, errIn error
		wg          sync.WaitGroup
	)
	read := func(name string, v any, err *error) {
		wg.Go(func() { *err = l.get(ctx, l.key(region, instance, st.Generation, name), v) })
	}
	if e.final {
		read("final", &f, &errF)
	}
	if e.claim && st.Generation > 1 {
		read("claim", &c, &errC)
	}
	if e.lastTsk > 0 {
		read(taskName(e.lastTsk), &t, &errT)
	}
	if e.lastInt > e.lastTsk {
		read(intentName(e.lastInt), &in, &errIn)
	}
	wg.Wait()
	if e.claim && st.Generation == 1 {
		<-firstRead
		c, errC = first, errFirst
		if errors.Is(errC, ErrNotFound) {
			// Created between that read and the listing: read it again.
			errC = l.get(ctx, l.key(region, instance, 1, "claim"), &c)
		}
	}
	for _, err := range []error{errF, errC, errT} {
		if err != nil {
			return State{}, err
		}
	}
	if errIn != nil && !errors.Is(errIn, ErrNotFound) { // released meanwhile: none
		return State{}, errIn
	}
	if e.final {
		st.Final = &f
	}
	if e.claim {
		st.Claim = &c
		if st.Final != nil && st.Final.Job != c.Job {
			// The record of an earlier claim of this generation, which
			// expired before it: it is not this claim's (the owner's own
			// record will supersede it, see Finish).
			st.Final = nil
		}
	} else {
		// Its claim expired: the record stands for it.
		st.Claim = &Claim{Instance: instance, Region: region, Generation: st.Generation, Job: f.Job, At: f.At, LeaseUntil: f.At,
			Reason: "the claim's entry expired; its final record stands"}
	}
	if e.lastTsk > 0 {
		st.Task = &t
	}
	if e.lastInt > e.lastTsk && st.Final == nil && errIn == nil {
		st.Intent = &in
	}
	return st, nil
}

// parseKey splits "g000001/claim" into 1 and "claim".
func parseKey(rest string) (int, string, bool) {
	g, name, ok := strings.Cut(rest, "/")
	if !ok || len(g) != 7 || g[0] != 'g' || name == "" || strings.Contains(name, "/") {
		return 0, "", false
	}
	n, err := strconv.Atoi(g[1:])
	if err != nil || n < 1 {
		return 0, "", false
	}
	return n, name, true
}

// Start is what Begin found for an attempt.
type Start int

const (
	// Go: the intent is this delivery's; call InstallBackupClients.
	Go Start = iota
	// Resume: an earlier delivery of this very message or event started
	// the attempt and recorded its task (Begun.Task): follow that task.
	Resume
	// InProgress: another delivery of the job is installing the attempt
	// right now: look again later.
	InProgress
	// Continued: another delivery of the job started the attempt and
	// follows its task: this delivery's chain ends here.
	Continued
)

// Begun is Begin's answer.
type Begun struct {
	Start Start
	// Attempt is the attempt number reserved (Go) or found.
	Attempt int
	// Task is the recorded task (Resume).
	Task *Task
}

// Begin reserves install attempt n of the owner's generation, before
// InstallBackupClients is called: an intent entry only one delivery can
// create. When the intent exists, its task entry and its age decide: an
// intent of this very delivery (via) is this delivery's to resume or redo;
// another's is busy until it is StaleIntent old without a task, after
// which the next number is tried (its writer died mid-install).
func (l *Ledger) Begin(ctx context.Context, o Owner, n int, via string) (Begun, error) {
	now := l.now()
	for k := max(n, 1); k < max(n, 1)+maxRounds; k++ {
		ok, err := l.create(ctx, l.key(o.Region, o.Instance, o.Generation, intentName(k)), Intent{Job: o.Job, Attempt: k, At: now, Via: via})
		if err != nil {
			return Begun{}, err
		}
		if ok {
			return Begun{Start: Go, Attempt: k}, nil
		}
		var in Intent
		if err := l.get(ctx, l.key(o.Region, o.Instance, o.Generation, intentName(k)), &in); err != nil {
			return Begun{}, err
		}
		if in.Job != o.Job {
			// Another job's intent in this job's generation: left by an
			// earlier claim of the same generation whose entry expired.
			continue
		}
		var t Task
		err = l.get(ctx, l.key(o.Region, o.Instance, o.Generation, taskName(k)), &t)
		found := err == nil && t.Job == o.Job
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Begun{}, err
		}
		switch {
		case via != "" && in.Via == via && found:
			return Begun{Start: Resume, Attempt: k, Task: &t}, nil
		case via != "" && in.Via == via:
			// This delivery's earlier run died before it recorded a task.
			return Begun{Start: Go, Attempt: k}, nil
		case found:
			return Begun{Start: Continued, Attempt: k, Task: &t}, nil
		case now.Sub(in.At) < l.StaleIntent:
			return Begun{Start: InProgress, Attempt: k}, nil
		}
		// A stale intent of another delivery, with no task: try the next.
	}
	return Begun{Start: InProgress, Attempt: n}, nil
}

// Release frees an attempt whose InstallBackupClients call started no task
// for the instance (not ready, throttled, refused), so that the chain's
// next try can reserve it again.
func (l *Ledger) Release(ctx context.Context, o Owner, attempt int) error {
	key := l.key(o.Region, o.Instance, o.Generation, intentName(attempt))
	if err := l.Store.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// RecordTask writes the task an attempt started. It reports false when a
// concurrent delivery of the same message recorded its own task for the
// attempt first: that delivery follows its task, and this one's task is
// left to HBR (it installs the same client).
func (l *Ledger) RecordTask(ctx context.Context, o Owner, t Task) (bool, error) {
	t.Job = o.Job
	if t.LeaseUntil.IsZero() {
		t.LeaseUntil = l.now().Add(l.Lease)
	}
	return l.create(ctx, l.key(o.Region, o.Instance, o.Generation, taskName(t.Attempt)), t)
}

// Finished is Finish's answer.
type Finished struct {
	// Written: this call created the final record.
	Written bool
	// Stored is the final record that was there already (Written false).
	Stored *Final
	// SupersededBy names the owner of a later generation that took the
	// instance over (the record was not written).
	SupersededBy string
}

// Finish writes the generation's final record, unless one exists (then it
// returns it) or, once the owner's lease has passed, a later generation
// took the instance over (then it writes nothing).
func (l *Ledger) Finish(ctx context.Context, o Owner, f Final) (Finished, error) {
	if !o.LeaseUntil.IsZero() && l.now().After(o.LeaseUntil) {
		st, err := l.Load(ctx, o.Region, o.Instance)
		if err != nil {
			return Finished{}, err
		}
		if st.Generation > o.Generation {
			return Finished{SupersededBy: st.Claim.Job}, nil
		}
	}
	f.Instance, f.Region, f.Generation, f.Job = o.Instance, o.Region, o.Generation, o.Job
	if f.At.IsZero() {
		f.At = l.now()
	}
	key := l.key(o.Region, o.Instance, o.Generation, "final")
	ok, err := l.create(ctx, key, f)
	if err != nil || ok {
		return Finished{Written: ok}, err
	}
	var stored Final
	if err := l.get(ctx, key, &stored); err != nil {
		return Finished{}, err
	}
	if stored.Job != o.Job && o.Generation < MaxGeneration {
		// The record of an earlier claim of this generation, whose claim
		// entry expired before it: this owner's record goes to the next
		// generation, superseding the lingering one.
		next := o
		next.Generation, next.Supersedes, next.LeaseUntil = o.Generation+1, stored.Ref(), time.Time{}
		c := Claim{Instance: o.Instance, Region: o.Region, Generation: next.Generation, Job: o.Job, At: l.now(),
			LeaseUntil: l.now().Add(l.Lease), Supersedes: stored.Ref(), Via: f.Via,
			Reason: fmt.Sprintf("generation %d holds the record of an earlier, expired claim (%s)", o.Generation, stored.Ref())}
		ok, err := l.create(ctx, l.key(o.Region, o.Instance, next.Generation, "claim"), c)
		if err != nil {
			return Finished{}, err
		}
		if !ok {
			var cur Claim
			if err := l.get(ctx, l.key(o.Region, o.Instance, next.Generation, "claim"), &cur); err != nil {
				return Finished{}, err
			}
			if cur.Job != o.Job {
				return Finished{SupersededBy: cur.Job}, nil
			}
		}
		f.Supersedes = stored.Ref()
		return l.Finish(ctx, next, f)
	}
	return Finished{Stored: &stored}, nil
}

// create writes v at key unless an entry is there; false when one is.
func (l *Ledger) create(ctx context.Context, key string, v any) (bool, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return false, fault.Wrap("ledger.create", fault.Invalid, "", fmt.Errorf("encode %s: %w", key, err))
	}
	switch err := l.Store.Create(ctx, key, body); {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrExists):
		return false, nil
	default:
		return false, fmt.Errorf("create %s: %w", key, err)
	}
}

// get reads and decodes the entry at key; an entry that does not decode is
// an Invalid error naming the key.
func (l *Ledger) get(ctx context.Context, key string, v any) error {
	body, err := l.Store.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fault.Invalidf("ledger.get", "ledger entry %s is not readable (%d bytes): %v", key, len(body), err)
	}
	return nil
}

// Summary is one instance as a scan of the region's keys sees it, without
// reading any entry.
type Summary struct {
	Instance   string
	Generation int
	// Final reports whether the latest generation has a final record.
	Final bool
}

// Scan lists the region's keys, a page at a time, and calls visit once per
// instance, in instance id order, with what the keys alone say; an error
// from visit stops the scan. It costs one listing call per 1000 keys.
func (l *Ledger) Scan(ctx context.Context, region string, visit func(Summary) error) error {
	prefix := l.RegionPrefix(region)
	var cur Summary
	flush := func() error {
		if cur.Instance == "" || cur.Generation == 0 {
			return nil
		}
		return visit(cur)
	}
	after := ""
	for {
		keys, more, err := l.Store.List(ctx, prefix, after, 1000)
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, k := range keys {
			id, rest, ok := strings.Cut(strings.TrimPrefix(k, prefix), "/")
			if !ok {
				continue
			}
			g, name, ok := parseKey(rest)
			if !ok {
				continue
			}
			if id != cur.Instance {
				if err := flush(); err != nil {
					return err
				}
				cur = Summary{Instance: id}
			}
			switch {
			case name == "claim" && g > cur.Generation:
				cur.Generation, cur.Final = g, false
			case name == "final" && g >= cur.Generation:
				// A final record whose claim expired stands for it.
				cur.Generation, cur.Final = g, true
			}
		}
		if !more || len(keys) == 0 {
			break
		}
		after = keys[len(keys)-1]
	}
	return flush()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown trigger"
	}
	return s
}
