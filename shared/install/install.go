// Package install is the install step, the install function's domain: it
// claims the instances that events (and reconcile sweeps) announce in the
// instance ledger, and for the instances it owns runs the checks (scope,
// Cloud Assistant readiness, an existing client) and InstallBackupClients in
// calls of at most 20 ids, each attempt reserved in the ledger before the
// call and its task recorded after. Each instance ends the step with a poll
// message for its task (first poll after Policy.FirstPollDelay), a delayed
// install-retry message (not ready yet, a transient error, a client someone
// else is installing), or a final outcome.
//
// The Service makes the HBR, ECS and ledger calls but logs nothing and
// sends nothing itself: it returns a [Result] with the outcomes, the
// follow-up messages, the announcements that joined another owner, and
// what it could not act on; the caller (package handler) records and sends
// them. The one exception is the poll message of a task just recorded,
// which it hands at once to the caller's Started hook when one is set, so
// that no task is left unfollowed by a process that dies later in the
// batch. It returns no error: a ledger the claim cannot reach is reported
// in Result.Failed for the invocation to fail (nothing is installed without
// a claim), and every other failure becomes a retry message or an outcome.
package install

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecsevent"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fanout"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/scope"
)

// HBR error codes this step acts on, per instance or as the call's error.
const (
	CodeInstanceNotRunning = "InstanceNotRunning"
	CodeCloudAssistDown    = "CloudAssistNotRunningOnInstance"
	CodeInstanceNotExists  = "InstanceNotExists"
	// CodeDeadline marks an install that did not finish before its job's
	// deadline.
	CodeDeadline = "Deadline"
	// CodeAttemptInProgress marks a chain that found another delivery of
	// its job installing the same attempt: it looks again after the
	// readiness delay (by then that delivery has recorded its task, or
	// died and left its intent to go stale).
	CodeAttemptInProgress = "AttemptInProgress"
)

// Installer starts install tasks and lists the clients already there
// (hbr.Client satisfies it).
type Installer interface {
	InstallBackupClients(ctx context.Context, instanceIDs []string) (hbr.InstallResult, error)
	DescribeBackupClients(ctx context.Context, instanceIDs []string) ([]hbr.BackupClient, error)
}

// Ledger is what the step needs of the instance ledger (*ledger.Ledger
// satisfies it).
type Ledger interface {
	Claim(ctx context.Context, a ledger.Announcement) (ledger.Decision, error)
	Load(ctx context.Context, region, instance string) (ledger.State, error)
	Begin(ctx context.Context, o ledger.Owner, n int, via string) (ledger.Begun, error)
	Release(ctx context.Context, o ledger.Owner, attempt int) error
	RecordTask(ctx context.Context, o ledger.Owner, t ledger.Task) (bool, error)
}

// TriggerSweep names a reconcile sweep's announcements in the ledger.
const TriggerSweep = "reconcile"

// CodeClientInstalling marks an instance whose client another task is
// installing: it is checked again later instead of installed twice. Other
// transitional statuses wait with "Client" + the status in camel case
// (ClientUpgrading, ClientRegistered).
const CodeClientInstalling = "ClientInstalling"

// Policy holds the timing and retry rules.
type Policy struct {
	FirstPollDelay     time.Duration
	PollInterval       time.Duration
	TaskTimeout        time.Duration
	DeadlineMargin     time.Duration
	ReadinessTimeout   time.Duration
	ReadinessDelay     time.Duration
	ReadinessDelayStep time.Duration
	RetryBaseDelay     time.Duration
	RetryMaxDelay      time.Duration
	MaxAttempts        int
	// CoalesceDelay > 0 defers instances an event says are ready by that
	// long, so that installs from many events share calls; 0 installs them
	// in the invocation that received the event.
	CoalesceDelay time.Duration
	// Lease is how long a ledger claim or task holds an instance without
	// progress (ledger.Ledger.Lease); StaleIntent how long an install
	// intent without a task stands (ledger.Ledger.StaleIntent).
	Lease, StaleIntent time.Duration
}

// PolicyFrom takes the policy from the configuration.
func PolicyFrom(c config.Config) Policy {
	return Policy{
		FirstPollDelay:     c.FirstPollDelay,
		PollInterval:       c.PollInterval,
		TaskTimeout:        c.TaskTimeout,
		DeadlineMargin:     c.DeadlineMargin,
		ReadinessTimeout:   c.ReadinessTimeout,
		ReadinessDelay:     c.ReadinessDelay,
		ReadinessDelayStep: c.ReadinessDelayStep,
		RetryBaseDelay:     c.RetryBaseDelay,
		RetryMaxDelay:      c.RetryMaxDelay,
		MaxAttempts:        c.MaxInstallAttempts,
		CoalesceDelay:      c.CoalesceDelay,
		Lease:              c.LedgerLease,
		StaleIntent:        StaleIntent(c.APITimeout),
	}
}

