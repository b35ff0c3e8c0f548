package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fanout"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/taskqueue"
)

// sendAttempts bounds in-invocation retries of one send; after that the
// invocation fails and the platform redelivers it.
const sendAttempts = 3

// deliver carries out a step's result, in this order: the announcements
// that joined another owner are logged ("joined", naming the owner); the
// chains that end here are logged; the instances the step rejected go to
// the dead-letter queue with the reason; each outcome is written to the
// instance ledger (one final record per generation, a conditional create)
// and, when this delivery wrote it, logged, tagged and published; then the
// follow-up messages are sent, install work to the install queue and the
// rest to the job queue.
//
// It returns how many messages were queued (with those queued as their
// tasks were recorded), and an error when the platform must deliver the invocation's
// input again: a ledger write or a message send that failed, or a failure
// the step reported. Outcomes already written are facts, and a redelivery
// finds them in the ledger. When a queue cannot be used at all (a
// permanent error), the instances of the unsent messages end as FAILED
// with that code rather than silently, and the error still goes to the
// trigger, whose retries end in the dead-letter destination.
func (d *Deps) deliver(ctx context.Context, s *session, res install.Result) (sent int, err error) {
	failed := append([]error(nil), res.Failed...)
	for _, j := range res.Joined {
		d.Outcomes.Joined(ctx, j)
	}
	for _, dr := range res.Dropped {
		d.Logger.InfoContext(ctx, "chain ends", slog.String("jobId", dr.Instance.JobID), slog.String("instanceId", dr.Instance.ID),
			slog.String("region", dr.Region), slog.Int("generation", dr.Instance.Generation), slog.String("reason", dr.Reason))
	}
	if len(res.Invalid) > 0 {
		failed = append(failed, d.reject(ctx, s, res.Invalid)...)
	}
	if err := d.finish(ctx, s, res.Outcomes); err != nil {
		failed = append(failed, err)
	}
	n, err := d.send(ctx, s, res.Next)
	if err != nil {
		failed = append(failed, err)
	}
	s.mu.Lock()
	n += s.started
	s.started = 0
	s.mu.Unlock()
	if len(failed) == 0 {
		return n, nil
	}
	kind := fault.Retryable
	for _, e := range failed {
		if !fault.Is(e, fault.Retryable) && !fault.IsContext(e) {
			kind = fault.Permanent
		}
	}
	return n, fault.Wrap("handler.deliver", kind, fault.CodeOf(failed[0]),
		fmt.Errorf("%d step(s) failed (the trigger will redeliver): %w", len(failed), errors.Join(failed...)))
}

// ledger builds the invocation's instance ledger.
func (d *Deps) ledger(ctx context.Context, s *session) (*ledger.Ledger, error) {
	st, err := s.ledgerStore(ctx)
	if err != nil {
		return nil, fmt.Errorf("build the ledger store client: %w", err)
	}
	return &ledger.Ledger{Store: st, Prefix: d.Ledger.Prefix, Account: d.Ledger.Account, Lease: d.Policy.Lease,
		StaleIntent: d.Policy.StaleIntent, Now: d.Now}, nil
}

