// Package ebsim emulates the two EventBridge paths that feed this project's
// functions: the default event bus pushing single CloudEvents (ECS events) to
// a function ([Bus], event-driven mode), and the event stream behind an FC 3.0
// MNS queue trigger ([Stream], event-streaming mode), which receives queue
// messages, wraps them in a JSON array of CloudEvents and pushes them in
// batches.
//
// Both push synchronously to a [Target] (an *fcsim.Function satisfies it) and
// treat a function error or an invoke error as a failed push, retried with a
// BACKOFF_RETRY-style [RetryPolicy]; after the last retry the event goes to
// the [DeadLetter] (errorsTolerance ALL: the stream goes on). Delivery is at
// least once; DuplicateRate injects duplicates on purpose.
//
// Errors: Publish and Run return fault.Invalid for a bad configuration or
// event, [ErrClosed] after Bus.Close, the context's error (wrapped) when it
// ends, and Run returns the queue's error (wrapped) when receiving fails.
// Failed pushes are never returned: they are reported through OnDelivery and
// DeadLetter.
package ebsim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/fcsim"
)

// Target is what events are pushed to; *fcsim.Function satisfies it.
type Target interface {
	Invoke(ctx context.Context, payload []byte, opts fcsim.InvokeOptions) (fcsim.Result, error)
}

// Real-cloud BACKOFF_RETRY values, used for a zero RetryPolicy.
const (
	DefaultRetries  = 3
	DefaultMinDelay = 10 * time.Second
	DefaultMaxDelay = 20 * time.Second
)

// RetryPolicy is BACKOFF_RETRY: up to Retries retries after the first push,
// each after a random delay in [MinDelay, MaxDelay].
type RetryPolicy struct {
	// Retries is the number of retries; 0 means DefaultRetries (3), a
	// negative value means none.
	Retries int
	// MinDelay and MaxDelay bound the random delay before each retry. When
	// both are zero the real cloud's 10–20 s apply; tests pass small values.
	MinDelay, MaxDelay time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	switch {
	case p.Retries == 0:
		p.Retries = DefaultRetries
	case p.Retries < 0:
		p.Retries = 0
	}
	if p.MinDelay <= 0 && p.MaxDelay <= 0 {
		p.MinDelay, p.MaxDelay = DefaultMinDelay, DefaultMaxDelay
	}
	p.MinDelay = max(p.MinDelay, 0)
	p.MaxDelay = max(p.MaxDelay, p.MinDelay)
	return p
}

// DeadLetter receives an event whose last retry failed, with the last error.
// For the bus the payload is the event as published; for the stream it is
// the CloudEvent of one message (a JSON object), one call per message.
type DeadLetter func(ctx context.Context, payload []byte, lastErr string)

// Delivery reports one push attempt.
type Delivery struct {
	Time time.Time
	// Source is "bus" or "stream".
	Source  string
	Payload []byte
	// Attempt is the retry number sent as x-fc-retry-count: 0 for the first
	// push, 1 for the first retry, …
	Attempt int
	Result  fcsim.Result
	// Err is the invoke error (emulator failure or context), if any; a
	// function error is in Result.Err.
	Err error
}

// Failed reports whether the push failed (either way).
func (d Delivery) Failed() bool { return d.Err != nil || d.Result.Err != nil }

// ErrClosed is returned by Publish after Bus.Close.
var ErrClosed = errors.New("ebsim: bus is closed")

// pusher runs one event through the retry policy.
type pusher struct {
	source     string
	target     Target
	retry      RetryPolicy // with defaults applied
	rng        *lockedRand
	now        func() time.Time
	onDelivery func(Delivery)
}

// push delivers payload until it succeeds or the retries are spent. It
// returns ok, the last failure's text, and ctx's error if ctx ended first
// (the event is then abandoned: neither delivered nor dead-lettered).
func (p pusher) push(ctx context.Context, payload []byte) (ok bool, lastErr string, err error) {
	for attempt := 0; ; attempt++ {
		res, ierr := safeInvoke(ctx, p.target, payload, fcsim.InvokeOptions{RetryCount: attempt})
		if p.onDelivery != nil {
			p.onDelivery(Delivery{Time: p.now(), Source: p.source, Payload: payload, Attempt: attempt, Result: res, Err: ierr})
		}
		switch {
		case ierr == nil && res.Err == nil:
			return true, "", nil
		case ierr != nil:
			lastErr = ierr.Error()
		default:
			lastErr = res.Err.Error()
		}
		if ctx.Err() != nil {
			return false, lastErr, ctx.Err()
		}
		if attempt >= p.retry.Retries {
			return false, lastErr, nil
		}
		if err := sleep(ctx, p.rng.between(p.retry.MinDelay, p.retry.MaxDelay)); err != nil {
			return false, lastErr, err
		}
	}
}

// safeInvoke calls t.Invoke, turning a panic into an error.
func safeInvoke(ctx context.Context, t Target, payload []byte, opts fcsim.InvokeOptions) (res fcsim.Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("ebsim: target panicked: %v", v)
		}
	}()
	return t.Invoke(ctx, payload, opts)
}

// safeDeadLetter calls dlq, swallowing a panic (it has nowhere to go).
func safeDeadLetter(ctx context.Context, dlq DeadLetter, payload []byte, lastErr string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("ebsim: dead-letter handler panicked: %v", v)
		}
	}()
	dlq(ctx, payload, lastErr)
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lockedRand is a seeded generator safe for concurrent use.
type lockedRand struct {
	mu sync.Mutex
	r  *mrand.Rand
}

func newLockedRand(seed int64, stream uint64) *lockedRand {
	return &lockedRand{r: mrand.New(mrand.NewPCG(uint64(seed), stream))}
}

// chance reports true with probability p.
func (l *lockedRand) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64() < p
}

// between returns a duration in [lo, hi].
func (l *lockedRand) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return lo + time.Duration(l.r.Int64N(int64(hi-lo)+1))
}

// newUUID returns a random RFC 4122 version 4 UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func validRate(r float64) bool { return r >= 0 && r <= 1 }