// StaleIntent is how long an install intent without a task stands: three
// API timeouts, more than the install call and the ledger write around it
// can take.
func StaleIntent(apiTimeout time.Duration) time.Duration { return 3 * apiTimeout }

// Backoff is the delay after the n-th consecutive transient failure (n ≥ 1):
// RetryBaseDelay doubled each time, capped at RetryMaxDelay.
func (p Policy) Backoff(n int) time.Duration {
	d := p.RetryBaseDelay
	for i := 1; i < n && d < p.RetryMaxDelay; i++ {
		d *= 2
	}
	return min(d, p.RetryMaxDelay)
}

// Align stretches a retry delay d to the next tick of a grid common to every
// job: multiples of ReadinessDelay since the Unix epoch, in whole seconds
// (MNS delays are whole seconds). Retries of many launches that fall due
// together reach the install function in the same batches and share
// InstallBackupClients calls. With ReadinessDelay ≤ 0, d is returned as it
// is.
func (p Policy) Align(now time.Time, d time.Duration) time.Duration {
	g := p.ReadinessDelay.Truncate(time.Second)
	if g <= 0 {
		return d
	}
	at := now.Add(d)
	if rem := at.UnixNano() % int64(g); rem != 0 {
		at = at.Add(g - time.Duration(rem))
	}
	out := at.Sub(now)
	if frac := out % time.Second; frac != 0 {
		out += time.Second - frac
	}
	return out
}

// ReadinessWait is the delay before the n-th readiness retry (n ≥ 1):
// ReadinessDelay, then ReadinessDelayStep more each time (0 by default, so
// that every retry is due on the grid of Align).
func (p Policy) ReadinessWait(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	return p.ReadinessDelay + time.Duration(n-1)*p.ReadinessDelayStep
}

// Next is a message to send and the delay before it is delivered. Its
// kind decides the queue: install-retry messages go to the install queue,
// the others to the job queue.
type Next struct {
	Message job.Message
	Delay   time.Duration
}

// Drop is a chain that ends without a record because another delivery of
// the same job carries the instance on (or its generation is recorded or
// taken over already).
type Drop struct {
	Region   string
	Instance job.Instance
	Reason   string
}

// Rejected is an instance the step cannot act on for good: an unreadable
// ledger entry. It is for the dead-letter queue, with the reason.
type Rejected struct {
	Region   string
	Instance job.Instance
	Err      error
}

// Result is what a step decided: final outcomes, follow-up messages, the
// announcements that joined another owner, the chains that end here, the
// instances rejected, and the failures the invocation must return.
type Result struct {
	Outcomes []outcome.Record
	Next     []Next
	Joined   []outcome.Join
	Dropped  []Drop
	Invalid  []Rejected
	// Failed holds the errors for which the invocation must fail, so that
	// the platform delivers its input again (a claim the ledger could not
	// make; nothing was installed for those instances).
	Failed []error
}

// Merge appends o to r.
func (r *Result) Merge(o Result) {
	r.Outcomes = append(r.Outcomes, o.Outcomes...)
	r.Next = append(r.Next, o.Next...)
	r.Joined = append(r.Joined, o.Joined...)
	r.Dropped = append(r.Dropped, o.Dropped...)
	r.Invalid = append(r.Invalid, o.Invalid...)
	r.Failed = append(r.Failed, o.Failed...)
}

// ledgerError files an error of a ledger call for in: an unreadable entry
// is rejected (dead-lettered), anything else fails the invocation so the
// platform delivers the input again.
func (r *Result) ledgerError(region string, in job.Instance, err error) {
	if fault.Is(err, fault.Invalid) {
		r.Invalid = append(r.Invalid, Rejected{Region: region, Instance: in, Err: err})
		return
	}
	r.Failed = append(r.Failed, fmt.Errorf("instance ledger, instance %s (job %s): %w", in.ID, in.JobID, err))
}

