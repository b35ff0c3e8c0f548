package handler

import (
	"context"
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

// deliver writes the outcomes, then sends the follow-up messages. It returns
// a Retryable error when a message could not be sent, so the trigger
// redelivers the invocation's input; outcomes already written are facts and
// a redelivery reaches the same ones.
func deliver(ctx context.Context, log *slog.Logger, rec outcome.Recorder, cloud *session, res install.Result, pause func(time.Duration)) (sent int, err error) {
	for _, r := range res.Outcomes {
		rec.Record(ctx, r)
	}
	if len(res.Next) == 0 {
		return 0, nil
	}
	q, err := cloud.cloud.Queue(ctx)
	if err != nil {
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
			continue
		}
		sent++
		log.InfoContext(ctx, "queued", slog.String("message", n.Message.Describe()), slog.String("kind", string(n.Message.Kind)),
			slog.String("taskId", n.Message.TaskID), slog.Int("instances", len(n.Message.Instances)),
			slog.Float64("delaySeconds", n.Delay.Seconds()), slog.String("messageId", id))
	}
	if len(failed) > 0 {
		return sent, fault.Wrap("handler.deliver", fault.Retryable, fault.CodeOf(failed[0]),
			fmt.Errorf("%d of %d job messages could not be queued (the trigger will redeliver): %w", len(failed), len(res.Next), failed[0]))
	}
	return sent, nil
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