// finish writes each outcome as its generation's final record and emits
// the ones this delivery wrote: the "outcome" log line, the instance tag
// and the topic notice. A record the ledger holds already is emitted again
// only when this very delivery wrote it (it may have died before it logged
// it); another delivery's record stands, and this one's verdict is logged
// as "recorded already". Records of instances not claimed (messages from
// before the ledger) are claimed first.
func (d *Deps) finish(ctx context.Context, s *session, recs []outcome.Record) error {
	if len(recs) == 0 {
		return nil
	}
	l, err := d.ledger(ctx, s)
	if err != nil {
		return err
	}
	recs, adoptErrs := d.adopt(ctx, l, recs)
	results := make([]ledger.Finished, len(recs))
	errs := make([]error, len(recs))
	fanout.Each(len(recs), d.Workers, func(i int) {
		r := recs[i]
		results[i], errs[i] = l.Finish(ctx, ledger.Owner{Region: r.Region, Instance: r.InstanceID, Job: r.JobID,
			Generation: r.Generation, LeaseUntil: r.LeaseUntil, Supersedes: r.Supersedes}, final(r, d.Function))
	})
	failed := adoptErrs
	var emit []outcome.Record
	var rejected []install.Rejected
	for i, r := range recs {
		f, err := results[i], errs[i]
		switch {
		case err != nil && fault.Is(err, fault.Invalid):
			// An entry that cannot be read (say, an earlier final record
			// someone edited): no retry can help. The instance and its
			// verdict go to the dead-letter queue with the key named.
			rejected = append(rejected, install.Rejected{Region: r.Region, Err: err, Instance: job.Instance{ID: r.InstanceID,
				JobID: r.JobID, OriginEventID: r.OriginEventID, FirstSeen: r.FirstSeen, Attempts: r.Attempts, TaskID: r.TaskID,
				ClientID: r.ClientID, Installed: string(r.Outcome), Reason: job.Clip(r.Reason, job.MaxReasonLen),
				Generation: r.Generation, Supersedes: r.Supersedes, Via: r.Via}})
		case err != nil:
			d.Logger.ErrorContext(ctx, "outcome not recorded", slog.String("jobId", r.JobID), slog.String("instanceId", r.InstanceID),
				slog.String("outcome", string(r.Outcome)), slog.String("error", err.Error()), slog.String("class", fault.KindOf(err).String()))
			failed = append(failed, fmt.Errorf("record the outcome of %s: %w", r.InstanceID, err))
		case f.Written:
			emit = append(emit, r)
		case f.SupersededBy != "":
			d.Logger.InfoContext(ctx, "superseded", slog.String("jobId", r.JobID), slog.String("instanceId", r.InstanceID),
				slog.Int("generation", r.Generation), slog.String("outcome", string(r.Outcome)), slog.String("by", f.SupersededBy),
				slog.String("reason", "a later generation took the instance over; its owner records the outcome"))
		case f.Stored != nil && r.Via != "" && f.Stored.Via == r.Via:
			emit = append(emit, recordOf(*f.Stored, r))
		default:
			stored := ""
			if f.Stored != nil {
				stored = f.Stored.Outcome
			}
			d.Logger.InfoContext(ctx, "recorded already", slog.String("jobId", r.JobID), slog.String("instanceId", r.InstanceID),
				slog.Int("generation", r.Generation), slog.String("recorded", stored), slog.String("verdict", string(r.Outcome)),
				slog.String("reason", "another delivery of this job recorded the generation's outcome first"))
		}
	}
	d.emit(ctx, s, emit)
	if len(rejected) > 0 {
		failed = append(failed, d.reject(ctx, s, rejected)...)
	}
	return errors.Join(failed...)
}

// emit logs, tags and publishes records the ledger holds.
func (d *Deps) emit(ctx context.Context, s *session, recs []outcome.Record) {
	for _, r := range recs {
		d.Outcomes.Record(ctx, r)
	}
	d.tag(ctx, s, recs)
	d.publish(ctx, s, recs)
}

// adopt claims the instances of records that carry no generation: job
// messages queued before the ledger was deployed. An owner's record goes
// on; an announcement that joins another owner records nothing.
func (d *Deps) adopt(ctx context.Context, l *ledger.Ledger, recs []outcome.Record) ([]outcome.Record, []error) {
	var out []outcome.Record
	var failed []error
	for _, r := range recs {
		if r.Generation > 0 {
			out = append(out, r)
			continue
		}
		dec, err := l.Claim(ctx, ledger.Announcement{Region: r.Region, Instance: r.InstanceID, Job: r.JobID,
			OriginEventID: r.OriginEventID, EventTime: r.FirstSeen, Via: r.Via, Trigger: "adopted"})
		switch {
		case err != nil:
			failed = append(failed, fmt.Errorf("claim %s for its record: %w", r.InstanceID, err))
		case dec.Kind == ledger.Joined:
			d.Outcomes.Joined(ctx, outcome.Join{JobID: r.JobID, InstanceID: r.InstanceID, Region: r.Region, OriginEventID: r.OriginEventID,
				Owner: dec.Owner.Job, Generation: dec.Owner.Generation, State: dec.State.Describe(), Reason: dec.Reason})
		default:
			r.Generation, r.LeaseUntil, r.Supersedes = dec.Owner.Generation, dec.Owner.LeaseUntil, dec.Owner.Supersedes
			out = append(out, r)
		}
	}
	return out, failed
}

// final is the ledger entry of an outcome record.
func final(r outcome.Record, function string) ledger.Final {
	return ledger.Final{Outcome: string(r.Outcome), Code: r.Code, Reason: r.Reason, Detail: job.Clip(r.Detail, 2048),
		TaskID: r.TaskID, ClientID: r.ClientID, PolicyID: r.PolicyID, Attempts: r.Attempts, Supersedes: r.Supersedes,
		Via: r.Via, Function: function}
}