// Service runs the install step.
type Service struct {
	// HBR returns the installer for a region.
	HBR func(ctx context.Context, region string) (Installer, error)
	// Ledger is the instance ledger.
	Ledger Ledger
	// Policy holds the timing and retry rules.
	Policy Policy
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Jitter spreads a back-off delay; nil means none.
	Jitter func(time.Duration) time.Duration
	// Scope are the include/exclude rules; when they are not empty, or in
	// audit mode, ECS describes each instance before anything else.
	Scope scope.Rules
	// Audit makes the step install nothing: an instance in scope, without a
	// client and ready ends as WOULD_INSTALL.
	Audit bool
	// ECS returns the inventory for a region. With Scope or Audit it is
	// required; otherwise, when set, Cloud Assistant's readiness is checked
	// in ECS before HBR is asked, so that instances announced before their
	// agent is up cost no HBR calls.
	ECS func(ctx context.Context, region string) (Inventory, error)
	// Started, when set, is given each poll message as soon as its tasks
	// are recorded, to queue it at once. A message it queued (nil error) is
	// left out of the Result; one it could not is returned there like any
	// other.
	Started func(ctx context.Context, n Next) error
	// Reinstall lists the client statuses an operator sets (STOPPED,
	// DEACTIVATED, UNINSTALLING, UNINSTALL_FAILED) that are installed over
	// anyway; by default an instance in one of them ends as SKIPPED naming
	// the status.
	Reinstall map[string]bool
	// Chunks bounds the install calls (of up to 20 instances each) made at
	// once (fanout.DefaultWorkers for 0). The Installer, Ledger and
	// Started must then be safe for concurrent use.
	Chunks int
	// Workers bounds the ledger calls made at once (fanout.DefaultWorkers
	// when 0).
	Workers int
}

// Inventory describes instances (ecs.Client satisfies it).
type Inventory interface {
	DescribeInstances(ctx context.Context, ids []string) ([]ecs.Instance, error)
	CloudAssistantReady(ctx context.Context, ids []string) (map[string]bool, error)
}

// CodeInstanceNotFound marks an instance ECS does not list (yet): it is
// looked at again until the readiness deadline, then ends as GONE.
const CodeInstanceNotFound = "InstanceNotFound"

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Owner is the ledger owner an instance of a job message stands for.
func Owner(region string, in job.Instance) ledger.Owner {
	return ledger.Owner{Region: region, Instance: in.ID, Job: in.JobID, Generation: in.Generation,
		LeaseUntil: in.LeaseUntil, Supersedes: in.Supersedes}
}

// own marks in as the owner of the decision's generation.
func own(in job.Instance, o ledger.Owner) job.Instance {
	in.Generation, in.LeaseUntil, in.Supersedes = o.Generation, o.LeaseUntil, o.Supersedes
	return in
}

// Announce claims instances that an event or a sweep announces (generation
// 0), all in region. Another owner's instances are joined; a redelivered
// owner resumes its chain; owned instances are installed now when the
// announcement says they are ready (after Policy.CoalesceDelay when it is
// set), and otherwise wait for the readiness delay on the install queue. A
// takeover follows the dead chain's task instead of installing again.
func (s *Service) Announce(ctx context.Context, region string, ins []job.Instance, ready bool) Result {
	var res Result
	ins = dedupe(ins)
	decisions := make([]ledger.Decision, len(ins))
	errs := make([]error, len(ins))
	fanout.Each(len(ins), s.Workers, func(i int) {
		in := ins[i]
		trigger := in.Trigger
		if trigger == "" && in.Sweep {
			trigger = TriggerSweep
		}
		decisions[i], errs[i] = s.Ledger.Claim(ctx, ledger.Announcement{Region: region, Instance: in.ID, Job: in.JobID,
			Trigger: trigger, OriginEventID: in.OriginEventID, EventTime: announced(in), Sweep: in.Sweep, Via: in.Via,
			Follower: trigger == string(ecsevent.TriggerRunning) || trigger == string(ecsevent.TriggerHeartbeat)})
	})
	var now, later []job.Instance
	for i, in := range ins {
		d, err := decisions[i], errs[i]
		if err != nil {
			res.ledgerError(region, in, err)
			continue
		}
		switch d.Kind {
		case ledger.Joined:
			res.Joined = append(res.Joined, outcome.Join{JobID: in.JobID, InstanceID: in.ID, Region: region,
				OriginEventID: in.OriginEventID, Owner: d.Owner.Job, Generation: d.Owner.Generation,
				State: d.State.Describe(), Reason: d.Reason})
			if n, ok := s.nudge(region, in, d.State); ok {
				res.Next = append(res.Next, n)
			}
			continue
		case ledger.Recorded:
			res.Merge(s.recorded(region, own(in, d.Owner), d.State))
			continue
		}
		in = own(in, d.Owner)
		st := d.State
		task := st.OwnTask()
		switch {
		case d.Inherit != nil:
			// A takeover: the dead chain's task may have installed the
			// client; following it costs no install.
			in.Attempts = d.Inherit.Attempt
			res.Next = append(res.Next, s.follow(region, in, *d.Inherit))
		case d.Kind == ledger.Resumed && task != nil && task.Via == in.Via:
			// This very delivery recorded the task before it died (or
			// failed later): follow the task again.
			in.Attempts = task.Attempt
			res.Next = append(res.Next, s.follow(region, in, *task))
		case d.Kind == ledger.Resumed && task != nil:
			res.Dropped = append(res.Dropped, Drop{Region: region, Instance: in,
				Reason: fmt.Sprintf("another delivery of this job follows task %s", task.TaskID)})
		case d.Kind == ledger.Resumed && st.Intents > 0, ready && s.Policy.CoalesceDelay <= 0:
			now = append(now, in)
		default:
			later = append(later, in)
		}
	}
	if len(now) > 0 {
		res.Merge(s.Install(ctx, region, now, 0))
	}
	if len(later) > 0 {
		wait := s.Policy.Align(s.now(), s.Policy.ReadinessWait(1))
		if ready {
			wait = s.Policy.CoalesceDelay
		}
		res.Merge(s.Defer(region, later, wait))
	}
	return res
}

