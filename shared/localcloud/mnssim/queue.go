package mnssim

import (
	"container/heap"
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// QueueAttributes are a queue's settings, in the service's units (seconds,
// bytes). Zero values in CreateQueue requests mean the service default.
type QueueAttributes struct {
	DelaySeconds           int
	MaximumMessageSize     int
	MessageRetentionPeriod int
	VisibilityTimeout      int
	PollingWaitSeconds     int
	LoggingEnabled         bool
}

// DefaultQueueAttributes are the service defaults (cloud-apis.md §6).
func DefaultQueueAttributes() QueueAttributes {
	return QueueAttributes{
		DelaySeconds:           0,
		MaximumMessageSize:     MaxBodyBytes,
		MessageRetentionPeriod: 345600,
		VisibilityTimeout:      30,
		PollingWaitSeconds:     0,
	}
}

// validate checks the documented ranges and returns an InvalidArgument
// message, or "".
func (a QueueAttributes) validate() string {
	switch {
	case a.DelaySeconds < 0 || a.DelaySeconds > MaxDelaySeconds:
		return fmt.Sprintf("The value of DelaySeconds should between 0 and %d seconds.", MaxDelaySeconds)
	case a.MaximumMessageSize < 1024 || a.MaximumMessageSize > MaxBodyBytes:
		return fmt.Sprintf("The value of MaximumMessageSize should between 1024 and %d bytes.", MaxBodyBytes)
	case a.MessageRetentionPeriod < 60 || a.MessageRetentionPeriod > 604800:
		return "The value of MessageRetentionPeriod should between 60 and 604800 seconds."
	case a.VisibilityTimeout < 1 || a.VisibilityTimeout > MaxVisibility:
		return fmt.Sprintf("The value of VisibilityTimeout should between 1 and %d seconds.", MaxVisibility)
	case a.PollingWaitSeconds < 0 || a.PollingWaitSeconds > MaxWaitSeconds:
		return fmt.Sprintf("The value of PollingWaitSeconds should between 0 and %d seconds.", MaxWaitSeconds)
	}
	return ""
}

type queue struct {
	name     string
	attrs    QueueAttributes
	created  time.Time
	modified time.Time
	msgs     map[string]*message // by message ID
	handles  map[string]*message // current receipt handle → message
	// The indexes of index.go.
	ready   readyHeap
	waiting waitingHeap
	byAge   ageHeap
	// settled is a time at which every ready message is visible: the
	// latest now one was judged visible at (index.go).
	settled time.Time
}

type message struct {
	Message
	seq uint64
	// Positions in the queue's indexes (index.go): in ready when ready,
	// else in waiting, at visIdx; in byAge at ageIdx.
	ready          bool
	visIdx, ageIdx int
}

var queueNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)

// checkQueueName returns the MNS error for an invalid queue name, or nil.
func checkQueueName(name string) *apiError {
	if len(name) < 1 || len(name) > 256 {
		return &apiError{400, "QueueNameLengthError", "Queue name length should between 1 and 256."}
	}
	if !queueNameRE.MatchString(name) {
		return &apiError{400, "InvalidQueueName",
			"The queue name you provided is invalid. QueueName should start with alpha and contain only alpha, digit or - ."}
	}
	return nil
}

// CreateQueue creates a queue with the service's default attributes. It does
// nothing if the queue exists.
func (s *Server) CreateQueue(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.queues[name]; ok {
		return
	}
	s.createQueueLocked(name, DefaultQueueAttributes())
}

func (s *Server) createQueueLocked(name string, attrs QueueAttributes) {
	now := s.now()
	s.queues[name] = &queue{
		name:     name,
		attrs:    attrs,
		created:  now,
		modified: now,
		msgs:     make(map[string]*message),
		handles:  make(map[string]*message),
	}
	s.broadcastLocked()
}

// Attributes returns a queue's attributes.
func (s *Server) Attributes(name string) (QueueAttributes, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[name]
	if !ok {
		return QueueAttributes{}, ErrQueueNotExist
	}
	return q.attrs, nil
}

// entry is one message to enqueue; delay < 0 means the queue's DelaySeconds.
type entry struct {
	body      string
	delay     int
	priority  int
	principal string
}

// validateEntry returns an InvalidArgument message, or "".
func validateEntry(e entry, maxSize int) string {
	switch {
	case len(e.body) == 0 || len(e.body) > maxSize:
		return fmt.Sprintf("The value of MessageBody should between 1 and %d bytes, but it is %d bytes.", maxSize, len(e.body))
	case e.delay > MaxDelaySeconds:
		return fmt.Sprintf("The value of DelaySeconds should between 0 and %d seconds.", MaxDelaySeconds)
	case e.priority < 1 || e.priority > 16:
		return "The value of Priority should between 1 and 16"
	}
	return ""
}