// recordOf is the outcome record of a stored final entry, for the delivery
// that wrote it (r is that delivery's verdict: it supplies the fields the
// entry does not keep).
func recordOf(f ledger.Final, r outcome.Record) outcome.Record {
	r.Outcome, r.Code, r.Reason, r.Detail = outcome.Kind(f.Outcome), f.Code, f.Reason, f.Detail
	r.TaskID, r.ClientID, r.PolicyID, r.Attempts, r.Supersedes = f.TaskID, f.ClientID, f.PolicyID, f.Attempts, f.Supersedes
	return r
}

// reject dead-letters the instances a step could not act on for good (an
// unreadable ledger entry), one letter each, with the reason. It returns
// the sends that failed.
func (d *Deps) reject(ctx context.Context, s *session, rs []install.Rejected) []error {
	dl := &deadLetterer{d: d, cloud: s.cloud}
	var failed []error
	for _, r := range rs {
		body, _ := json.Marshal(struct {
			Region   string       `json:"region"`
			Instance job.Instance `json:"instance"`
		}{r.Region, r.Instance})
		d.Logger.ErrorContext(ctx, "instance rejected", slog.String("jobId", r.Instance.JobID), slog.String("instanceId", r.Instance.ID),
			slog.String("error", r.Err.Error()), slog.String("class", fault.KindOf(r.Err).String()))
		if err := dl.send(ctx, newDeadLetter(d.Source, d.Now(), body, r.Err, r.Instance.Via, "")); err != nil {
			failed = append(failed, err)
		}
	}
	return failed
}

// send sends the follow-up messages: install-retry messages to the install
// queue, the others to the job queue.
func (d *Deps) send(ctx context.Context, s *session, next []install.Next) (int, error) {
	var work, steps []install.Next
	for _, n := range next {
		if n.Message.Kind == job.KindInstallRetry {
			work = append(work, n)
		} else {
			steps = append(steps, n)
		}
	}
	a, errA := d.sendTo(ctx, s, s.cloud.InstallQueue, work)
	b, errB := d.sendTo(ctx, s, s.cloud.Queue, steps)
	return a + b, errors.Join(errA, errB)
}

// sendTo sends messages to one queue, each with the in-invocation retries.
func (d *Deps) sendTo(ctx context.Context, s *session, queue func(context.Context) (Sender, error), next []install.Next) (sent int, err error) {
	if len(next) == 0 {
		return 0, nil
	}
	log := d.Logger
	q, err := queue(ctx)
	if err != nil {
		for _, n := range next {
			d.abandon(ctx, s, n, err)
		}
		return 0, fmt.Errorf("build the queue client: %w", err)
	}
	// Sends go out side by side (each is a ~100 ms round trip, and a
	// poller batch makes one per task); what they became is handled in
	// order afterwards.
	ids := make([]string, len(next))
	errs := make([]error, len(next))
	bugs := make([]error, len(next))
	fanout.Each(len(next), d.Workers, func(i int) {
		body, err := job.Encode(next[i].Message)
		if err != nil {
			// A message we built ourselves does not validate: a bug.
			bugs[i] = fault.Wrap("handler.send", fault.Invalid, "InternalError", err)
			return
		}
		ids[i], errs[i] = sendWithRetry(ctx, q, taskqueue.Message{Body: body, Delay: next[i].Delay}, d.Sleep)
	})
	var failed []error
	for i, n := range next {
		err := errs[i]
		switch {
		case bugs[i] != nil:
			// End its instances rather than lose them.
			log.ErrorContext(ctx, "cannot encode a job message", slog.String("error", bugs[i].Error()))
			d.abandon(ctx, s, n, bugs[i])
		case err != nil:
			log.ErrorContext(ctx, "cannot queue job message", slog.String("message", n.Message.Describe()),
				slog.String("error", err.Error()), slog.String("class", fault.KindOf(err).String()))
			failed = append(failed, err)
			if !fault.Is(err, fault.Retryable) && !fault.IsContext(err) {
				d.abandon(ctx, s, n, err)
			}
		default:
			sent++
			d.logQueued(ctx, n, ids[i])
		}
	}
	if len(failed) > 0 {
		return sent, fmt.Errorf("%d of %d job messages could not be queued: %w", len(failed), len(next), failed[0])
	}
	return sent, nil
}

func (d *Deps) logQueued(ctx context.Context, n install.Next, id string) {
	d.Logger.InfoContext(ctx, "queued", slog.String("message", n.Message.Describe()), slog.String("kind", string(n.Message.Kind)),
		slog.String("taskId", n.Message.TaskID), slog.Int("instances", len(n.Message.Instances)),
		slog.Float64("delaySeconds", n.Delay.Seconds()), slog.String("messageId", id))
}