// nudge is what a join does for an owner that waits for the instance to
// become ready, when the joining announcement is Cloud Assistant's first
// heartbeat (the instance is ready now): a message that takes the owner's
// chain on (its job, its generation) after Policy.CoalesceDelay (at least a
// second) instead of at its next readiness tick, up to READINESS_DELAY
// later. The install queue's batch window gathers the heartbeats of many
// instances into shared install calls. The owner's own retry, when it
// comes, finds the install started and ends.
func (s *Service) nudge(region string, in job.Instance, st ledger.State) (Next, bool) {
	if in.Trigger != string(ecsevent.TriggerHeartbeat) || st.Claim == nil || st.Final != nil || st.Intents > 0 || st.Tasks > 0 {
		return Next{}, false
	}
	c := st.Claim
	owner := job.Instance{ID: in.ID, JobID: c.Job, OriginEventID: c.OriginEventID, EventTime: c.EventTime, FirstSeen: c.At,
		ReadyBy: c.At.Add(s.Policy.ReadinessTimeout), Generation: st.Generation, LeaseUntil: st.LeaseUntil(),
		Supersedes: c.Supersedes, Trigger: c.Trigger}
	if !s.now().Before(owner.ReadyBy) {
		return Next{}, false // the owner's own retry ends it
	}
	return s.retryMessage(region, []job.Instance{owner}, 0, "", max(s.Policy.CoalesceDelay, time.Second), s.now()), true
}

// recorded handles an announcement by the job whose generation is recorded
// already. When this very delivery wrote the record, it may have died
// before it logged it: the record goes through the recorder again (the
// ledger keeps it as it was); otherwise nothing is left to do.
func (s *Service) recorded(region string, in job.Instance, st ledger.State) Result {
	var res Result
	f := st.Final
	if f != nil && in.Via != "" && f.Via == in.Via {
		res.Outcomes = append(res.Outcomes, FromFinal(region, in, *f))
		return res
	}
	res.Dropped = append(res.Dropped, Drop{Region: region, Instance: in, Reason: "this job's generation is recorded already: " + st.Describe()})
	return res
}

// FromFinal is the outcome record of a final ledger entry, for an instance
// of its job.
func FromFinal(region string, in job.Instance, f ledger.Final) outcome.Record {
	r := record(region, in, outcome.Kind(f.Outcome), f.Code, f.Reason, f.TaskID)
	r.ClientID, r.PolicyID, r.Detail, r.Attempts, r.Supersedes = f.ClientID, f.PolicyID, f.Detail, f.Attempts, f.Supersedes
	return r
}

// follow is the poll message that takes an owner's chain on from a task
// recorded in the ledger: due at the first poll, or at once if that is
// past. A task past its deadline is judged at once (TIMEOUT, unless its
// client turns out ACTIVATED).
func (s *Service) follow(region string, in job.Instance, t ledger.Task) Next {
	now := s.now()
	if t.LeaseUntil.After(in.LeaseUntil) {
		in.LeaseUntil = t.LeaseUntil
	}
	in.TaskID = ""
	delay := max(t.StartedAt.Add(s.Policy.FirstPollDelay).Sub(now), time.Second)
	return Next{Message: job.Message{Version: job.Version, Kind: job.KindPoll, Region: region, TaskID: t.TaskID,
		TaskStartedAt: t.StartedAt, Deadline: t.Deadline, OriginEventID: in.OriginEventID,
		Instances: []job.Instance{in}, SentAt: now}, Delay: delay}
}

