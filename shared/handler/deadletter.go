package handler

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/taskqueue"
)

// DeadLetterCloud is a Cloud that can also reach the dead-letter queue. The
// poller needs it: a message it cannot act on goes there, with the reason,
// instead of being acknowledged into nothing. SDKCloud implements it.
type DeadLetterCloud interface {
	DeadLetters(ctx context.Context) (Sender, error)
}

// DeadLetters implements DeadLetterCloud: a sender to DLQ_NAME on the job
// queue's endpoint.
func (c SDKCloud) DeadLetters(ctx context.Context) (Sender, error) {
	cred, err := cloudauth.FromContext(ctx, c.Getenv)
	if err != nil {
		return nil, err
	}
	return taskqueue.New(taskqueue.Config{
		Endpoint:  c.Config.MNSEndpoint,
		Queue:     c.Config.DLQName,
		Priority:  c.Config.MessagePriority,
		Timeout:   c.Config.APITimeout,
		AccountID: c.Config.AccountID,
		Region:    c.Config.Region,
	}, cred)
}

// Sources of the dead letters the functions write themselves.
const (
	// DeadLetterSource is the poller's (the name predates the install
	// function's own dead letters).
	DeadLetterSource = "hbr-autoinstall-poller"
	// InstallDeadLetterSource is the install function's.
	InstallDeadLetterSource = "hbr-autoinstall-install"
)

// maxDeadBody bounds the original body kept in a dead letter, so that the
// letter stays under the 64 KB MNS limit once base64-encoded.
const maxDeadBody = 32 << 10

// DeadLetter is the JSON body of a message a function sends to the
// dead-letter queue: the original message (or event, payload or instance)
// and why nothing could be done with it.
type DeadLetter struct {
	Source string `json:"source"`
	// Reason says why; Class is its fault kind (Invalid for input that no
	// retry can fix).
	Reason string `json:"reason"`
	Class  string `json:"class"`
	// MessageID and EventID identify the original MNS message and
	// CloudEvent, when known.
	MessageID string    `json:"messageId,omitempty"`
	EventID   string    `json:"eventId,omitempty"`
	At        time.Time `json:"at"`
	// Body is the original text when it is UTF-8, BodyBase64 otherwise;
	// Truncated says it was cut at 32 KiB.
	Body       string `json:"body,omitempty"`
	BodyBase64 string `json:"bodyBase64,omitempty"`
	Truncated  bool   `json:"truncated,omitempty"`
}

// newDeadLetter builds a dead letter for body that err explains.
func newDeadLetter(source string, now time.Time, body []byte, err error, messageID, eventID string) DeadLetter {
	dl := DeadLetter{Source: source, Reason: err.Error(), Class: fault.KindOf(err).String(),
		MessageID: clip(messageID), EventID: clip(eventID), At: now.UTC()}
	if len(dl.Reason) > 1024 {
		dl.Reason = dl.Reason[:1024] + "…"
	}
	if len(body) > maxDeadBody {
		body, dl.Truncated = body[:maxDeadBody], true
	}
	if utf8.Valid(body) {
		dl.Body = string(body)
	} else {
		dl.BodyBase64 = base64.StdEncoding.EncodeToString(body)
	}
	return dl
}

// deadLetterer sends the dead letters of one invocation through one sender.
type deadLetterer struct {
	d      *Deps
	cloud  Cloud
	sender Sender
	sent   int
}

// send writes one dead letter. Its error (no DLQ configured, the send
// failed after retries) is for the invocation to return, so that the
// platform delivers the input again.
func (l *deadLetterer) send(ctx context.Context, dl DeadLetter) error {
	log := l.d.Logger
	if l.sender == nil {
		dc, ok := l.cloud.(DeadLetterCloud)
		if !ok {
			return fault.Wrap("handler.deadLetter", fault.Permanent, "NoDeadLetterQueue",
				fmt.Errorf("no dead-letter queue configured for %q", dl.Reason))
		}
		s, err := dc.DeadLetters(ctx)
		if err != nil {
			return fmt.Errorf("build the dead-letter queue client: %w", err)
		}
		l.sender = s
	}
	body, err := json.Marshal(dl)
	if err != nil {
		return fault.Wrap("handler.deadLetter", fault.Invalid, "", err)
	}
	id, err := sendWithRetry(ctx, l.sender, taskqueue.Message{Body: body}, l.d.Sleep)
	if err != nil {
		log.ErrorContext(ctx, "dead letter not sent", slog.String("reason", dl.Reason), slog.String("messageId", dl.MessageID),
			slog.String("error", err.Error()), slog.String("class", fault.KindOf(err).String()))
		return fmt.Errorf("send to the dead-letter queue: %w", err)
	}
	l.sent++
	log.WarnContext(ctx, "dead-lettered", slog.String("reason", dl.Reason), slog.String("class", dl.Class),
		slog.String("messageId", dl.MessageID), slog.String("eventId", dl.EventID), slog.String("deadLetterId", id))
	return nil
}
