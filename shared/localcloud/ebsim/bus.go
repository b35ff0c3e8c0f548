package ebsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

// Bus is the default event bus with rules targeting one function
// (event-driven: one CloudEvent per invocation, no batching). Set the fields,
// then call Publish; a Bus must not be copied after first use. It is safe for
// concurrent use.
type Bus struct {
	Target Target
	// Rules are the event patterns of the rules (triggers) that target the
	// function. An event is delivered once per rule it matches, as in the
	// cloud; an event no rule matches is not delivered, is counted (see
	// Unmatched) and goes to OnUnmatched. No rules: every event is delivered
	// once.
	Rules []*Pattern
	// OnUnmatched, when set, receives each event no rule matched.
	OnUnmatched func(event []byte)
	// OnDuplicate, when set, is called for each extra copy DuplicateRate
	// adds, so a test can assert that the fault fired.
	OnDuplicate func()
	Retry       RetryPolicy
	// DLQ, when set, receives events whose last retry failed; otherwise they
	// are discarded.
	DLQ DeadLetter
	// OnDelivery, when set, is called after every push attempt, from the
	// delivery goroutines (possibly concurrently).
	OnDelivery func(Delivery)
	// Seed makes retry delays and duplicates repeatable.
	Seed int64
	// DuplicateRate is the probability (0..1) that an event is delivered
	// twice (two independent deliveries of the same bytes).
	DuplicateRate float64
	// Now stamps deliveries; default time.Now.
	Now func() time.Time

	once sync.Once
	rng  *lockedRand
	// life is cancelled by Close; every delivery runs under it.
	life context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	pending   int
	unmatched int
	idle      chan struct{} // closed and replaced each time pending drops to 0
}

func (b *Bus) init() {
	b.once.Do(func() {
		b.rng = newLockedRand(b.Seed, 0xb05)
		b.life, b.stop = context.WithCancel(context.Background())
		b.idle = make(chan struct{})
	})
}

// Publish accepts one event (a JSON object, passed to the target unchanged)
// and delivers it asynchronously: it returns at once. A failed push (function
// error or invoke error) is retried with RetryCount = attempt, then
// dead-lettered. The delivery outlives ctx (the bus owns the event once it is
// accepted) but keeps its values; Close stops it. Publish returns
// fault.Invalid for a bad event or configuration, ErrClosed after Close, and
// ctx's error if ctx is already done.
func (b *Bus) Publish(ctx context.Context, event []byte) error {
	const op = "ebsim.Bus.Publish"
	if b.Target == nil {
		return fault.Invalidf(op, "the bus has no Target")
	}
	if !validRate(b.DuplicateRate) {
		return fault.Invalidf(op, "DuplicateRate %v is outside 0..1", b.DuplicateRate)
	}
	if t := bytes.TrimSpace(event); len(t) == 0 || t[0] != '{' || !json.Valid(t) {
		return fault.Invalidf(op, "an event must be one JSON object (%d bytes given)", len(event))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	b.init()
	copies := 1
	if len(b.Rules) > 0 {
		copies = 0
		// Read once for every rule; each reads only the fields it names.
		if ev, ok := parseEvent(event); ok {
			for _, r := range b.Rules {
				if matchObject(r.root, ev) {
					copies++
				}
			}
		}
		if copies == 0 {
			b.mu.Lock()
			b.unmatched++
			b.mu.Unlock()
			if b.OnUnmatched != nil {
				b.OnUnmatched(bytes.Clone(event))
			}
			return nil
		}
	}
	if b.rng.chance(b.DuplicateRate) {
		if b.OnDuplicate != nil {
			for range copies {
				b.OnDuplicate()
			}
		}
		copies *= 2
	}
	ev := bytes.Clone(event)

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.pending += copies
	b.wg.Add(copies)
	b.mu.Unlock()

	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(b.life, cancel)
	var left atomic.Int32 // copies still running; the last one releases dctx
	left.Store(int32(copies))
	for range copies {
		go func() {
			defer b.done()
			b.deliver(dctx, ev)
			if left.Add(-1) == 0 {
				stop()
				cancel()
			}
		}()
	}
	return nil
}

func (b *Bus) deliver(ctx context.Context, event []byte) {
	now := b.Now
	if now == nil {
		now = time.Now
	}
	p := pusher{source: "bus", target: b.Target, retry: b.Retry.withDefaults(), rng: b.rng, now: now, onDelivery: b.OnDelivery}
	ok, lastErr, err := p.push(ctx, event)
	if ok || err != nil || b.DLQ == nil {
		return
	}
	_ = safeDeadLetter(ctx, b.DLQ, event, lastErr)
}

func (b *Bus) done() {
	b.mu.Lock()
	b.pending--
	if b.pending == 0 {
		close(b.idle)
		b.idle = make(chan struct{})
	}
	b.mu.Unlock()
	b.wg.Done()
}

// Wait returns once every published event has been delivered, dead-lettered
// or abandoned by Close, or ctx's error (wrapped) when ctx ends first.
func (b *Bus) Wait(ctx context.Context) error {
	b.init()
	b.mu.Lock()
	if b.pending == 0 {
		b.mu.Unlock()
		return nil
	}
	idle := b.idle
	b.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ebsim.Bus.Wait: %w", ctx.Err())
	}
}

// Unmatched returns how many published events no rule matched.
func (b *Bus) Unmatched() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.unmatched
}

// Close stops accepting events, abandons the deliveries in progress (they are
// neither retried nor dead-lettered) and waits for their goroutines.
func (b *Bus) Close() error {
	b.init()
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.stop()
	b.wg.Wait()
	return nil
}
