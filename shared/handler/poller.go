package handler

import (
	"context"
	"log/slog"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/queueevent"
)

// Poller handles batches of job messages from the MNS event stream.
type Poller struct{ Deps }

// NewPoller returns the poller handler.
func NewPoller(d Deps) *Poller {
	d.defaults()
	return &Poller{d}
}

// PollerSummary is the poller function's response.
type PollerSummary struct {
	Messages int            `json:"messages"`
	Dropped  []string       `json:"dropped,omitempty"`
	Outcomes map[string]int `json:"outcomes,omitempty"`
	Queued   int            `json:"queued"`
}

// Handle processes one batch. Malformed messages are logged with their reason
// and dropped (retrying them cannot help); the error is non-nil only when
// follow-up messages could not be queued, so the stream redelivers the batch.
func (h *Poller) Handle(ctx context.Context, payload []byte) (PollerSummary, error) {
	log := h.Logger
	batch, err := queueevent.Parse(payload)
	if err != nil {
		log.ErrorContext(ctx, "dropped payload", slog.String("error", err.Error()), slog.String("class", fault.KindOf(err).String()))
		return PollerSummary{Dropped: []string{err.Error()}}, nil
	}
	var sum PollerSummary
	for _, rj := range batch.Rejected {
		log.ErrorContext(ctx, "dropped malformed message", slog.Int("index", rj.Index), slog.String("error", rj.Err.Error()))
		sum.Dropped = append(sum.Dropped, rj.Err.Error())
	}
	var msgs []job.Message
	for _, qm := range batch.Messages {
		m, err := job.Decode(qm.Body)
		if err != nil {
			log.ErrorContext(ctx, "dropped malformed message", slog.String("messageId", job.TrimOrigin(qm.MessageID)),
				slog.String("error", err.Error()))
			sum.Dropped = append(sum.Dropped, err.Error())
			continue
		}
		log.DebugContext(ctx, "message", slog.String("message", m.Describe()), slog.String("messageId", job.TrimOrigin(qm.MessageID)))
		msgs = append(msgs, m)
	}
	sum.Messages = len(msgs)
	if len(msgs) == 0 {
		return sum, nil
	}
	s := newSession(h.Cloud)
	svc := h.pollService(s)
	res := svc.Handle(ctx, msgs)
	sum.Outcomes = countOutcomes(res.Outcomes)
	sent, err := h.deliver(ctx, s, res)
	sum.Queued = sent
	if err != nil {
		return sum, err
	}
	log.InfoContext(ctx, "poll done", slog.Int("messages", sum.Messages), slog.Int("dropped", len(sum.Dropped)), slog.Int("queued", sent))
	return sum, nil
}
