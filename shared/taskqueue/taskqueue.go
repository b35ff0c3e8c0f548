// Package taskqueue sends delayed job messages to an Alibaba Cloud MNS queue
// with aliyun-mns-go-sdk v1.0.11. (Creating queues is provisioning's
// business: shared/tooling/provision.EnsureQueue.)
//
// Bodies are base64-encoded (StdEncoding) before sending, as MNS requires and
// as the FC trigger expects with IsBase64Decode: true. The endpoint,
// credential, context and classification rules are shared/mnsconn's; this
// package adds what is particular to queues: names, priorities, delays and
// batches.
//
// Every error is a *fault.Error (Op "taskqueue.New", "mns.SendMessage",
// "mns.BatchSendMessage" or "mns.CreateQueue"; Code = the MNS error code when
// the service sent one):
//   - fault.Invalid: bad configuration or message; no request was made.
//   - fault.Retryable: transport failures and timeouts, QpsLimitExceeded,
//     InternalError, any HTTP 5xx, unparsable responses.
//   - fault.Permanent: everything else (InvalidArgument, QueueNotExist,
//     AccessDenied, SignatureDoesNotMatch, MalformedXML, …), a panic inside
//     the SDK, and a context that was cancelled or expired (fault.IsContext
//     reports those).
package taskqueue

import (
	"context"
	"fmt"
	"time"

	ali_mns "github.com/aliyun/aliyun-mns-go-sdk"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/mnsconn"
)

// Limits and defaults.
const (
	// MaxBodyBytes is the MNS limit on a message body as sent on the wire,
	// i.e. after base64 encoding (about 48 KiB of raw payload). It is also
	// the limit on the total of one batch request.
	MaxBodyBytes = mnsconn.MaxBodyBytes
	// MaxBatch is the largest number of messages in one batch request.
	MaxBatch = 16
	// MaxDelay is the longest message delay MNS accepts (7 days).
	MaxDelay = 604800 * time.Second
	// DefaultPriority is used when Config.Priority is 0 (1 is most urgent).
	DefaultPriority = 8
	// DefaultTimeout bounds one MNS request when Config.Timeout is 0.
	DefaultTimeout = mnsconn.DefaultTimeout

	opNew   = "taskqueue.New"
	opSend  = "mns.SendMessage"
	opBatch = "mns.BatchSendMessage"
)

// Config says where to send.
type Config struct {
	// Endpoint is "https://<accountId>.mns.<region>.aliyuncs.com" (or the
	// "-internal" region form), or for the local emulator
	// "http://127.0.0.1:PORT" / "http://localhost:PORT". Any http:// endpoint
	// must be a loopback host.
	Endpoint string
	// Queue is the queue name: 1..120 characters of [A-Za-z0-9-], starting
	// with a letter.
	Queue string
	// Priority of every message, 1 (most urgent) to 16; 0 means 8.
	Priority int
	// Timeout bounds one request (default 10 s); the context's deadline
	// shortens it further.
	Timeout time.Duration
	// AccountID and Region only build the MNS-shaped host name used with a
	// loopback endpoint (defaults "1234567890" and "cn-hangzhou").
	AccountID, Region string
}

// Message is one job message.
type Message struct {
	Body  []byte        // raw payload; sent base64-encoded
	Delay time.Duration // rounded up to whole seconds, clamped to 0..7 days
}

// Sender sends messages to one queue with one set of credentials. It is safe
// for concurrent use: each request builds its own SDK client and queue (the
// SDK's MNSQueue races in its QPS monitor). Build one per invocation, since
// Function Compute hands out fresh STS credentials with each.
type Sender struct {
	cfg  Config
	conn *mnsconn.Conn
}

// New validates cfg and cred and returns a Sender. It makes no request and
// never panics; every error is fault.Invalid.
func New(cfg Config, cred cloudauth.Credentials) (*Sender, error) {
	if !ident.QueueName.Valid(cfg.Queue) {
		return nil, fault.Invalidf(opNew,
			"queue name %q is invalid: want 1..120 characters of letters, digits and '-', starting with a letter", cfg.Queue)
	}
	switch {
	case cfg.Priority == 0:
		cfg.Priority = DefaultPriority
	case cfg.Priority < 1 || cfg.Priority > 16:
		return nil, fault.Invalidf(opNew, "priority %d is out of range 1..16", cfg.Priority)
	}
	conn, err := mnsconn.New(opNew, mnsconn.Config{
		Endpoint: cfg.Endpoint, Timeout: cfg.Timeout, AccountID: cfg.AccountID, Region: cfg.Region,
	}, cred)
	if err != nil {
		return nil, err
	}
	return &Sender{cfg: cfg, conn: conn}, nil
}

// do runs call through the connection; see mnsconn.Conn.Do.
func (s *Sender) do(ctx context.Context, op string, call func(ali_mns.MNSClient) error) error {
	return s.conn.Do(ctx, op, "queue "+s.cfg.Queue, call)
}

// encode turns a Message into the SDK's request: base64 body, delay in whole
// seconds rounded up and clamped, explicit priority. Its errors are bad
// input, for the caller to classify as Invalid.
func (s *Sender) encode(m Message) (ali_mns.MessageSendRequest, error) {
	body, err := mnsconn.EncodeBody(m.Body)
	if err != nil {
		return ali_mns.MessageSendRequest{}, err
	}
	return ali_mns.MessageSendRequest{
		MessageBody:  body,
		DelaySeconds: delaySeconds(m.Delay),
		Priority:     int64(s.cfg.Priority),
	}, nil
}

func delaySeconds(d time.Duration) int64 {
	switch {
	case d <= 0:
		return 0
	case d >= MaxDelay:
		return int64(MaxDelay / time.Second)
	}
	return int64((d + time.Second - 1) / time.Second)
}

// Send sends one message and returns its MNS message ID.
func (s *Sender) Send(ctx context.Context, m Message) (string, error) {
	req, err := s.encode(m)
	if err != nil {
		return "", fault.Wrap(opSend, fault.Invalid, "", fmt.Errorf("queue %s: %w", s.cfg.Queue, err))
	}
	var resp ali_mns.MessageSendResponse
	err = s.do(ctx, opSend, func(c ali_mns.MNSClient) error {
		var serr error
		resp, serr = ali_mns.NewMNSQueue(s.cfg.Queue, c).SendMessage(req)
		return serr
	})
	if err != nil {
		return "", err
	}
	return resp.MessageId, nil
}
