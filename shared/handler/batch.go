package handler

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/queueevent"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/taskqueue"
)

// queueBatch is one event-stream delivery decoded: its job messages, each
// instance's Via set to its MNS message id, and what was done with the
// rest. Nothing is acknowledged into nothing: a payload, event or message
// that cannot be acted on was sent to the dead-letter queue with its
// reason, and one too new for this reader was put back on its queue
// (job.Defer) until a newer reader takes it or its hops run out.
type queueBatch struct {
	msgs []job.Message
	// deadLettered holds the reason of each letter sent; deferred counts
	// the messages put back.
	deadLettered []string
	deferred     int
	// failed holds the sends that failed: the invocation must fail so that
	// the stream delivers the batch again.
	failed []error
}

// decodeBatch reads an event-stream payload for a reader of version
// reader. back is the queue the batch came from (too-new messages go back
// there).
func (d *Deps) decodeBatch(ctx context.Context, cloud Cloud, payload []byte, reader int, back func(context.Context) (Sender, error)) queueBatch {
	log := d.Logger
	var b queueBatch
	dl := &deadLetterer{d: d, cloud: cloud}
	now := d.Now()
	letter := func(body []byte, err error, messageID, eventID string) {
		b.deadLettered = append(b.deadLettered, err.Error())
		if err := dl.send(ctx, newDeadLetter(d.Source, now, body, err, messageID, eventID)); err != nil {
			b.failed = append(b.failed, err)
		}
	}
	batch, err := queueevent.Parse(payload)
	if err != nil {
		log.ErrorContext(ctx, "unusable payload", slog.String("error", err.Error()), slog.String("class", fault.KindOf(err).String()))
		letter(payload, err, "", "")
		return b
	}
	for _, rj := range batch.Rejected {
		log.ErrorContext(ctx, "malformed event", slog.Int("index", rj.Index), slog.String("error", rj.Err.Error()))
		letter(rj.Raw, rj.Err, "", "")
	}
	for _, qm := range batch.Messages {
		m, err := job.DecodeFor(qm.Body, reader)
		if _, tooNew := job.AsTooNew(err); tooNew {
			deferred, perr := d.putBack(ctx, back, qm, err)
			switch {
			case deferred:
				b.deferred++
				if perr != nil {
					b.failed = append(b.failed, perr)
				}
			default:
				letter(qm.Body, perr, qm.MessageID, qm.EventID)
			}
			continue
		}
		if err != nil {
			log.ErrorContext(ctx, "malformed message", slog.String("messageId", job.TrimOrigin(qm.MessageID)),
				slog.String("error", err.Error()))
			letter(qm.Body, err, qm.MessageID, qm.EventID)
			continue
		}
		for i := range m.Instances {
			m.Instances[i].Via = qm.MessageID
		}
		log.DebugContext(ctx, "message", slog.String("message", m.Describe()), slog.String("messageId", job.TrimOrigin(qm.MessageID)))
		b.msgs = append(b.msgs, m)
	}
	return b
}

// putBack sends a message too new for this reader back to its queue, after
// job.DeferDelay and with one more hop, for a newer reader to take. It
// reports false when the message is for the dead-letter queue instead (its
// hops ran out, or it cannot be rewritten), with the reason; true with an
// error when the send failed.
func (d *Deps) putBack(ctx context.Context, back func(context.Context) (Sender, error), qm queueevent.Message, why error) (bool, error) {
	body, hops, err := job.Defer(qm.Body)
	if err != nil {
		return false, fmt.Errorf("%v; %w", why, err)
	}
	q, err := back(ctx)
	if err != nil {
		return true, fmt.Errorf("build the queue client: %w", err)
	}
	id, err := sendWithRetry(ctx, q, taskqueue.Message{Body: body, Delay: job.DeferDelay}, d.Sleep)
	if err != nil {
		return true, fmt.Errorf("put back a message for a newer reader: %w", err)
	}
	d.Logger.WarnContext(ctx, "left for a newer poller", slog.String("reason", why.Error()), slog.Int("hops", hops),
		slog.String("messageId", job.TrimOrigin(qm.MessageID)), slog.String("newMessageId", id))
	return true, nil
}

// timeShort returns a check of whether the invocation's time is running
// out: less than reserve left before its deadline, or a quarter of the time
// it started with when that is less (a short timeout); never without a
// deadline.
func timeShort(ctx context.Context, reserve time.Duration) func() bool {
	deadline, ok := ctx.Deadline()
	if !ok {
		return func() bool { return false }
	}
	reserve = min(reserve, time.Until(deadline)/4)
	return func() bool { return time.Until(deadline) < reserve }
}

// mustEncode is the body of a message that validated.
func mustEncode(m job.Message) []byte {
	b, err := job.Encode(m)
	if err != nil {
		return []byte(m.Describe())
	}
	return b
}
