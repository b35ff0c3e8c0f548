// Package install is the install step: it turns a set of instances into
// InstallBackupClients calls of at most 20 ids, and each instance's answer
// into either a poll message for the new task, a delayed install-retry
// message (not ready yet, or a transient error), or a final outcome.
//
// The Service makes the HBR (and ECS) calls but logs nothing and sends
// nothing itself: it returns a [Result] with the outcomes, the follow-up
// messages and the jobs that joined another's install, and the caller
// (package handler) delivers them. The one exception is the poll message of
// a task just created, which it hands at once to the caller's Started hook
// when one is set, so that no task is left unfollowed by a process that
// dies later in the batch. It never returns an error: every failure is
// turned into a retry message or an outcome.
//
// Install once, record once: jobs for one instance in a batch elect one
// owner (the others join it), and a job that finds a client its launch
// created joins that install instead of making a second one; retries fall
// on a grid common to every job (Policy.Align), so a launch's jobs that
// cannot install yet meet in a batch and merge.
package install

import (
	"context"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
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
)

// Installer starts install tasks and lists the clients already there
// (hbr.Client satisfies it).
type Installer interface {
	InstallBackupClients(ctx context.Context, instanceIDs []string) (hbr.InstallResult, error)
	DescribeBackupClients(ctx context.Context, instanceIDs []string) ([]hbr.BackupClient, error)
}

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
	// CoalesceDelay > 0 defers new instances by that long so installs from
	// many events share calls.
	CoalesceDelay time.Duration
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
	}
}

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
// (MNS delays are whole seconds). Two jobs for one instance that wait on
// the grid are due at the same tick and so meet in one poller batch, where
// one of them takes over the other (see elect): a launch's two or three
// chains become one even when none of them can install (not ready,
// throttled), and end with one record. With ReadinessDelay ≤ 0, d is
// returned as it is.
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

// Next is a message to send and the delay before it is delivered.
type Next struct {
	Message job.Message
	Delay   time.Duration
}

// Result is what a step decided: final outcomes, follow-up messages, and the
// jobs that joined another job's install instead of recording an outcome.
type Result struct {
	Outcomes []outcome.Record
	Next     []Next
	Joined   []outcome.Join
}

// Merge appends o to r.
func (r *Result) Merge(o Result) {
	r.Outcomes = append(r.Outcomes, o.Outcomes...)
	r.Next = append(r.Next, o.Next...)
	r.Joined = append(r.Joined, o.Joined...)
}

