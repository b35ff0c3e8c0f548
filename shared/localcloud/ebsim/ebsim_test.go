package ebsim_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/fc-runtime-go-sdk/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ebsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/fcsim"
)

// fast is a retry policy for tests.
var fast = ebsim.RetryPolicy{Retries: 2, MinDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}

func (r *recorder) dlq(_ context.Context, payload []byte, lastErr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dead = append(r.dead, deadLetter{payload: append([]byte(nil), payload...), lastErr: lastErr})
}

func (r *recorder) onDelivery(d ebsim.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliveries = append(r.deliveries, ebsimDelivery{attempt: d.Attempt, failed: d.Failed(), source: d.Source, at: d.Time})
}

func (r *recorder) onError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *recorder) attempts() []ebsimDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ebsimDelivery(nil), r.deliveries...)
}

func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func retries(calls []invocation) []int {
	var out []int
	for _, c := range calls {
		out = append(out, c.retry)
	}
	return out
}

func TestBusRetriesThenDeadLetters(t *testing.T) {
	t.Parallel()
	errEmulator := errors.New("emulator down")
	tests := []struct {
		name        string
		retry       ebsim.RetryPolicy
		failures    int // the first N attempts fail
		emulatorErr bool
		wantRetries []int
		wantDead    bool
		wantLastErr string
	}{
		{name: "succeeds first time", retry: fast, failures: 0, wantRetries: []int{0}},
		{name: "succeeds on the last retry", retry: fast, failures: 2, wantRetries: []int{0, 1, 2}},
		{name: "function error exhausts retries", retry: fast, failures: 99, wantRetries: []int{0, 1, 2}, wantDead: true, wantLastErr: "errorString: attempt 2 failed"},
		{name: "invoke error exhausts retries", retry: fast, failures: 99, emulatorErr: true, wantRetries: []int{0, 1, 2}, wantDead: true, wantLastErr: "emulator down"},
		{name: "default retries are 3", retry: ebsim.RetryPolicy{MinDelay: time.Millisecond, MaxDelay: time.Millisecond}, failures: 99, wantRetries: []int{0, 1, 2, 3}, wantDead: true, wantLastErr: "errorString: attempt 3 failed"},
		{name: "no retries", retry: ebsim.RetryPolicy{Retries: -1}, failures: 99, wantRetries: []int{0}, wantDead: true, wantLastErr: "errorString: attempt 0 failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			target := &fakeTarget{Fn: func(_ context.Context, payload []byte, opts fcsim.InvokeOptions) (fcsim.Result, error) {
				if opts.RetryCount >= tt.failures {
					return fcsim.Result{Body: payload}, nil
				}
				if tt.emulatorErr {
					return fcsim.Result{}, errEmulator
				}
				return functionError(fmt.Sprintf("attempt %d failed", opts.RetryCount)), nil
			}}
			rec := &recorder{}
			bus := &ebsim.Bus{Target: target, Retry: tt.retry, DLQ: rec.dlq, OnDelivery: rec.onDelivery}
			t.Cleanup(func() { _ = bus.Close() })
			event := []byte(`{"id":"e1","source":"acs.ecs","type":"ecs:Instance:StateChange","data":{"state":"Running"}}`)

			require.NoError(t, bus.Publish(waitCtx(t), event))
			require.NoError(t, bus.Wait(waitCtx(t)))

			calls := target.invocations()
			assert.Equal(t, tt.wantRetries, retries(calls))
			for _, c := range calls {
				assert.Equal(t, event, c.payload, "the event goes through unchanged")
			}
			dead := rec.deadLetters()
			if tt.wantDead {
				require.Len(t, dead, 1)
				assert.Equal(t, event, dead[0].payload)
				assert.Equal(t, tt.wantLastErr, dead[0].lastErr)
			} else {
				assert.Empty(t, dead)
			}
			attempts := rec.attempts()
			require.Len(t, attempts, len(tt.wantRetries))
			for i, d := range attempts {
				assert.Equal(t, "bus", d.source)
				assert.Equal(t, tt.wantRetries[i], d.attempt)
				assert.Equal(t, i < tt.failures, d.failed, "attempt %d", i)
			}
		})
	}
}

