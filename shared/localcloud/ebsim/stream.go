package ebsim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/fcsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
)

// Queue is the consumer side of an MNS queue; *mnssim.Server satisfies it.
type Queue interface {
	Receive(ctx context.Context, queue string, max int, visibility time.Duration, wait time.Duration) ([]mnssim.Message, error)
	Delete(queue, receiptHandle string) error
}

// Stream limits and defaults (FC 3.0 runOptions.batchWindow, MNS).
const (
	MaxBatchCount     = 10000
	MaxBatchWindow    = 15 * time.Second
	DefaultVisibility = 60 * time.Second
	// maxReceive is the most messages one MNS receive returns.
	maxReceive = 16
	// pollWait is the long-poll wait while the queue is empty.
	pollWait = 5 * time.Second
)

// Stream is the EventBridge event stream behind an FC 3.0 MNS queue trigger
// (event-streaming mode, CloudEvents schema, errorsTolerance ALL). It receives
// messages, pushes them to Target as a JSON array of CloudEvents, deletes
// them once the push succeeded, and after the last retry dead-letters every
// message of the batch separately and deletes it, so the stream goes on. A
// failed push is retried as a whole: the same payload with RetryCount
// incremented. Set the fields, then call Run.
type Stream struct {
	Queue     Queue
	QueueName string
	// Region and AccountID appear in the events (subject, aliyun* fields);
	// defaults fcsim.DefaultRegion and fcsim.DefaultAccountID.
	Region, AccountID string
	Target            Target
	// BatchCount is CountBasedWindow: messages per push, 1..10000, default 1.
	BatchCount int
	// BatchWindow is TimeBasedWindow, 0..15 s: once a first message arrived,
	// wait up to this long to fill the batch. 0 pushes what is available.
	BatchWindow time.Duration
	// Base64Decode is IsBase64Decode: put the standard-base64-decoded body in
	// data.messageBody; a body that is not valid base64 goes unchanged.
	Base64Decode bool
	Retry        RetryPolicy
	// DLQ, when set, receives each message of a batch whose last retry
	// failed; otherwise they are discarded. Either way they are deleted.
	DLQ DeadLetter
	// Visibility is how long a received message stays invisible, default
	// 60 s. It should exceed the retries' total, or the message comes back
	// and is delivered again (as in the cloud).
	Visibility time.Duration
	// OnDelivery, when set, is called after every push attempt, from the
	// batch goroutines (possibly concurrently).
	OnDelivery func(Delivery)
	// Seed makes retry delays and duplicates repeatable.
	Seed int64
	// DuplicateRate is the probability (0..1) that a message is delivered a
	// second time, in the same batch when there is room, else in the next.
	// The copy carries the same event id; only the original is deleted or
	// dead-lettered.
	DuplicateRate float64
	// OnDuplicate, when set, is called for each copy DuplicateRate adds,
	// so a test can assert that the fault fired.
	OnDuplicate func()
	// Concurrency is the number of batches in flight at once, default 1.
	Concurrency int
	// Name is the event stream's name, used as the events' source and
	// aliyuneventbusname; default "MNS-<QueueName>-stream".
	Name string
	// Now stamps events and deliveries; default time.Now.
	Now func() time.Time
	// OnError, when set, receives the errors the stream absorbs: a failed
	// Delete (the message will come back and be delivered again) and a
	// panicking DLQ.
	OnError func(error)
}

// item is one message in a batch.
type item struct {
	msg       mnssim.Message
	eventID   string
	requestID string
	dup       bool // a chaos copy: not deleted or dead-lettered
}

// streamRun is the validated configuration of one Run.
type streamRun struct {
	s                  *Stream
	count, concurrency int
	visibility         time.Duration
	name, subject      string
	region, account    string
	now                func() time.Time
	rng                *lockedRand
	push               pusher
}

// Run consumes the queue until ctx is done, then waits for the batches in
// flight (their retries stop with ctx; their messages become visible again)
// and returns ctx's error, wrapped. It returns fault.Invalid for a bad
// configuration and the queue's error (wrapped) if receiving fails, for
// example an unknown queue. Run may be called again after it returns.
func (s *Stream) Run(ctx context.Context) error {
	r, err := s.validate()
	if err != nil {
		return err
	}
	sem := make(chan struct{}, r.concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	var carry []item
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("ebsim stream %s: %w", s.QueueName, ctx.Err())
		}
		var batch []item
		batch, carry, err = r.collect(ctx, carry)
		if err != nil {
			<-sem
			if ctx.Err() != nil {
				return fmt.Errorf("ebsim stream %s: %w", s.QueueName, ctx.Err())
			}
			return fmt.Errorf("ebsim stream %s: receive: %w", s.QueueName, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r.deliver(ctx, batch)
		}()
	}
}

