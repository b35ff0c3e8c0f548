package handler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/queueevent"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/taskqueue"
)

// Poller handles batches of job messages from the MNS event stream.
type Poller struct {
	Deps
	// ReaderVersion is the highest job message version this poller acts on
	// (job.ReaderVersion; a test sets 1 to play a poller of the previous
	// release). Newer messages are put back for a newer poller.
	ReaderVersion int
	// Sweep continues reconcile sweeps (job.KindSweep messages); without
	// it they are dead-lettered.
	Sweep *Reconcile
	// Group is how many job messages are handled together (their install
	// retries share calls); Reserve is the time kept before the
	// invocation's deadline: once less is left, the messages not handled
	// yet go back on the queue, for the next invocation. A serialised
	// poller with large batches must never run into its timeout, since
	// the stream would then redeliver the whole batch.
	Group   int
	Reserve time.Duration
}

// Defaults of Poller.Group and Poller.Reserve.
const (
	DefaultPollGroup   = 25
	DefaultPollReserve = 60 * time.Second
)

// NewPoller returns the poller handler.
func NewPoller(d Deps) *Poller {
	d.defaults()
	return &Poller{Deps: d, ReaderVersion: job.ReaderVersion, Group: DefaultPollGroup, Reserve: DefaultPollReserve}
}

// PollerSummary is the poller function's response.
type PollerSummary struct {
	Messages int `json:"messages"`
	// DeadLettered holds the reason of each message, event or payload
	// sent to the dead-letter queue.
	DeadLettered []string `json:"deadLettered,omitempty"`
	// Deferred counts the messages too new for this poller, put back on
	// the queue for a newer one.
	Deferred int            `json:"deferred,omitempty"`
	Outcomes map[string]int `json:"outcomes,omitempty"`
	Queued   int            `json:"queued"`
	// Sweeps counts the sweep continuations run.
	Sweeps int `json:"sweeps,omitempty"`
	// PutBack counts the messages sent back to the queue unhandled because
	// the invocation's time was running out.
	PutBack int `json:"putBack,omitempty"`
}