func TestBusRetryDelayIsRespected(t *testing.T) {
	t.Parallel()
	target := &fakeTarget{Fn: func(context.Context, []byte, fcsim.InvokeOptions) (fcsim.Result, error) {
		return functionError("no"), nil
	}}
	rec := &recorder{}
	const minDelay = 30 * time.Millisecond
	bus := &ebsim.Bus{Target: target, Retry: ebsim.RetryPolicy{Retries: 2, MinDelay: minDelay, MaxDelay: 2 * minDelay}, OnDelivery: rec.onDelivery}
	require.NoError(t, bus.Publish(waitCtx(t), []byte(`{"id":"e"}`)))
	require.NoError(t, bus.Wait(waitCtx(t)))
	attempts := rec.attempts()
	require.Len(t, attempts, 3)
	for i := 1; i < len(attempts); i++ {
		assert.GreaterOrEqual(t, attempts[i].at.Sub(attempts[i-1].at), minDelay, "gap before retry %d", i)
	}
}

func TestBusDuplicates(t *testing.T) {
	t.Parallel()
	target := &fakeTarget{}
	bus := &ebsim.Bus{Target: target, DuplicateRate: 1}
	event := []byte(`{"id":"dup-1"}`)
	require.NoError(t, bus.Publish(waitCtx(t), event))
	require.NoError(t, bus.Wait(waitCtx(t)))
	calls := target.invocations()
	require.Len(t, calls, 2)
	assert.Equal(t, event, calls[0].payload)
	assert.Equal(t, event, calls[1].payload)
	assert.Equal(t, []int{0, 0}, retries(calls), "two first deliveries, not a retry")
}

func TestBusPublishRejects(t *testing.T) {
	t.Parallel()
	closed := &ebsim.Bus{Target: &fakeTarget{}}
	require.NoError(t, closed.Close())
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		bus     *ebsim.Bus
		ctx     context.Context
		event   string
		invalid bool
		wantErr error
	}{
		{name: "no target", bus: &ebsim.Bus{}, event: `{}`, invalid: true},
		{name: "array", bus: &ebsim.Bus{Target: &fakeTarget{}}, event: `[{}]`, invalid: true},
		{name: "not json", bus: &ebsim.Bus{Target: &fakeTarget{}}, event: `{"a":`, invalid: true},
		{name: "empty", bus: &ebsim.Bus{Target: &fakeTarget{}}, event: ``, invalid: true},
		{name: "bad duplicate rate", bus: &ebsim.Bus{Target: &fakeTarget{}, DuplicateRate: 2}, event: `{}`, invalid: true},
		{name: "closed", bus: closed, event: `{}`, wantErr: ebsim.ErrClosed},
		{name: "context done", bus: &ebsim.Bus{Target: &fakeTarget{}}, ctx: cancelled, event: `{}`, wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			err := tt.bus.Publish(ctx, []byte(tt.event))
			require.Error(t, err)
			if tt.invalid {
				assert.True(t, fault.Is(err, fault.Invalid), "%v", err)
			} else {
				assert.ErrorIs(t, err, tt.wantErr)
			}
		})
	}
}

func TestBusCloseAbandonsStuckDeliveries(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	target := &fakeTarget{Fn: func(ctx context.Context, _ []byte, _ fcsim.InvokeOptions) (fcsim.Result, error) {
		close(started)
		<-ctx.Done()
		return fcsim.Result{}, ctx.Err()
	}}
	rec := &recorder{}
	bus := &ebsim.Bus{Target: target, Retry: fast, DLQ: rec.dlq}
	publishCtx, cancelPublish := context.WithCancel(context.Background())
	require.NoError(t, bus.Publish(publishCtx, []byte(`{"id":"stuck"}`)))
	cancelPublish() // the bus owns the event: this does not stop it
	<-started

	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, bus.Wait(short), context.DeadlineExceeded)

	require.NoError(t, bus.Close())
	require.NoError(t, bus.Wait(waitCtx(t)))
	assert.Len(t, target.invocations(), 1)
	assert.Empty(t, rec.deadLetters(), "an abandoned event is not dead-lettered")
}

// streamFixture runs a Stream over a fake queue until the test ends.
type streamFixture struct {
	q      *fakeQueue
	target *fakeTarget
	rec    *recorder
	done   chan error
	cancel context.CancelFunc
}

func runStream(t *testing.T, s *ebsim.Stream, q *fakeQueue, target *fakeTarget) *streamFixture {
	t.Helper()
	rec := &recorder{}
	s.Queue, s.QueueName, s.Target = q, q.name, target
	s.DLQ, s.OnDelivery, s.OnError = rec.dlq, rec.onDelivery, rec.onError
	ctx, cancel := context.WithCancel(context.Background())
	fx := &streamFixture{q: q, target: target, rec: rec, done: make(chan error, 1), cancel: cancel}
	go func() { fx.done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.ErrorIs(t, <-fx.done, context.Canceled)
	})
	return fx
}

