package handler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/taskqueue"
)

// sendAttempts bounds in-invocation retries of one send; after that the
// invocation fails and the platform redelivers it.
const sendAttempts = 3

// deliver writes the outcomes (and, when configured, tags the instances and
// publishes to the topic), then sends the follow-up messages. It returns an
// error when a message could not be sent, so the trigger redelivers the
// invocation's input; outcomes already written are facts and a redelivery
// reaches the same ones. When the queue cannot be used at all (a permanent
// error: no such queue, access denied, no credentials), the instances of the
// unsent messages end as FAILED with that code rather than silently, and the
// error still goes to the trigger, whose retries end in the dead-letter
// destination.
func (d *Deps) deliver(ctx context.Context, cloud *session, res install.Result) (sent int, err error) {
	log, rec, pause := d.Logger, d.Outcomes, d.Sleep
	for _, r := range res.Outcomes {
		rec.Record(ctx, r)
	}
	for _, j := range res.Joined {
		rec.Joined(ctx, j)
	}
	d.tag(ctx, cloud, res.Outcomes)
	d.publish(ctx, cloud, res.Outcomes)
	if len(res.Next) == 0 {
		return 0, nil
	}
	q, err := cloud.cloud.Queue(ctx)
	if err != nil {
		for _, n := range res.Next {
			d.abandon(ctx, cloud, n, err)
		}
		return 0, fmt.Errorf("build the queue client: %w", err)
	}
	var failed []error
	for _, n := range res.Next {
		body, err := job.Encode(n.Message)
		if err != nil {
			// A message we built ourselves does not validate: a bug. End its
			// instances rather than lose them.
			log.ErrorContext(ctx, "cannot encode a job message", slog.String("error", err.Error()))
			for _, in := range n.Message.Instances {
				rec.Record(ctx, install.Record(n.Message.Region, in, outcome.Failed, "InternalError",
					"internal error: job message did not validate", n.Message.TaskID, ""))
			}
			continue
		}
		id, err := sendWithRetry(ctx, q, taskqueue.Message{Body: body, Delay: n.Delay}, pause)
		if err != nil {
			log.ErrorContext(ctx, "cannot queue job message", slog.String("message", n.Message.Describe()),
				slog.String("error", err.Error()), slog.String("class", fault.KindOf(err).String()))
			failed = append(failed, err)
			if !fault.Is(err, fault.Retryable) && !fault.IsContext(err) {
				d.abandon(ctx, cloud, n, err)
			}
			continue
		}
		sent++
		log.InfoContext(ctx, "queued", slog.String("message", n.Message.Describe()), slog.String("kind", string(n.Message.Kind)),
			slog.String("taskId", n.Message.TaskID), slog.Int("instances", len(n.Message.Instances)),
			slog.Float64("delaySeconds", n.Delay.Seconds()), slog.String("messageId", id))
	}
	if len(failed) > 0 {
		kind := fault.Retryable
		for _, e := range failed {
			if !fault.Is(e, fault.Retryable) && !fault.IsContext(e) {
				kind = fault.Permanent
			}
		}
		return sent, fault.Wrap("handler.deliver", kind, fault.CodeOf(failed[0]),
			fmt.Errorf("%d of %d job messages could not be queued (the trigger will redeliver): %w", len(failed), len(res.Next), failed[0]))
	}
	return sent, nil
}

// abandon ends the instances of a message that can never be queued.
// Like any outcome it is tagged and published when those are configured.
func (d *Deps) abandon(ctx context.Context, cloud *session, n install.Next, err error) {
	code := fault.CodeOf(err)
	if code == "" {
		code = "QueueUnavailable"
	}
	var rs []outcome.Record
	for _, in := range n.Message.Instances {
		r := install.Record(n.Message.Region, in, outcome.Failed, code,
			"the job message that would follow this instance could not be queued: "+code, n.Message.TaskID, "")
		r.Detail = err.Error()
		d.Outcomes.Record(ctx, r)
		rs = append(rs, r)
	}
	d.tag(ctx, cloud, rs)
	d.publish(ctx, cloud, rs)
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
func (d *Deps) tag(ctx context.Context, cloud *session, rs []outcome.Record) {
	if d.TagKey == "" || d.Audit {
		return
	}
	for _, r := range rs {
		if r.Outcome == outcome.Gone {
			continue
		}
		cl, err := cloud.ecsClient(ctx, r.Region)
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
func (d *Deps) publish(ctx context.Context, cloud *session, rs []outcome.Record) {
	var pub Publisher
	for _, r := range rs {
		if !d.NotifyAll && !r.Outcome.Problem() {
			continue
		}
		if pub == nil {
			p, err := cloud.cloud.Topic(ctx)
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
		"policyId": r.PolicyID,
	}
}

// queueNow is install.Service.Started: it queues a poll message the moment
// its install task exists (with the in-invocation retries), so that a
// process dying later in the batch leaves no task without a follower. On
// failure the message goes back to the step's Result, and deliver sends it
// with the rest, with its retries (or ends its instances, or fails the
// invocation); after one failure the invocation stops trying early.
func (d *Deps) queueNow(s *session) func(context.Context, install.Next) error {
	var broken error
	return func(ctx context.Context, n install.Next) error {
		if broken != nil {
			return broken
		}
		q, err := s.cloud.Queue(ctx)
		var id string
		if err == nil {
			var body []byte
			if body, err = job.Encode(n.Message); err == nil {
				id, err = q.Send(ctx, taskqueue.Message{Body: body, Delay: n.Delay})
			}
		}
		if err != nil {
			broken = err
			return err
		}
		d.Logger.InfoContext(ctx, "queued", slog.String("message", n.Message.Describe()), slog.String("kind", string(n.Message.Kind)),
			slog.String("taskId", n.Message.TaskID), slog.Int("instances", len(n.Message.Instances)),
			slog.Float64("delaySeconds", n.Delay.Seconds()), slog.String("messageId", id))
		return nil
	}
}
