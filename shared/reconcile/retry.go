package reconcile

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

// Retries of a sweep's read calls (an ECS listing page, a
// DescribeBackupClients or DescribePolicyBindings call, a ledger scan or
// read): one throttled or 5xx answer among the hundreds of calls a large
// region takes must not fail the whole part.
const (
	// ReadAttempts is how many times a sweep makes one read call that keeps
	// failing retryably (the first call and up to three retries).
	ReadAttempts = 4
	// RetryBase is the delay before the first retry; each next one doubles
	// it (200 ms, 400 ms, 800 ms), spread by Service.Jitter.
	RetryBase = 200 * time.Millisecond
)

// halfJitter spreads d uniformly over [d/2, d], so that calls throttled
// together do not come back together.
func halfJitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

func (s *Service) sleep(d time.Duration) {
	if s.Sleep != nil {
		s.Sleep(d)
		return
	}
	time.Sleep(d)
}

func (s *Service) jitter(d time.Duration) time.Duration {
	if s.Jitter != nil {
		return s.Jitter(d)
	}
	return halfJitter(d)
}

// retry makes call until it succeeds or fails with an error that is not
// fault.Retryable, at most ReadAttempts times, pausing RetryBase, then
// twice as long, … (jittered) between calls. It does not retry once ctx is
// done, nor when the pause would reach past ctx's deadline (a wall-clock
// time, so it reads the real clock). It returns how many retries it made
// and the last error, prefixed with what (the call, for the log) and, when
// retried, the number of attempts; the error keeps its classification.
func (s *Service) retry(ctx context.Context, what string, call func() error) (int, error) {
	delay := RetryBase
	for attempt := 1; ; attempt++ {
		err := call()
		if err == nil {
			return attempt - 1, nil
		}
		stop := attempt >= ReadAttempts || !fault.Is(err, fault.Retryable) || ctx.Err() != nil
		pause := s.jitter(delay)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= pause {
			stop = true
		}
		if stop {
			if attempt > 1 {
				return attempt - 1, fmt.Errorf("%s (%d attempts): %w", what, attempt, err)
			}
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		s.sleep(pause)
		delay *= 2
	}
}