// enqueueLocked stores a validated entry and returns a copy of the stored
// message.
func (s *Server) enqueueLocked(q *queue, e entry) Message {
	now := s.now()
	delay := e.delay
	if delay < 0 {
		delay = q.attrs.DelaySeconds
	}
	id := s.newIDLocked(now)
	m := &message{Message: Message{
		ID:           id,
		Body:         e.body,
		BodyMD5:      bodyMD5(e.body),
		Priority:     e.priority,
		DelaySeconds: delay,
		EnqueueTime:  now,
		VisibleAt:    now.Add(time.Duration(delay) * time.Second),
		Queue:        q.name,
		Principal:    e.principal,
	}, seq: s.seq}
	if delay > 0 {
		// A delayed message gets a handle at once, so it can be deleted
		// before it is delivered.
		s.issueHandleLocked(q, m)
	}
	q.msgs[m.ID] = m
	q.add(m, now)
	s.sent[q.name]++
	s.broadcastLocked()
	return m.Message
}

// issueHandleLocked gives m a fresh receipt handle and invalidates its old one.
func (s *Server) issueHandleLocked(q *queue, m *message) {
	if m.ReceiptHandle != "" {
		delete(q.handles, m.ReceiptHandle)
	}
	s.seq++
	raw := fmt.Sprintf("%s-%d-%08x", m.ID, s.seq, s.rng.Uint32())
	m.ReceiptHandle = fmt.Sprintf("%d-%s", s.seq, base64.StdEncoding.EncodeToString([]byte(raw)))
	q.handles[m.ReceiptHandle] = m
}

// Send enqueues one message in-process, as SendMessage would: body as it
// would appear on the wire, delay rounded down to whole seconds (negative:
// the queue's DelaySeconds), priority 1..16 (0: 8). It returns
// ErrQueueNotExist or an error wrapping ErrInvalidArgument.
func (s *Server) Send(queue, body string, delay time.Duration, priority int) (Message, error) {
	if priority == 0 {
		priority = DefaultPriority
	}
	e := entry{body: body, delay: int(delay / time.Second), priority: priority}
	if delay < 0 {
		e.delay = -1
	}
	s.mu.Lock()
	q, ok := s.queues[queue]
	if !ok {
		s.mu.Unlock()
		return Message{}, ErrQueueNotExist
	}
	if msg := validateEntry(e, q.attrs.MaximumMessageSize); msg != "" {
		s.mu.Unlock()
		return Message{}, &argError{msg}
	}
	m := s.enqueueLocked(q, e)
	hooks := s.hooks
	s.mu.Unlock()
	runHooks(hooks, []Message{m})
	return m, nil
}

func runHooks(hooks []func(Message), msgs []Message) {
	for _, m := range msgs {
		for _, h := range hooks {
			h(m)
		}
	}
}

// expireLocked drops messages older than the retention period.
func (s *Server) expireLocked(q *queue, now time.Time) {
	keep := time.Duration(q.attrs.MessageRetentionPeriod) * time.Second
	for len(q.byAge) > 0 && now.Sub(q.byAge[0].EnqueueTime) >= keep {
		q.remove(q.byAge[0])
	}
}

// takeLocked returns up to max visible messages, by priority then enqueue
// order. Unless peek, it makes them invisible for visibility and gives each a
// new receipt handle. next is the earliest time a not-yet-visible message
// becomes visible (zero if none).
func (s *Server) takeLocked(name string, limit int, visibility time.Duration, peek bool) (msgs []Message, next time.Time, err error) {
	q, ok := s.queues[name]
	if !ok {
		return nil, time.Time{}, ErrQueueNotExist
	}
	now := s.now()
	s.expireLocked(q, now)
	q.settle(now)
	next = q.nextVisible()
	if visibility <= 0 {
		visibility = time.Duration(q.attrs.VisibilityTimeout) * time.Second
	}
	var taken []*message
	for len(taken) < limit && len(q.ready) > 0 {
		taken = append(taken, heap.Pop(&q.ready).(*message))
	}
	for _, m := range taken {
		if peek {
			c := m.Message
			c.ReceiptHandle = ""
			msgs = append(msgs, c)
			heap.Push(&q.ready, m)
			continue
		}
		m.DequeueCount++
		if m.FirstDequeueTime.IsZero() {
			m.FirstDequeueTime = now
		}
		m.VisibleAt = now.Add(visibility)
		s.issueHandleLocked(q, m)
		q.place(m, now)
		msgs = append(msgs, m.Message)
	}
	return msgs, next, nil
}