// decodeBatch parses a stream payload as the SDK's own MNS event type, which
// also checks the time formats.
func decodeBatch(t *testing.T, payload []byte) []events.MnsQueueEvent {
	t.Helper()
	var evs []events.MnsQueueEvent
	require.NoError(t, json.Unmarshal(payload, &evs), "payload %s", payload)
	return evs
}

func bodies(t *testing.T, payload []byte) []string {
	var out []string
	for _, e := range decodeBatch(t, payload) {
		require.NotNil(t, e.Data)
		require.NotNil(t, e.Data.MessageBody)
		out = append(out, *e.Data.MessageBody)
	}
	return out
}

func TestStreamBatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		count       int
		window      time.Duration
		messages    int
		wantBatches [][]string
	}{
		{name: "one per push by default", count: 0, messages: 2, wantBatches: [][]string{{"m1"}, {"m2"}}},
		{name: "by count", count: 3, window: 10 * time.Second, messages: 6, wantBatches: [][]string{{"m1", "m2", "m3"}, {"m4", "m5", "m6"}}},
		{name: "by window", count: 10, window: 150 * time.Millisecond, messages: 2, wantBatches: [][]string{{"m1", "m2"}}},
		{name: "window 0 pushes what is there", count: 10, window: 0, messages: 2, wantBatches: [][]string{{"m1", "m2"}}},
		{name: "more than one receive fills a batch", count: 20, window: 10 * time.Second, messages: 20, wantBatches: [][]string{
			{"m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "m10", "m11", "m12", "m13", "m14", "m15", "m16", "m17", "m18", "m19", "m20"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := newFakeQueue("jobs")
			for i := 1; i <= tt.messages; i++ {
				q.send(fmt.Sprintf("m%d", i))
			}
			target := &fakeTarget{}
			begin := time.Now()
			runStream(t, &ebsim.Stream{BatchCount: tt.count, BatchWindow: tt.window}, q, target)
			require.Eventually(t, func() bool { return q.left() == 0 }, 10*time.Second, 5*time.Millisecond)

			calls := target.invocations()
			require.Len(t, calls, len(tt.wantBatches))
			for i, c := range calls {
				assert.Equal(t, tt.wantBatches[i], bodies(t, c.payload), "batch %d", i)
				assert.Equal(t, 0, c.retry)
			}
			if tt.count > tt.messages {
				assert.GreaterOrEqual(t, time.Since(begin), tt.window, "a short batch waits for the window")
			}
			for i := 1; i <= tt.messages; i++ {
				assert.Equal(t, 1, q.deleted()[fmt.Sprintf("MSG%04d", i)], "message %d deleted once", i)
			}
		})
	}
}