// Defer schedules owned instances for an install attempt after delay
// without calling HBR now: the readiness-retry path for instances that
// cannot be running yet, and the coalescing path. The delay is capped by
// the earliest readiness deadline.
func (s *Service) Defer(region string, instances []job.Instance, delay time.Duration) Result {
	var res Result
	now := s.now()
	for _, chunk := range job.Chunk(instances, job.MaxInstances) {
		d := max(min(delay, untilEarliest(chunk, now)), time.Second)
		res.Next = append(res.Next, s.retryMessage(region, chunk, 0, "", d, now))
	}
	return res
}

// Install runs owned instances (generation > 0; announcements of generation
// 0 are claimed first, as by Announce) of region through the checks and
// InstallBackupClients, in calls of at most 20 ids. retries is the number of
// consecutive transient failures that led here (it grows the back-off if
// this call fails transiently too). Instances whose readiness deadline has
// passed end here; an owner whose lease has passed first checks that no
// later generation took the instance over.
func (s *Service) Install(ctx context.Context, region string, instances []job.Instance, retries int) Result {
	var res Result
	var claim, owned []job.Instance
	for _, in := range dedupe(instances) {
		if in.Generation == 0 {
			claim = append(claim, in)
		} else {
			owned = append(owned, in)
		}
	}
	if len(claim) > 0 {
		res.Merge(s.Announce(ctx, region, claim, true))
	}
	if len(owned) == 0 {
		return res
	}
	res.Merge(s.install(ctx, region, owned, retries))
	if s.Audit {
		return res
	}
	// A failure verdict is checked against the instance's client before it
	// is recorded: the client may be ACTIVATED after all.
	byKey := make(map[string]job.Instance, len(owned))
	for _, in := range owned {
		byKey[in.JobID+"/"+in.ID] = in
	}
	var keep []outcome.Record
	var fails []Verdict
	for _, r := range res.Outcomes {
		in, ok := byKey[r.JobID+"/"+r.InstanceID]
		if !ok || !r.Outcome.Problem() || r.Outcome == outcome.Gone {
			keep = append(keep, r)
			continue
		}
		fails = append(fails, Verdict{Instance: in, Record: r})
	}
	final, busy := s.Confirm(ctx, region, fails)
	// A verdict whose client another task is installing waits for that task
	// (once: a second time at its end, the verdict stands).
	var await []job.Instance
	for _, v := range busy {
		if v.Instance.LastCode == CodeClientInstalling {
			final = append(final, v.Record)
			continue
		}
		await = append(await, s.awaitOther(v.Instance, s.now()))
	}
	res.Outcomes = append(keep, final...)
	if len(await) > 0 {
		res.Merge(s.wait(region, await, CodeClientInstalling, s.now()))
	}
	return res
}

func (s *Service) install(ctx context.Context, region string, instances []job.Instance, retries int) Result {
	var res Result
	now := s.now()
	var live, stale []job.Instance
	for _, in := range instances {
		switch {
		case !now.Before(in.ReadyBy) && (in.NotReady > 0 || in.LastCode != ""):
			res.Outcomes = append(res.Outcomes, s.expired(region, in))
		case !in.LeaseUntil.IsZero() && now.After(in.LeaseUntil):
			stale = append(stale, in)
		default:
			live = append(live, in)
		}
	}
	if len(stale) > 0 {
		still, r := s.stillOwned(ctx, region, stale)
		res.Merge(r)
		live = append(live, still...)
	}
	if len(live) == 0 {
		return res
	}
	cl, err := s.HBR(ctx, region)
	if err != nil {
		for _, in := range live {
			r := record(region, in, outcome.Failed, "ClientConfig", "cannot build the HBR client", "")
			r.Detail = err.Error()
			res.Outcomes = append(res.Outcomes, r)
		}
		return res
	}
	res.Merge(s.process(ctx, cl, region, live, retries))
	return res
}

// stillOwned reads the ledger for owners whose lease has passed: an owner
// whose generation was taken over, or is recorded, stops; the others go on
// (nobody took over, so the generation is still theirs).
func (s *Service) stillOwned(ctx context.Context, region string, ins []job.Instance) ([]job.Instance, Result) {
	var res Result
	states := make([]ledger.State, len(ins))
	errs := make([]error, len(ins))
	fanout.Each(len(ins), s.Workers, func(i int) { states[i], errs[i] = s.Ledger.Load(ctx, region, ins[i].ID) })
	var keep []job.Instance
	for i, in := range ins {
		st, err := states[i], errs[i]
		switch {
		case err != nil && fault.Is(err, fault.Invalid):
			res.Invalid = append(res.Invalid, Rejected{Region: region, Instance: in, Err: err})
		case err != nil:
			res.Merge(s.transient(region, []job.Instance{in}, 1, orUnknown(fault.CodeOf(err)), s.now()))
		case st.Generation != in.Generation:
			res.Dropped = append(res.Dropped, Drop{Region: region, Instance: in,
				Reason: fmt.Sprintf("generation %d was taken over: %s", in.Generation, st.Describe())})
		case st.Final != nil:
			res.Dropped = append(res.Dropped, Drop{Region: region, Instance: in, Reason: "recorded already: " + st.Describe()})
		default:
			keep = append(keep, in)
		}
	}
	return keep, res
}