// Receive returns up to max (at least 1) visible messages of the queue,
// highest priority (lowest number) first, then in enqueue order, and makes
// them invisible for visibility (≤ 0: the queue's VisibilityTimeout), each
// with a new receipt handle. If none is visible it waits up to wait for one,
// waking when a message arrives or a delayed or in-flight one becomes
// visible. It returns nil, nil when the wait ends empty; ErrQueueNotExist,
// the context's error, or ErrClosed otherwise.
func (s *Server) Receive(ctx context.Context, queue string, max int, visibility, wait time.Duration) ([]Message, error) {
	limit := max
	if limit < 1 {
		limit = 1
	}
	deadline := time.Now().Add(wait)
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("mnssim: receive from %s: %w", queue, err)
		}
		s.mu.Lock()
		msgs, next, err := s.takeLocked(queue, limit, visibility, false)
		now := s.now()
		changed := s.changed
		s.mu.Unlock()
		if err != nil || len(msgs) > 0 {
			return msgs, err
		}
		d := time.Until(deadline)
		if d <= 0 {
			return nil, nil
		}
		if !next.IsZero() {
			if until := next.Sub(now); until < d {
				d = until
				if d < time.Millisecond {
					d = time.Millisecond
				}
			}
		}
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("mnssim: receive from %s: %w", queue, ctx.Err())
		case <-s.done:
			timer.Stop()
			return nil, ErrClosed
		case <-changed:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// Peek returns up to max visible messages without changing them (no receipt
// handle, no dequeue count).
func (s *Server) Peek(queue string, limit int) ([]Message, error) {
	if limit < 1 {
		limit = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	msgs, _, err := s.takeLocked(queue, limit, 0, true)
	return msgs, err
}

// lookupLocked resolves a receipt handle that is current and still inside its
// invisibility window.
func (s *Server) lookupLocked(name, handle string) (*queue, *message, error) {
	q, ok := s.queues[name]
	if !ok {
		return nil, nil, ErrQueueNotExist
	}
	if !wellFormedHandle(handle) {
		return q, nil, ErrReceiptHandle
	}
	m, ok := q.handles[handle]
	if !ok || !m.VisibleAt.After(s.now()) {
		return q, nil, ErrMessageNotExist
	}
	return q, m, nil
}

// wellFormedHandle reports whether h has the shape of the handles this
// emulator issues: "<number>-<base64>".
func wellFormedHandle(h string) bool {
	num, rest, ok := strings.Cut(h, "-")
	if !ok || num == "" || rest == "" {
		return false
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return false
		}
	}
	_, err := base64.StdEncoding.DecodeString(rest)
	return err == nil
}

// Delete removes the message holding receiptHandle. It returns
// ErrQueueNotExist, ErrReceiptHandle (never issued) or ErrMessageNotExist
// (stale, used, or its invisibility window has ended).
func (s *Server) Delete(queue, receiptHandle string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, m, err := s.lookupLocked(queue, receiptHandle)
	if err != nil {
		return err
	}
	q.remove(m)
	return nil
}

// ChangeVisibility makes the message holding receiptHandle visible again
// after visibility (1 s to 12 h, whole seconds) and returns its new receipt
// handle; the old one stops working. Errors as Delete, or ErrInvalidArgument.
func (s *Server) ChangeVisibility(queue, receiptHandle string, visibility time.Duration) (Message, error) {
	secs := int(visibility / time.Second)
	if secs < 1 || secs > MaxVisibility {
		return Message{}, &argError{fmt.Sprintf("The value of VisibilityTimeout should between 1 and %d seconds.", MaxVisibility)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, m, err := s.lookupLocked(queue, receiptHandle)
	if err != nil {
		return Message{}, err
	}
	now := s.now()
	m.VisibleAt = now.Add(time.Duration(secs) * time.Second)
	q.moved(m, now)
	s.issueHandleLocked(q, m)
	s.broadcastLocked()
	return m.Message, nil
}

// argError is an ErrInvalidArgument carrying the service's message.
type argError struct{ msg string }

func (e *argError) Error() string        { return ErrInvalidArgument.Error() + ": " + e.msg }
func (e *argError) Is(target error) bool { return target == ErrInvalidArgument }

func secondsDuration(n int) time.Duration { return time.Duration(n) * time.Second }

// Depth counts a queue's messages: visible now, delayed (never received, not
// yet visible) and in flight (received, invisible). An unknown queue counts
// zero.
func (s *Server) Depth(queue string) (visible, delayed, inflight int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[queue]
	if !ok {
		return 0, 0, 0
	}
	now := s.now()
	s.expireLocked(q, now)
	q.settle(now)
	visible, delayed = len(q.ready), q.waiting.fresh
	return visible, delayed, len(q.waiting.items) - delayed
}

// Messages returns a snapshot of a queue's stored messages in enqueue order.
func (s *Server) Messages(queue string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[queue]
	if !ok {
		return nil
	}
	all := make([]*message, 0, len(q.msgs))
	for _, m := range q.msgs {
		all = append(all, m)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].seq < all[j].seq })
	out := make([]Message, len(all))
	for i, m := range all {
		out[i] = m.Message
	}
	return out
}