func (s *Stream) validate() (*streamRun, error) {
	const op = "ebsim.Stream.Run"
	switch {
	case s.Queue == nil:
		return nil, fault.Invalidf(op, "the stream has no Queue")
	case s.QueueName == "":
		return nil, fault.Invalidf(op, "the stream has no QueueName")
	case s.Target == nil:
		return nil, fault.Invalidf(op, "stream %s has no Target", s.QueueName)
	case s.BatchCount < 0 || s.BatchCount > MaxBatchCount:
		return nil, fault.Invalidf(op, "stream %s: BatchCount %d is outside 1..%d", s.QueueName, s.BatchCount, MaxBatchCount)
	case s.BatchWindow < 0 || s.BatchWindow > MaxBatchWindow:
		return nil, fault.Invalidf(op, "stream %s: BatchWindow %s is outside 0..%s", s.QueueName, s.BatchWindow, MaxBatchWindow)
	case s.Concurrency < 0 || s.Visibility < 0:
		return nil, fault.Invalidf(op, "stream %s: Concurrency and Visibility must not be negative", s.QueueName)
	case !validRate(s.DuplicateRate):
		return nil, fault.Invalidf(op, "stream %s: DuplicateRate %v is outside 0..1", s.QueueName, s.DuplicateRate)
	}
	r := &streamRun{
		s:           s,
		count:       max(s.BatchCount, 1),
		concurrency: max(s.Concurrency, 1),
		visibility:  s.Visibility,
		name:        s.Name,
		region:      s.Region,
		account:     s.AccountID,
		now:         s.Now,
		rng:         newLockedRand(s.Seed, 0x57e4),
	}
	if r.visibility == 0 {
		r.visibility = DefaultVisibility
	}
	if r.name == "" {
		r.name = "MNS-" + s.QueueName + "-stream"
	}
	if r.region == "" {
		r.region = fcsim.DefaultRegion
	}
	if r.account == "" {
		r.account = fcsim.DefaultAccountID
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.subject = "acs:mns:" + r.region + ":" + r.account + ":queues/" + s.QueueName
	r.push = pusher{source: "stream", target: s.Target, retry: s.Retry.withDefaults(), rng: r.rng, now: r.now, onDelivery: s.OnDelivery}
	return r, nil
}

// collect gathers the next batch: the carried duplicates first, then
// messages until the batch is full or the window since the first one has
// passed. It returns the batch and what is carried to the next one.
func (r *streamRun) collect(ctx context.Context, carry []item) (batch, rest []item, err error) {
	n := min(len(carry), r.count)
	batch = append(batch, carry[:n]...)
	rest = append(rest, carry[n:]...)
	var first time.Time
	if len(batch) > 0 {
		first = time.Now()
	}
	for len(batch) < r.count {
		wait := pollWait
		if len(batch) > 0 {
			wait = max(r.s.BatchWindow-time.Since(first), 0)
		}
		msgs, err := r.s.Queue.Receive(ctx, r.s.QueueName, min(r.count-len(batch), maxReceive), r.visibility, wait)
		if err != nil {
			return nil, carry, err
		}
		if len(msgs) == 0 {
			if len(batch) == 0 {
				if err := ctx.Err(); err != nil {
					return nil, carry, err
				}
				continue // keep long-polling
			}
			break
		}
		if len(batch) == 0 {
			first = time.Now()
		}
		got := len(batch)
		for _, m := range msgs {
			batch = append(batch, item{msg: m, eventID: newUUID(), requestID: mnsRequestID()})
		}
		// Duplicates after the originals, which always fit: a copy takes a
		// free place in this batch, or goes to the next one.
		for _, it := range batch[got:] {
			if !r.rng.chance(r.s.DuplicateRate) {
				continue
			}
			it.dup = true
			if r.s.OnDuplicate != nil {
				r.s.OnDuplicate()
			}
			if len(batch) < r.count {
				batch = append(batch, it)
			} else {
				rest = append(rest, it)
			}
		}
	}
	return batch, rest, nil
}

// deliver pushes one batch and settles its messages.
func (r *streamRun) deliver(ctx context.Context, batch []item) {
	payload, events := r.payload(batch, r.now())
	ok, lastErr, err := r.push.push(ctx, payload)
	if err != nil {
		return // ctx ended: the messages come back after their visibility
	}
	for i, it := range batch {
		if it.dup {
			continue
		}
		if !ok && r.s.DLQ != nil {
			if err := safeDeadLetter(ctx, r.s.DLQ, events[i], lastErr); err != nil {
				r.report(err)
			}
		}
		if err := r.s.Queue.Delete(r.s.QueueName, it.msg.ReceiptHandle); err != nil {
			r.report(fmt.Errorf("ebsim stream %s: delete message %s: %w", r.s.QueueName, it.msg.ID, err))
		}
	}
}

func (r *streamRun) report(err error) {
	if r.s.OnError != nil {
		r.s.OnError(err)
	}
}

// cloudEvent is one message as the MNS event stream pushes it (cloud-apis.md
// §5.2), fields in the documented order.
type cloudEvent struct {
	ID                      string  `json:"id"`
	Source                  string  `json:"source"`
	SpecVersion             string  `json:"specversion"`
	Type                    string  `json:"type"`
	DataContentType         string  `json:"datacontenttype"`
	Subject                 string  `json:"subject"`
	Time                    string  `json:"time"`
	AliyunAccountID         string  `json:"aliyunaccountid"`
	AliyunPublishTime       string  `json:"aliyunpublishtime"`
	AliyunOriginalAccountID string  `json:"aliyunoriginalaccountid"`
	AliyunEventBusName      string  `json:"aliyuneventbusname"`
	AliyunRegionID          string  `json:"aliyunregionid"`
	AliyunPublishAddr       string  `json:"aliyunpublishaddr"`
	Data                    mnsData `json:"data"`
}

type mnsData struct {
	RequestID   string `json:"requestId"`
	MessageID   string `json:"messageId"`
	MessageBody string `json:"messageBody"`
}

// eventTime is the events' time format: RFC 3339 in UTC with milliseconds.
const eventTime = "2006-01-02T15:04:05.000Z07:00"

// payload encodes a batch as the JSON array the stream pushes, in one
// buffer, and returns it with each message's event (a slice of it, for the
// dead-letter queue).
func (r *streamRun) payload(batch []item, published time.Time) (payload []byte, events [][]byte) {
	var buf bytes.Buffer
	buf.Grow(len(batch) * 768)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	spans := make([][2]int, len(batch))
	buf.WriteByte('[')
	for i, it := range batch {
		if i > 0 {
			buf.WriteByte(',')
		}
		start := buf.Len()
		if err := enc.Encode(r.event(it, published)); err != nil {
			// Unreachable for these types; say so in the payload rather than panic.
			buf.Truncate(start)
			msg, _ := json.Marshal("ebsim: encode event: " + err.Error())
			buf.WriteString(`{"error":`)
			buf.Write(msg)
			buf.WriteString("}\n")
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
		spans[i] = [2]int{start, buf.Len()}
	}
	buf.WriteByte(']')
	payload = buf.Bytes()
	events = make([][]byte, len(batch))
	for i, sp := range spans {
		events[i] = payload[sp[0]:sp[1]:sp[1]]
	}
	return payload, events
}

func (r *streamRun) event(it item, published time.Time) cloudEvent {
	body := it.msg.Body
	if r.s.Base64Decode {
		if b, err := base64.StdEncoding.DecodeString(body); err == nil {
			body = string(b)
		}
	}
	enqueued := it.msg.EnqueueTime
	if enqueued.IsZero() {
		enqueued = published
	}
	return cloudEvent{
		ID:                      it.eventID,
		Source:                  r.name,
		SpecVersion:             "1.0",
		Type:                    "mns:Queue:SendMessage",
		DataContentType:         "application/json; charset=utf-8",
		Subject:                 r.subject,
		Time:                    enqueued.UTC().Format(eventTime),
		AliyunAccountID:         r.account,
		AliyunPublishTime:       published.UTC().Format(eventTime),
		AliyunOriginalAccountID: r.account,
		AliyunEventBusName:      r.name,
		AliyunRegionID:          r.region,
		AliyunPublishAddr:       "127.0.0.1",
		Data:                    mnsData{RequestID: it.requestID, MessageID: it.msg.ID, MessageBody: body},
	}
}

// mnsRequestID returns an MNS-style request id: 24 upper-case hex digits.
func mnsRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return strings.ToUpper(hex.EncodeToString(b[:]))
}