// process runs distinct instances through the checks, in order — scope
// (ECS), Cloud Assistant readiness (ECS), an existing client (HBR) — each
// over the whole set in calls as large as the API takes (ECS lists 100 and
// checks 50 a call, HBR describes 100 clients a call), and then installs
// what is left in calls of 20, or in audit mode runs the readiness check
// that decides WOULD_INSTALL. Checking before chunking packs the instances
// that are ready into as few install tasks as possible: every task costs a
// DescribeTask call per poll. Each check takes its instances out of the set.
func (s *Service) process(ctx context.Context, cl Installer, region string, c []job.Instance, retries int) Result {
	var res Result
	if !s.Scope.Empty() || s.Audit {
		var done Result
		c, done = s.inScope(ctx, region, c, retries)
		res.Merge(done)
	}
	if len(c) > 0 && !s.Audit && s.ECS != nil {
		var done Result
		c, done = s.ready(ctx, region, c, retries)
		res.Merge(done)
	}
	var rest []job.Instance
	for start := 0; start < len(c); start += hbr.MaxDescribeIDs {
		part, done := s.existing(ctx, cl, region, c[start:min(start+hbr.MaxDescribeIDs, len(c))], retries)
		res.Merge(done)
		rest = append(rest, part...)
	}
	if len(rest) == 0 {
		return res
	}
	if s.Audit {
		res.Merge(s.wouldInstall(ctx, region, rest, retries))
		return res
	}
	// Chunks are installed side by side: each is a few round trips (the
	// ledger's reservations, the call, the task's record), and a batch of
	// a large launch holds dozens of them.
	chunks := job.Chunk(rest, job.MaxInstances)
	each := make([]Result, len(chunks))
	fanout.Each(len(chunks), s.Chunks, func(i int) { each[i] = s.installChunk(ctx, cl, region, chunks[i], retries, true) })
	for _, r := range each {
		res.Merge(r)
	}
	return res
}

// dedupe keeps one entry per instance: the highest generation, then the
// job furthest along (most attempts, latest readiness deadline). Two
// messages of one chain can meet in a batch (a duplicate delivery, a
// redelivered owner's retry).
func dedupe(ins []job.Instance) []job.Instance {
	idx := map[string]int{}
	var out []job.Instance
	for _, in := range ins {
		i, ok := idx[in.ID]
		if !ok {
			idx[in.ID] = len(out)
			out = append(out, in)
			continue
		}
		if ahead(in, out[i]) {
			out[i] = in
		}
	}
	return out
}

func ahead(a, b job.Instance) bool {
	switch {
	case a.Generation != b.Generation:
		return a.Generation > b.Generation
	case a.Attempts != b.Attempts:
		return a.Attempts > b.Attempts
	case !a.ReadyBy.Equal(b.ReadyBy):
		return a.ReadyBy.After(b.ReadyBy)
	}
	return a.JobID < b.JobID
}

// announced is when the instance was announced to the job: the event's time
// when it could be read, else when the system accepted it.
func announced(in job.Instance) time.Time {
	if !in.EventTime.IsZero() {
		return in.EventTime
	}
	return in.FirstSeen
}

// begin reserves each instance's next attempt in the ledger. It returns
// the instances to install with the attempt reserved for each, and what
// became of the others.
func (s *Service) begin(ctx context.Context, region string, c []job.Instance, retries int) ([]job.Instance, map[string]int, Result) {
	var res Result
	begun := make([]ledger.Begun, len(c))
	errs := make([]error, len(c))
	fanout.Each(len(c), s.Workers, func(i int) {
		begun[i], errs[i] = s.Ledger.Begin(ctx, Owner(region, c[i]), c[i].Attempts+1, c[i].Via)
	})
	now := s.now()
	var install, busy []job.Instance
	attempt := map[string]int{}
	for i, in := range c {
		b, err := begun[i], errs[i]
		if err != nil {
			if fault.Is(err, fault.Invalid) {
				res.Invalid = append(res.Invalid, Rejected{Region: region, Instance: in, Err: err})
				continue
			}
			res.Merge(s.transient(region, []job.Instance{in}, retries+1, orUnknown(fault.CodeOf(err)), now))
			continue
		}
		switch b.Start {
		case ledger.Go:
			install = append(install, in)
			attempt[in.ID] = b.Attempt
		case ledger.Resume:
			in.Attempts = b.Task.Attempt
			res.Next = append(res.Next, s.follow(region, in, *b.Task))
		case ledger.InProgress:
			busy = append(busy, in)
		case ledger.Continued:
			res.Dropped = append(res.Dropped, Drop{Region: region, Instance: in,
				Reason: fmt.Sprintf("another delivery of this job installed attempt %d (task %s) and follows it", b.Attempt, b.Task.TaskID)})
		}
	}
	if len(busy) > 0 {
		res.Merge(s.wait(region, busy, CodeAttemptInProgress, now))
	}
	return install, attempt, res
}