func TestStreamEventShape(t *testing.T) {
	t.Parallel()
	raw := `{"taskId":"t-1","note":"<&>"}`
	encoded := base64.StdEncoding.EncodeToString([]byte(raw))
	tests := []struct {
		name     string
		decode   bool
		body     string
		wantBody string
	}{
		{name: "base64 decoded", decode: true, body: encoded, wantBody: raw},
		{name: "not base64 passes through", decode: true, body: "plain text!", wantBody: "plain text!"},
		{name: "decoding off", decode: false, body: encoded, wantBody: encoded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := newFakeQueue("jobs")
			id := q.send(tt.body)
			target := &fakeTarget{}
			runStream(t, &ebsim.Stream{Region: "cn-shanghai", AccountID: "1111222233334444", Name: "MNS-poller-trigger", Base64Decode: tt.decode}, q, target)
			require.Eventually(t, func() bool { return q.left() == 0 }, 10*time.Second, 5*time.Millisecond)
			calls := target.invocations()
			require.Len(t, calls, 1)

			var generic []map[string]any
			require.NoError(t, json.Unmarshal(calls[0].payload, &generic))
			require.Len(t, generic, 1)
			keys := []string{"id", "source", "specversion", "type", "datacontenttype", "subject", "time", "aliyunaccountid",
				"aliyunpublishtime", "aliyunoriginalaccountid", "aliyuneventbusname", "aliyunregionid", "aliyunpublishaddr", "data"}
			for _, k := range keys {
				assert.Contains(t, generic[0], k)
			}

			ev := decodeBatch(t, calls[0].payload)[0]
			assert.Len(t, *ev.ID, 36)
			assert.Equal(t, "MNS-poller-trigger", *ev.Source)
			assert.Equal(t, "MNS-poller-trigger", *ev.Aliyuneventbusname)
			assert.Equal(t, "1.0", *ev.Specversion)
			assert.Equal(t, "mns:Queue:SendMessage", *ev.Type)
			assert.Equal(t, "application/json; charset=utf-8", *ev.Datacontenttype)
			assert.Equal(t, "acs:mns:cn-shanghai:1111222233334444:queues/jobs", *ev.Subject)
			assert.Equal(t, "1111222233334444", *ev.Aliyunaccountid)
			assert.Equal(t, "1111222233334444", *ev.Aliyunoriginalaccountid)
			assert.Equal(t, "cn-shanghai", *ev.Aliyunregionid)
			assert.NotEmpty(t, *ev.Aliyunpublishaddr)
			assert.False(t, ev.Time.IsZero())
			assert.False(t, ev.Aliyunpublishtime.Before(ev.Time))
			assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`, generic[0]["time"])
			assert.Regexp(t, `^[0-9A-F]{24}$`, *ev.Data.RequestID)
			assert.Equal(t, id, *ev.Data.MessageID)
			assert.Equal(t, tt.wantBody, *ev.Data.MessageBody)
		})
	}
}

func TestStreamRetriesThenDeadLettersAndGoesOn(t *testing.T) {
	t.Parallel()
	q := newFakeQueue("jobs")
	poison := q.send("poison")
	good := q.send("good")
	target := &fakeTarget{Fn: func(_ context.Context, payload []byte, opts fcsim.InvokeOptions) (fcsim.Result, error) {
		if strings.Contains(string(payload), `"messageBody":"poison"`) {
			return functionError(fmt.Sprintf("poison, retry %d", opts.RetryCount)), nil
		}
		return fcsim.Result{Body: []byte("null")}, nil
	}}
	fx := runStream(t, &ebsim.Stream{Retry: fast}, q, target)
	require.Eventually(t, func() bool { return q.left() == 0 }, 10*time.Second, 5*time.Millisecond)

	calls := target.invocations()
	require.Len(t, calls, 4)
	assert.Equal(t, []int{0, 1, 2, 0}, retries(calls))
	for _, c := range calls[1:3] {
		assert.Equal(t, calls[0].payload, c.payload, "a retry resends the same payload")
	}
	assert.Equal(t, []string{"good"}, bodies(t, calls[3].payload), "the stream goes on")

	dead := fx.rec.deadLetters()
	require.Len(t, dead, 1)
	assert.Equal(t, "errorString: poison, retry 2", dead[0].lastErr)
	var ev events.MnsQueueEvent
	require.NoError(t, json.Unmarshal(dead[0].payload, &ev), "one CloudEvent per dead letter")
	assert.Equal(t, poison, *ev.Data.MessageID)
	assert.Equal(t, map[string]int{poison: 1, good: 1}, q.deleted())
	assert.Empty(t, fx.rec.errors())
}

func TestStreamDeadLettersEveryMessageOfABatch(t *testing.T) {
	t.Parallel()
	q := newFakeQueue("jobs")
	ids := []string{q.send("a"), q.send("b"), q.send("c")}
	target := &fakeTarget{Fn: func(context.Context, []byte, fcsim.InvokeOptions) (fcsim.Result, error) {
		return functionError("down"), nil
	}}
	fx := runStream(t, &ebsim.Stream{BatchCount: 3, BatchWindow: 10 * time.Second, Retry: ebsim.RetryPolicy{Retries: 1, MinDelay: time.Millisecond, MaxDelay: time.Millisecond}}, q, target)
	require.Eventually(t, func() bool { return q.left() == 0 }, 10*time.Second, 5*time.Millisecond)
	assert.Len(t, target.invocations(), 2)
	var got []string
	for _, d := range fx.rec.deadLetters() {
		var ev events.MnsQueueEvent
		require.NoError(t, json.Unmarshal(d.payload, &ev))
		got = append(got, *ev.Data.MessageID)
	}
	assert.Equal(t, ids, got)
}

func TestStreamDuplicates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		count       int
		wantBatches []int // events per push
	}{
		{name: "same batch when there is room", count: 2, wantBatches: []int{2}},
		{name: "next batch otherwise", count: 1, wantBatches: []int{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := newFakeQueue("jobs")
			id := q.send("once")
			target := &fakeTarget{}
			fx := runStream(t, &ebsim.Stream{BatchCount: tt.count, BatchWindow: 50 * time.Millisecond, DuplicateRate: 1}, q, target)
			require.Eventually(t, func() bool { return len(target.invocations()) == len(tt.wantBatches) }, 10*time.Second, 5*time.Millisecond)

			var evs []events.MnsQueueEvent
			for i, c := range target.invocations() {
				batch := decodeBatch(t, c.payload)
				assert.Len(t, batch, tt.wantBatches[i])
				evs = append(evs, batch...)
			}
			require.Len(t, evs, 2)
			assert.Equal(t, *evs[0].ID, *evs[1].ID, "a duplicate keeps the event id")
			assert.Equal(t, id, *evs[1].Data.MessageID)
			require.Eventually(t, func() bool { return q.deleted()[id] == 1 }, 10*time.Second, 5*time.Millisecond)
			assert.Empty(t, fx.rec.errors(), "the copy is not deleted a second time")
		})
	}
}

func TestStreamConcurrency(t *testing.T) {
	t.Parallel()
	q := newFakeQueue("jobs")
	q.send("a")
	q.send("b")
	var mu sync.Mutex
	inFlight, peak := 0, 0
	both := make(chan struct{})
	target := &fakeTarget{Fn: func(ctx context.Context, _ []byte, _ fcsim.InvokeOptions) (fcsim.Result, error) {
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		if inFlight == 2 {
			close(both)
		}
		mu.Unlock()
		select { // hold the batch until the other one is in flight too
		case <-both:
		case <-ctx.Done():
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
		return fcsim.Result{Body: []byte("null")}, nil
	}}
	runStream(t, &ebsim.Stream{Concurrency: 2}, q, target)
	require.Eventually(t, func() bool { return q.left() == 0 }, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 2, peak)
}

func TestStreamRunErrors(t *testing.T) {
	t.Parallel()
	q := newFakeQueue("jobs")
	target := &fakeTarget{}
	tests := []struct {
		name    string
		stream  ebsim.Stream
		invalid bool
		wantErr error
	}{
		{name: "no queue", stream: ebsim.Stream{QueueName: "jobs", Target: target}, invalid: true},
		{name: "no queue name", stream: ebsim.Stream{Queue: q, Target: target}, invalid: true},
		{name: "no target", stream: ebsim.Stream{Queue: q, QueueName: "jobs"}, invalid: true},
		{name: "batch too big", stream: ebsim.Stream{Queue: q, QueueName: "jobs", Target: target, BatchCount: 10001}, invalid: true},
		{name: "window too long", stream: ebsim.Stream{Queue: q, QueueName: "jobs", Target: target, BatchWindow: 16 * time.Second}, invalid: true},
		{name: "negative concurrency", stream: ebsim.Stream{Queue: q, QueueName: "jobs", Target: target, Concurrency: -1}, invalid: true},
		{name: "bad duplicate rate", stream: ebsim.Stream{Queue: q, QueueName: "jobs", Target: target, DuplicateRate: -0.1}, invalid: true},
		{name: "unknown queue", stream: ebsim.Stream{Queue: q, QueueName: "other", Target: target}, wantErr: errNoQueue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.stream.Run(waitCtx(t))
			require.Error(t, err)
			if tt.invalid {
				assert.True(t, fault.Is(err, fault.Invalid), "%v", err)
			} else {
				assert.ErrorIs(t, err, tt.wantErr)
			}
		})
	}
}

func TestStreamStopsWithContextAndLeavesMessages(t *testing.T) {
	t.Parallel()
	q := newFakeQueue("jobs")
	q.send("slow")
	started := make(chan struct{})
	target := &fakeTarget{Fn: func(ctx context.Context, _ []byte, _ fcsim.InvokeOptions) (fcsim.Result, error) {
		close(started)
		<-ctx.Done()
		return fcsim.Result{}, ctx.Err()
	}}
	rec := &recorder{}
	s := &ebsim.Stream{Queue: q, QueueName: "jobs", Target: target, DLQ: rec.dlq, Retry: fast}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-started
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	assert.Equal(t, 1, q.left(), "an abandoned batch stays in the queue")
	assert.Empty(t, rec.deadLetters())
}