// Service runs the install step.
type Service struct {
	// HBR returns the installer for a region.
	HBR func(ctx context.Context, region string) (Installer, error)
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
	// Started, when set, is given each poll message as soon as its install
	// task is created, to queue it at once: a process that dies between an
	// InstallBackupClients call and the end of its batch would otherwise
	// leave the task followed by nobody (its redelivered batch finds the
	// client and joins it). A message it queued (nil error) is left out of
	// the Result; one it could not is returned there like any other.
	Started func(ctx context.Context, n Next) error
	// Reinstall lists the client statuses an operator sets (STOPPED,
	// DEACTIVATED, UNINSTALLING, UNINSTALL_FAILED) that are installed over
	// anyway; by default an instance in one of them ends as SKIPPED naming
	// the status.
	Reinstall map[string]bool
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

// Defer schedules instances for an install attempt after delay without
// calling HBR now: the readiness-retry path for instances that cannot be
// running yet, and the coalescing path. The delay is capped by the earliest
// readiness deadline.
func (s *Service) Defer(region string, instances []job.Instance, delay time.Duration) Result {
	var res Result
	now := s.now()
	for _, chunk := range job.Chunk(instances, job.MaxInstances) {
		d := max(min(delay, untilEarliest(chunk, now)), time.Second)
		res.Next = append(res.Next, s.retryMessage(region, chunk, 0, "", d, now))
	}
	return res
}

// Install calls InstallBackupClients for instances (all in region) in calls of
// at most 20 ids. retries is the number of consecutive transient failures that
// led here (it grows the back-off if this call fails transiently too).
// Instances whose readiness deadline has passed before the call end here.
// Every non-success outcome is confirmed against the instance's client
// before it is returned (see Confirm).
func (s *Service) Install(ctx context.Context, region string, instances []job.Instance, retries int) Result {
	res := s.install(ctx, region, instances, retries)
	if s.Audit {
		return res
	}
	byKey := make(map[string]job.Instance, len(instances))
	for _, in := range instances {
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
	var live []job.Instance
	for _, in := range instances {
		if !now.Before(in.ReadyBy) && (in.NotReady > 0 || in.LastCode != "") {
			res.Outcomes = append(res.Outcomes, s.expired(region, in))
			continue
		}
		live = append(live, in)
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
	for _, c := range groupByID(live) {
		res.Merge(s.process(ctx, cl, region, c, retries))
	}
	return res
}

// process runs one chunk through the checks, in order: one owner per
// instance (the other jobs join it), scope (ECS), Cloud Assistant readiness
// (ECS), an existing client (HBR), then the install, or in audit mode the
// readiness check that decides WOULD_INSTALL. Each check takes its
// instances out of the chunk.
func (s *Service) process(ctx context.Context, cl Installer, region string, c chunk, retries int) Result {
	var res Result
	c, res.Joined = elect(region, c)
	if !s.Scope.Empty() || s.Audit {
		var done Result
		c, done = s.inScope(ctx, region, c, retries)
		res.Merge(done)
	}
	if len(c.ids) > 0 && !s.Audit && s.ECS != nil {
		var done Result
		c, done = s.ready(ctx, region, c, retries)
		res.Merge(done)
	}
	if len(c.ids) > 0 {
		var done Result
		c, done = s.existing(ctx, cl, region, c, retries)
		res.Merge(done)
	}
	if len(c.ids) == 0 {
		return res
	}
	if s.Audit {
		res.Merge(s.wouldInstall(ctx, region, c, retries))
		return res
	}
	res.Merge(s.installChunk(ctx, cl, region, c, retries, true))
	return res
}

// elect keeps one job per instance: the owner, which alone installs and
// records the outcome. The others (two or three events announcing the same
// instance, handled in one invocation) join it without a record of their
// own. The owner is the job furthest along (most install attempts), then the
// one announced first, then the smallest job id, so every copy of a batch
// elects the same one. Copies of the owner itself (a message delivered twice)
// are dropped silently.
func elect(region string, c chunk) (chunk, []outcome.Join) {
	var joined []outcome.Join
	for _, id := range c.ids {
		jobs := c.jobs[id]
		if len(jobs) < 2 {
			continue
		}
		owner := jobs[0]
		readyBy := owner.ReadyBy
		for _, in := range jobs[1:] {
			if ownsBefore(in, owner) {
				owner = in
			}
			if in.ReadyBy.After(readyBy) {
				readyBy = in.ReadyBy
			}
		}
		// The owner carries the latest readiness deadline of the jobs it
		// takes over: the instance was announced as late as that.
		owner.ReadyBy = readyBy
		for _, in := range jobs {
			if in.JobID == owner.JobID {
				continue
			}
			joined = append(joined, outcome.Join{JobID: in.JobID, InstanceID: id, Region: region, Owner: owner.JobID,
				OriginEventID: in.OriginEventID, Reason: "another job for the same instance is handled in the same batch"})
		}
		c.jobs[id] = []job.Instance{owner}
	}
	return c, joined
}

func ownsBefore(a, b job.Instance) bool {
	if a.Attempts != b.Attempts {
		return a.Attempts > b.Attempts
	}
	ta, tb := announced(a), announced(b)
	if !ta.Equal(tb) {
		return ta.Before(tb)
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

// chunk is up to 20 distinct instance ids; each id may belong to several jobs
// (two events announcing the same instance).
type chunk struct {
	ids  []string
	jobs map[string][]job.Instance
}

func (c chunk) all() []job.Instance {
	var out []job.Instance
	for _, id := range c.ids {
		out = append(out, c.jobs[id]...)
	}
	return out
}

func groupByID(instances []job.Instance) []chunk {
	var ids []string
	jobs := map[string][]job.Instance{}
	for _, in := range instances {
		if _, ok := jobs[in.ID]; !ok {
			ids = append(ids, in.ID)
		}
		jobs[in.ID] = append(jobs[in.ID], in)
	}
	var chunks []chunk
	for len(ids) > 0 {
		n := min(len(ids), job.MaxInstances)
		c := chunk{ids: ids[:n:n], jobs: map[string][]job.Instance{}}
		for _, id := range c.ids {
			c.jobs[id] = jobs[id]
		}
		chunks = append(chunks, c)
		ids = ids[n:]
	}
	return chunks
}

func (s *Service) installChunk(ctx context.Context, cl Installer, region string, c chunk, retries int, split bool) Result {
	var res Result
	now := s.now()
	out, err := cl.InstallBackupClients(ctx, c.ids)
	if err != nil {
		code := fault.CodeOf(err)
		switch {
		case (isNotReadyCode(code) || code == CodeInstanceNotExists) && len(c.ids) > 1 && split:
			// The call failed as a whole because of some instance: ask ECS
			// once which are usable and install those once more, so one bad
			// instance cannot hold the others back (at most two calls more
			// per chunk, never a cascade).
			return s.splitChunk(ctx, cl, region, c, retries, code)
		case isNotReadyCode(code):
			return s.wait(region, c.all(), code, now)
		case code == CodeInstanceNotExists && len(c.ids) > 1:
			// Still refused as a whole after the split: which one is gone is
			// unknown, so they are all looked at again (GONE at the deadline
			// if ECS never lists them).
			return s.wait(region, c.all(), CodeInstanceNotFound, now)
		case code == CodeInstanceNotExists:
			for _, in := range c.all() {
				res.Outcomes = append(res.Outcomes, record(region, in, outcome.Gone, code, "instance does not exist", ""))
			}
			return res
		case fault.Is(err, fault.Retryable) || fault.IsContext(err):
			return s.transient(region, c.all(), retries+1, code, now)
		default:
			for _, in := range c.all() {
				r := record(region, in, outcome.Failed, code, "InstallBackupClients refused the call: "+orUnknown(code), "")
				r.Detail = err.Error()
				res.Outcomes = append(res.Outcomes, r)
			}
			return res
		}
	}

	statuses := map[string]hbr.InstanceStatus{}
	for _, st := range out.Statuses {
		statuses[st.InstanceID] = st
	}
	var started, notReady []job.Instance
	lastCode := ""
	for _, id := range c.ids {
		st, listed := statuses[id]
		code := st.ErrorCode
		for _, in := range c.jobs[id] {
			switch {
			case code == "" && (st.Valid || !listed) && out.TaskID != "":
				in.Attempts++
				in.NotReady = 0
				started = append(started, in)
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
		}
	}
	if len(notReady) > 0 {
		res.Merge(s.wait(region, notReady, lastCode, now))
	}
	// One poll message per 20 instances: a chunk holds one job per
	// instance, but the message limit must hold whatever the caller passed.
	for _, part := range job.Chunk(started, job.MaxInstances) {
		n := Next{
			Message: job.Message{
				Version:       job.Version,
				Kind:          job.KindPoll,
				Region:        region,
				TaskID:        out.TaskID,
				TaskStartedAt: now,
				Deadline:      now.Add(s.Policy.TaskTimeout + s.Policy.DeadlineMargin),
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
func (s *Service) splitChunk(ctx context.Context, cl Installer, region string, c chunk, retries int, code string) Result {
	now := s.now()
	if s.ECS == nil {
		return s.wait(region, c.all(), code, now)
	}
	inv, err := s.ECS(ctx, region)
	usable := map[string]bool{}
	if err == nil {
		if code == CodeInstanceNotExists {
			var found []ecs.Instance
			found, err = inv.DescribeInstances(ctx, c.ids)
			for _, e := range found {
				usable[e.ID] = true
			}
		} else {
			usable, err = inv.CloudAssistantReady(ctx, c.ids)
		}
	}
	if err != nil {
		return s.wait(region, c.all(), code, now)
	}
	var res Result
	next := chunk{jobs: map[string][]job.Instance{}}
	var waiting []job.Instance
	for _, id := range c.ids {
		if usable[id] {
			next.ids = append(next.ids, id)
			next.jobs[id] = c.jobs[id]
			continue
		}
		waiting = append(waiting, c.jobs[id]...)
	}
	waitCode := code
	if code == CodeInstanceNotExists {
		waitCode = CodeInstanceNotFound
	}
	if len(waiting) > 0 {
		res.Merge(s.wait(region, waiting, waitCode, now))
	}
	if len(next.ids) > 0 {
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
	}
}

// Record builds an outcome record for an instance; exported for the poll step.
func Record(region string, in job.Instance, k outcome.Kind, code, reason, taskID, clientID string) outcome.Record {
	r := record(region, in, k, code, reason, taskID)
	r.ClientID = clientID
	return r
}