// release frees the reserved attempts of instances whose install call
// started no task (best effort: an intent left behind goes stale).
func (s *Service) release(ctx context.Context, region string, ins []job.Instance, attempt map[string]int) {
	fanout.Each(len(ins), s.Workers, func(i int) {
		_ = s.Ledger.Release(ctx, Owner(region, ins[i]), attempt[ins[i].ID])
	})
}

func (s *Service) installChunk(ctx context.Context, cl Installer, region string, c []job.Instance, retries int, split bool) Result {
	c, attempt, res := s.begin(ctx, region, c, retries)
	if len(c) == 0 {
		return res
	}
	now := s.now()
	ids := make([]string, len(c))
	for i, in := range c {
		ids[i] = in.ID
	}
	out, err := cl.InstallBackupClients(ctx, ids)
	if err != nil {
		s.release(ctx, region, c, attempt)
		code := fault.CodeOf(err)
		switch {
		case (isNotReadyCode(code) || code == CodeInstanceNotExists) && len(c) > 1 && split:
			// The call failed as a whole because of some instance: ask ECS
			// once which are usable and install those once more, so one bad
			// instance cannot hold the others back (at most two calls more
			// per chunk, never a cascade).
			res.Merge(s.splitChunk(ctx, cl, region, c, retries, code))
		case isNotReadyCode(code):
			res.Merge(s.wait(region, c, code, now))
		case code == CodeInstanceNotExists && len(c) > 1:
			// Still refused as a whole after the split: which one is gone is
			// unknown, so they are all looked at again (GONE at the deadline
			// if ECS never lists them).
			res.Merge(s.wait(region, c, CodeInstanceNotFound, now))
		case code == CodeInstanceNotExists:
			for _, in := range c {
				res.Outcomes = append(res.Outcomes, record(region, in, outcome.Gone, code, "instance does not exist", ""))
			}
		case fault.Is(err, fault.Retryable) || fault.IsContext(err):
			res.Merge(s.transient(region, c, retries+1, code, now))
		default:
			for _, in := range c {
				r := record(region, in, outcome.Failed, code, "InstallBackupClients refused the call: "+orUnknown(code), "")
				r.Detail = err.Error()
				res.Outcomes = append(res.Outcomes, r)
			}
		}
		return res
	}

	statuses := map[string]hbr.InstanceStatus{}
	for _, st := range out.Statuses {
		statuses[st.InstanceID] = st
	}
	var started, notStarted, notReady []job.Instance
	lastCode := ""
	for _, in := range c {
		st, listed := statuses[in.ID]
		code := st.ErrorCode
		switch {
		case code == "" && (st.Valid || !listed) && out.TaskID != "":
			started = append(started, in)
			continue
		case code == "" && out.TaskID == "":
			res.Outcomes = append(res.Outcomes, record(region, in, outcome.Failed, "NoTaskId",
				"InstallBackupClients accepted the instance but returned no task id", ""))
		case isNotReadyCode(code):
			lastCode = code
			notReady = append(notReady, in)
		case code == CodeInstanceNotExists:
			res.Outcomes = append(res.Outcomes, record(region, in, outcome.Gone, code, "instance does not exist", ""))
		default:
			if code == "" {
				code = "InvalidInstance"
			}
			res.Outcomes = append(res.Outcomes, record(region, in, outcome.Failed, code,
				"HBR cannot install a client on this instance: "+code, ""))
		}
		notStarted = append(notStarted, in)
	}
	s.release(ctx, region, notStarted, attempt)
	if len(notReady) > 0 {
		res.Merge(s.wait(region, notReady, lastCode, now))
	}
	res.Merge(s.recordTasks(ctx, region, started, attempt, out.TaskID, now))
	return res
}

