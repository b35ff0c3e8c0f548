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
)

// Poller handles batches of job messages from the job queue's event
// stream: poll steps (DescribeTask), bind retries and sweep continuations.
// It never installs: install work that reaches it (a message of an older
// release) goes on to the install queue.
type Poller struct {
	Deps
	// ReaderVersion is the highest job message version this poller acts on
	// (job.ReaderVersion; a test sets 1 to play a poller of an older
	// release). Newer messages are put back for a newer poller.
	ReaderVersion int
	// Sweep continues reconcile sweeps (job.KindSweep messages); without
	// it they are dead-lettered.
	Sweep *Reconcile
	// Group is how many job messages are handled together; Reserve is the
	// time kept before the invocation's deadline: once less is left, the
	// messages not handled yet go back on the queue, for the next
	// invocation, so that the stream never redelivers a whole batch because
	// the invocation ran into its timeout.
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
	d.Source = DeadLetterSource
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
	// Forwarded counts install-retry messages handed on to the install
	// queue.
	Forwarded int `json:"forwarded,omitempty"`
	// Sweeps counts the sweep continuations run.
	Sweeps int `json:"sweeps,omitempty"`
	// PutBack counts the messages sent back to the queue unhandled because
	// the invocation's time was running out.
	PutBack int `json:"putBack,omitempty"`
}

// Handle processes one batch. The error is non-nil when something could
// not be written or sent (an outcome, a follow-up job message, a dead
// letter, a put-back message), so the stream delivers the batch again and,
// after its retries, to its own dead-letter queue.
func (h *Poller) Handle(ctx context.Context, payload []byte) (PollerSummary, error) {
	log := h.Logger
	b := h.decodeBatch(ctx, h.Cloud, payload, h.ReaderVersion, h.Cloud.Queue)
	sum := PollerSummary{DeadLettered: b.deadLettered, Deferred: b.deferred}
	failed := b.failed
	var steps, sweeps []job.Message
	var res install.Result
	for _, m := range b.msgs {
		switch m.Kind {
		case job.KindSweep:
			sweeps = append(sweeps, m)
		case job.KindInstallRetry:
			// Install work of an older release's poller: the install
			// function's to do.
			res.Next = append(res.Next, install.Next{Message: m, Delay: time.Second})
			sum.Forwarded++
		default:
			steps = append(steps, m)
		}
	}
	sum.Messages = len(b.msgs)
	if len(steps) > 0 || len(res.Next) > 0 {
		s := newSession(h.Cloud)
		l, err := h.ledger(ctx, s)
		if err != nil {
			return sum, err
		}
		short := timeShort(ctx, h.Reserve)
		for handled := 0; len(steps) > 0; handled++ {
			// At least one group per invocation, so the batch always moves on.
			if handled > 0 && short() {
				// Handed back as they came: a redelivery, which every step
				// tolerates; the next invocation takes them.
				for _, m := range steps {
					res.Next = append(res.Next, install.Next{Message: m, Delay: time.Second})
				}
				sum.PutBack = len(steps)
				log.WarnContext(ctx, "time running out: messages put back", slog.Int("messages", len(steps)))
				break
			}
			n := min(len(steps), max(h.Group, 1))
			res.Merge(h.pollService(s, l).Handle(ctx, steps[:n]))
			steps = steps[n:]
		}
		sum.Outcomes = countOutcomes(res.Outcomes)
		sent, err := h.deliver(ctx, s, res)
		sum.Queued = sent
		if err != nil {
			failed = append(failed, err)
		}
	}
	dl := &deadLetterer{d: &h.Deps, cloud: h.Cloud}
	for _, m := range sweeps {
		if h.Sweep == nil {
			err := fault.Invalidf("handler.Poller", "this poller runs no sweeps")
			sum.DeadLettered = append(sum.DeadLettered, err.Error())
			if err := dl.send(ctx, newDeadLetter(h.Source, h.Now(), mustEncode(m), err, "", "")); err != nil {
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
			if err := dl.send(ctx, newDeadLetter(h.Source, h.Now(), mustEncode(m), err, "", "")); err != nil {
				failed = append(failed, err)
			}
		}
	}
	log.InfoContext(ctx, "poll done", slog.Int("messages", sum.Messages), slog.Int("deadLettered", len(sum.DeadLettered)),
		slog.Int("deferred", sum.Deferred), slog.Int("queued", sum.Queued), slog.Int("forwarded", sum.Forwarded), slog.Int("sweeps", sum.Sweeps))
	if len(failed) > 0 {
		return sum, fmt.Errorf("poller: %d of its steps failed (the trigger will redeliver): %w", len(failed), errors.Join(failed...))
	}
	return sum, nil
}