// Handle processes one batch. Nothing is acknowledged into nothing: a
// payload, event or message the poller cannot act on goes to the
// dead-letter queue with its reason, and one too new for this poller goes
// back on the job queue (job.Defer) until a newer poller takes it or its
// hops run out; the rest of the batch is processed normally. The error is
// non-nil when something could not be sent (a follow-up job message, a
// dead letter, a put-back message), so the stream delivers the batch
// again and, after its retries, to its own dead-letter queue.
func (h *Poller) Handle(ctx context.Context, payload []byte) (PollerSummary, error) {
	log := h.Logger
	var sum PollerSummary
	dl := &deadLetterer{d: &h.Deps, cloud: h.Cloud}
	now := h.Now()
	batch, err := queueevent.Parse(payload)
	if err != nil {
		log.ErrorContext(ctx, "unusable payload", slog.String("error", err.Error()), slog.String("class", fault.KindOf(err).String()))
		sum.DeadLettered = append(sum.DeadLettered, err.Error())
		return sum, dl.send(ctx, newDeadLetter(now, payload, err, "", ""))
	}
	var failed []error
	for _, rj := range batch.Rejected {
		log.ErrorContext(ctx, "malformed event", slog.Int("index", rj.Index), slog.String("error", rj.Err.Error()))
		sum.DeadLettered = append(sum.DeadLettered, rj.Err.Error())
		if err := dl.send(ctx, newDeadLetter(now, rj.Raw, rj.Err, "", "")); err != nil {
			failed = append(failed, err)
		}
	}
	var msgs, sweeps []job.Message
	for _, qm := range batch.Messages {
		m, err := job.DecodeFor(qm.Body, h.ReaderVersion)
		if _, tooNew := job.AsTooNew(err); tooNew {
			deferred, err := h.putBack(ctx, qm, err)
			if deferred {
				sum.Deferred++
			} else {
				sum.DeadLettered = append(sum.DeadLettered, err.Error())
			}
			if err != nil && deferred {
				failed = append(failed, err)
			}
			if !deferred {
				if err := dl.send(ctx, newDeadLetter(now, qm.Body, err, qm.MessageID, qm.EventID)); err != nil {
					failed = append(failed, err)
				}
			}
			continue
		}
		if err != nil {
			log.ErrorContext(ctx, "malformed message", slog.String("messageId", job.TrimOrigin(qm.MessageID)),
				slog.String("error", err.Error()))
			sum.DeadLettered = append(sum.DeadLettered, err.Error())
			if err := dl.send(ctx, newDeadLetter(now, qm.Body, err, qm.MessageID, qm.EventID)); err != nil {
				failed = append(failed, err)
			}
			continue
		}
		log.DebugContext(ctx, "message", slog.String("message", m.Describe()), slog.String("messageId", job.TrimOrigin(qm.MessageID)))
		if m.Kind == job.KindSweep {
			sweeps = append(sweeps, m)
			continue
		}
		msgs = append(msgs, m)
	}
	sum.Messages = len(msgs) + len(sweeps)
	if len(msgs) > 0 {
		s := newSession(h.Cloud)
		short := h.timeShort(ctx)
		var res install.Result
		for handled := 0; len(msgs) > 0; handled++ {
			// At least one group per invocation, so the batch always moves on.
			if handled > 0 && short() {
				// Handed back as they came: a redelivery, which every step
				// tolerates; the next invocation takes them.
				for _, m := range msgs {
					res.Next = append(res.Next, install.Next{Message: m, Delay: time.Second})
				}
				sum.PutBack = len(msgs)
				log.WarnContext(ctx, "time running out: messages put back", slog.Int("messages", len(msgs)))
				break
			}
			n := min(len(msgs), max(h.Group, 1))
			res.Merge(h.pollService(s).Handle(ctx, msgs[:n]))
			msgs = msgs[n:]
		}
		sum.Outcomes = countOutcomes(res.Outcomes)
		sent, err := h.deliver(ctx, s, res)
		sum.Queued = sent
		if err != nil {
			failed = append(failed, err)
		}
	}
	for _, m := range sweeps {
		if h.Sweep == nil {
			err := fault.Invalidf("handler.Poller", "this poller runs no sweeps")
			sum.DeadLettered = append(sum.DeadLettered, err.Error())
			if err := dl.send(ctx, newDeadLetter(now, mustEncode(m), err, "", "")); err != nil {
				failed = append(failed, err)
			}
			continue
		}
		sum.Sweeps++
		_, err := h.Sweep.Continue(ctx, m)
		switch {
		case err == nil:
		case fault.Is(err, fault.Retryable) || fault.IsContext(err):
			failed = append(failed, err) // the stream delivers it again
		default:
			// Retrying cannot help (a continuation past its deadline or
			// its parts, a token the service rejects, access denied).
			sum.DeadLettered = append(sum.DeadLettered, err.Error())
			if err := dl.send(ctx, newDeadLetter(now, mustEncode(m), err, "", "")); err != nil {
				failed = append(failed, err)
			}
		}
	}
	log.InfoContext(ctx, "poll done", slog.Int("messages", sum.Messages), slog.Int("deadLettered", len(sum.DeadLettered)),
		slog.Int("deferred", sum.Deferred), slog.Int("queued", sum.Queued), slog.Int("sweeps", sum.Sweeps))
	if len(failed) > 0 {
		return sum, fmt.Errorf("poller: %d of its sends failed (the trigger will redeliver): %w", len(failed), errors.Join(failed...))
	}
	return sum, nil
}

// timeShort returns a check of whether the invocation's time is running
// out: less than Reserve left before its deadline, or a quarter of the time
// it started with when that is less (a short timeout); never without a
// deadline.
func (h *Poller) timeShort(ctx context.Context) func() bool {
	deadline, ok := ctx.Deadline()
	if !ok {
		return func() bool { return false }
	}
	reserve := min(h.Reserve, time.Until(deadline)/4)
	return func() bool { return time.Until(deadline) < reserve }
}

// putBack sends a message too new for this poller back to the job queue,
// after job.DeferDelay and with one more hop, for a newer poller to take.
// It reports false when the message is for the dead-letter queue instead
// (its hops ran out, or it cannot be rewritten), with the reason; true with
// an error when the send failed.
func (h *Poller) putBack(ctx context.Context, qm queueevent.Message, why error) (bool, error) {
	body, hops, err := job.Defer(qm.Body)
	if err != nil {
		return false, fmt.Errorf("%v; %w", why, err)
	}
	q, err := h.Cloud.Queue(ctx)
	if err != nil {
		return true, fmt.Errorf("build the queue client: %w", err)
	}
	id, err := sendWithRetry(ctx, q, taskqueue.Message{Body: body, Delay: job.DeferDelay}, h.Sleep)
	if err != nil {
		return true, fmt.Errorf("put back a message for a newer poller: %w", err)
	}
	h.Logger.WarnContext(ctx, "left for a newer poller", slog.String("reason", why.Error()), slog.Int("hops", hops),
		slog.String("messageId", job.TrimOrigin(qm.MessageID)), slog.String("newMessageId", id))
	return true, nil
}

// mustEncode is the body of a message that validated.
func mustEncode(m job.Message) []byte {
	b, err := job.Encode(m)
	if err != nil {
		return []byte(m.Describe())
	}
	return b
}