// abandon ends the instances of a message that can never be queued, as
// FAILED records that go through the ledger like any other.
func (d *Deps) abandon(ctx context.Context, s *session, n install.Next, err error) {
	code := fault.CodeOf(err)
	if code == "" {
		code = "QueueUnavailable"
	}
	var rs []outcome.Record
	for _, in := range n.Message.Instances {
		r := install.Record(n.Message.Region, in, outcome.Failed, code,
			"the job message that would follow this instance could not be queued: "+code, n.Message.TaskID, "")
		r.Detail = err.Error()
		rs = append(rs, r)
	}
	if ferr := d.finish(ctx, s, rs); ferr != nil {
		d.Logger.ErrorContext(ctx, "abandoned instances not recorded", slog.String("error", ferr.Error()))
	}
}

func sendWithRetry(ctx context.Context, q Sender, m taskqueue.Message, pause func(time.Duration)) (string, error) {
	var err error
	for attempt := 1; attempt <= sendAttempts; attempt++ {
		var id string
		id, err = q.Send(ctx, m)
		if err == nil {
			return id, nil
		}
		if !fault.Is(err, fault.Retryable) || ctx.Err() != nil {
			return "", err
		}
		if attempt < sendAttempts {
			pause(time.Duration(attempt) * 200 * time.Millisecond)
		}
	}
	return "", err
}

// tag writes each outcome onto its instance (best effort: a failure is
// logged and changes nothing else). Never in audit mode, never on an
// instance that is gone.
func (d *Deps) tag(ctx context.Context, s *session, rs []outcome.Record) {
	if d.TagKey == "" || d.Audit {
		return
	}
	for _, r := range rs {
		if r.Outcome == outcome.Gone {
			continue
		}
		cl, err := s.ecsClient(ctx, r.Region)
		if err == nil {
			err = cl.TagInstance(ctx, r.InstanceID, d.TagKey, r.TagValue())
		}
		if err != nil {
			d.Logger.WarnContext(ctx, "outcome tag not written", slog.String("instanceId", r.InstanceID),
				slog.String("error", err.Error()), slog.String("class", fault.KindOf(err).String()))
		}
	}
}

// publish sends outcome records to the topic (best effort, like tag).
func (d *Deps) publish(ctx context.Context, s *session, rs []outcome.Record) {
	var pub Publisher
	for _, r := range rs {
		if !d.NotifyAll && !r.Outcome.Problem() {
			continue
		}
		if pub == nil {
			p, err := s.cloud.Topic(ctx)
			if err != nil {
				d.Logger.WarnContext(ctx, "outcome not published", slog.String("error", err.Error()))
				return
			}
			if p == nil {
				return
			}
			pub = p
		}
		body, _ := json.Marshal(notice(r))
		if _, err := pub.Publish(ctx, body, r.Outcome.Slug()); err != nil {
			d.Logger.WarnContext(ctx, "outcome not published", slog.String("instanceId", r.InstanceID),
				slog.String("error", err.Error()), slog.String("class", fault.KindOf(err).String()))
		}
	}
}

// notice is the published form of an outcome record.
func notice(r outcome.Record) map[string]any {
	return map[string]any{
		"jobId": r.JobID, "instanceId": r.InstanceID, "region": r.Region, "outcome": r.Outcome,
		"reason": r.Reason, "code": r.Code, "taskId": r.TaskID, "clientId": r.ClientID, "attempts": r.Attempts,
		"policyId": r.PolicyID, "generation": r.Generation, "supersedes": r.Supersedes,
	}
}

// queueNow is install.Service.Started: it queues a poll message the moment
// its tasks are recorded (with the in-invocation retries), so that a
// process dying later in the batch leaves no task without a follower. On
// failure the message goes back to the step's Result, and deliver sends it
// with the rest, with its retries (or ends its instances, or fails the
// invocation); after one failure the invocation stops trying early.
func (d *Deps) queueNow(s *session) func(context.Context, install.Next) error {
	// The install step calls it from several chunks at once; once a send
	// has failed, the others go the way of the step's ordinary follow-ups.
	var mu sync.Mutex
	var broken error
	return func(ctx context.Context, n install.Next) error {
		mu.Lock()
		err := broken
		mu.Unlock()
		if err != nil {
			return err
		}
		q, err := s.cloud.Queue(ctx)
		var id string
		if err == nil {
			var body []byte
			if body, err = job.Encode(n.Message); err == nil {
				id, err = sendWithRetry(ctx, q, taskqueue.Message{Body: body, Delay: n.Delay}, d.Sleep)
			}
		}
		if err != nil {
			mu.Lock()
			broken = err
			mu.Unlock()
			return err
		}
		s.mu.Lock()
		s.started++
		s.mu.Unlock()
		d.logQueued(ctx, n, id)
		return nil
	}
}
