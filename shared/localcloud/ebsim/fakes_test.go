package ebsim_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/fcsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
)

var (
	errNoQueue = errors.New("fake queue: no such queue")
	errHandle  = errors.New("fake queue: stale receipt handle")
)

// fakeQueue is an in-memory MNS queue with visibility and long polling.
type fakeQueue struct {
	name string

	mu      sync.Mutex
	seq     int
	msgs    []*mnssim.Message // in enqueue order
	deletes map[string]int    // message ID → successful deletes
	changed chan struct{}
}

func newFakeQueue(name string) *fakeQueue {
	return &fakeQueue{name: name, deletes: map[string]int{}, changed: make(chan struct{})}
}

// send enqueues body, visible at once.
func (q *fakeQueue) send(body string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	now := time.Now()
	m := &mnssim.Message{ID: fmt.Sprintf("MSG%04d", q.seq), Body: body, Priority: 8, EnqueueTime: now, VisibleAt: now, Queue: q.name}
	q.msgs = append(q.msgs, m)
	close(q.changed)
	q.changed = make(chan struct{})
	return m.ID
}

func (q *fakeQueue) Receive(ctx context.Context, queue string, max int, visibility, wait time.Duration) ([]mnssim.Message, error) {
	if queue != q.name {
		return nil, errNoQueue
	}
	deadline := time.Now().Add(wait)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		q.mu.Lock()
		now := time.Now()
		var out []mnssim.Message
		for _, m := range q.msgs {
			if len(out) == max {
				break
			}
			if m.VisibleAt.After(now) {
				continue
			}
			q.seq++
			m.ReceiptHandle = fmt.Sprintf("H%d", q.seq)
			m.VisibleAt = now.Add(visibility)
			m.DequeueCount++
			out = append(out, *m)
		}
		changed := q.changed
		q.mu.Unlock()
		left := time.Until(deadline)
		if len(out) > 0 || left <= 0 {
			return out, nil
		}
		t := time.NewTimer(left)
		select {
		case <-ctx.Done():
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

func (q *fakeQueue) Delete(queue, handle string) error {
	if queue != q.name {
		return errNoQueue
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, m := range q.msgs {
		if m.ReceiptHandle == handle {
			q.deletes[m.ID]++
			q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
			return nil
		}
	}
	return errHandle
}

// left returns how many messages are still in the queue.
func (q *fakeQueue) left() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs)
}

func (q *fakeQueue) deleted() map[string]int {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := map[string]int{}
	for k, v := range q.deletes {
		out[k] = v
	}
	return out
}

// invocation is one call a fakeTarget saw.
type invocation struct {
	payload []byte
	retry   int
}

// fakeTarget records invocations and answers with Fn (success when nil).
type fakeTarget struct {
	Fn func(ctx context.Context, payload []byte, opts fcsim.InvokeOptions) (fcsim.Result, error)

	mu    sync.Mutex
	calls []invocation
}

func (f *fakeTarget) Invoke(ctx context.Context, payload []byte, opts fcsim.InvokeOptions) (fcsim.Result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, invocation{payload: append([]byte(nil), payload...), retry: opts.RetryCount})
	f.mu.Unlock()
	if f.Fn == nil {
		return fcsim.Result{Body: []byte("null")}, nil
	}
	return f.Fn(ctx, payload, opts)
}

func (f *fakeTarget) invocations() []invocation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]invocation(nil), f.calls...)
}

// functionError is what a failing function returns.
func functionError(msg string) fcsim.Result {
	return fcsim.Result{Err: &fcsim.InvokeError{Message: msg, Type: "errorString"}}
}

// recorder collects dead letters and deliveries.
type recorder struct {
	mu         sync.Mutex
	dead       []deadLetter
	deliveries []ebsimDelivery
	errs       []error
}

type deadLetter struct {
	payload []byte
	lastErr string
}

type ebsimDelivery struct {
	attempt int
	failed  bool
	source  string
	at      time.Time
}

func (r *recorder) deadLetters() []deadLetter {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]deadLetter(nil), r.dead...)
}

func (r *recorder) errors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}