// recordTasks writes the task of each started instance in the ledger and
// sends one poll message per 20 instances it recorded. An instance whose
// task a concurrent delivery of the same message recorded first is left to
// that delivery (its own task installs the same client).
func (s *Service) recordTasks(ctx context.Context, region string, started []job.Instance, attempt map[string]int, taskID string, now time.Time) Result {
	var res Result
	deadline := now.Add(s.Policy.TaskTimeout + s.Policy.DeadlineMargin)
	lease := now.Add(s.Policy.Lease)
	created := make([]bool, len(started))
	errs := make([]error, len(started))
	fanout.Each(len(started), s.Workers, func(i int) {
		in := started[i]
		created[i], errs[i] = s.Ledger.RecordTask(ctx, Owner(region, in), ledger.Task{Attempt: attempt[in.ID], TaskID: taskID,
			StartedAt: now, Deadline: deadline, LeaseUntil: lease, Via: in.Via})
	})
	var follow []job.Instance
	for i, in := range started {
		switch {
		case errs[i] != nil:
			// The task runs but the ledger does not know it: follow it
			// anyway (the lease is not renewed, and a redelivery may
			// install once more).
			in.LastCode = orUnknown(fault.CodeOf(errs[i]))
		case !created[i]:
			res.Dropped = append(res.Dropped, Drop{Region: region, Instance: in,
				Reason: fmt.Sprintf("a concurrent delivery of this message recorded attempt %d first; task %s installs the same client", attempt[in.ID], taskID)})
			continue
		default:
			in.LeaseUntil = lease
			in.LastCode = ""
		}
		in.Attempts++
		in.NotReady = 0
		follow = append(follow, in)
	}
	for _, part := range job.Chunk(follow, job.MaxInstances) {
		n := Next{
			Message: job.Message{
				Version:       job.Version,
				Kind:          job.KindPoll,
				Region:        region,
				TaskID:        taskID,
				TaskStartedAt: now,
				Deadline:      deadline,
				OriginEventID: part[0].OriginEventID,
				Instances:     part,
				SentAt:        now,
			},
			Delay: s.Policy.FirstPollDelay,
		}
		if s.Started != nil && s.Started(ctx, n) == nil {
			continue // queued already
		}
		res.Next = append(res.Next, n)
	}
	return res
}

// splitChunk handles a call rejected as a whole with a not-ready or
// not-exists code: one ECS call picks the instances that can be installed
// (Cloud Assistant ready, or listed at all), one more install call takes
// them, and the others wait for the readiness delay. Without ECS, or when it
// fails, every instance waits.
func (s *Service) splitChunk(ctx context.Context, cl Installer, region string, c []job.Instance, retries int, code string) Result {
	now := s.now()
	if s.ECS == nil {
		return s.wait(region, c, code, now)
	}
	ids := make([]string, len(c))
	for i, in := range c {
		ids[i] = in.ID
	}
	inv, err := s.ECS(ctx, region)
	usable := map[string]bool{}
	if err == nil {
		if code == CodeInstanceNotExists {
			var found []ecs.Instance
			found, err = inv.DescribeInstances(ctx, ids)
			for _, e := range found {
				usable[e.ID] = true
			}
		} else {
			usable, err = inv.CloudAssistantReady(ctx, ids)
		}
	}
	if err != nil {
		return s.wait(region, c, code, now)
	}
	var res Result
	var next, waiting []job.Instance
	for _, in := range c {
		if usable[in.ID] {
			next = append(next, in)
		} else {
			waiting = append(waiting, in)
		}
	}
	waitCode := code
	if code == CodeInstanceNotExists {
		waitCode = CodeInstanceNotFound
	}
	if len(waiting) > 0 {
		res.Merge(s.wait(region, waiting, waitCode, now))
	}
	if len(next) > 0 {
		res.Merge(s.installChunk(ctx, cl, region, next, retries, false))
	}
	return res
}

func isNotReadyCode(code string) bool {
	return code == CodeInstanceNotRunning || code == CodeCloudAssistDown
}

func orUnknown(code string) string {
	if code == "" {
		return "unknown"
	}
	return code
}

func record(region string, in job.Instance, k outcome.Kind, code, reason, taskID string) outcome.Record {
	return outcome.Record{
		JobID:         in.JobID,
		InstanceID:    in.ID,
		Region:        region,
		Outcome:       k,
		Reason:        strings.TrimSpace(reason),
		Code:          code,
		TaskID:        taskID,
		Attempts:      in.Attempts,
		FirstSeen:     in.FirstSeen,
		OriginEventID: in.OriginEventID,
		Supersedes:    in.Supersedes,
		Generation:    in.Generation,
		LeaseUntil:    in.LeaseUntil,
		Via:           in.Via,
	}
}

// Record builds an outcome record for an instance; exported for the poll step.
func Record(region string, in job.Instance, k outcome.Kind, code, reason, taskID, clientID string) outcome.Record {
	r := record(region, in, k, code, reason, taskID)
	r.ClientID = clientID
	return r
}
