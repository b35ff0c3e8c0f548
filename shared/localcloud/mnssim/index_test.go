package mnssim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bruteTake is what takeLocked decided before the queue had indexes: look
// at every message, keep the visible ones, sort them by priority then
// enqueue order, take the first limit; next is the earliest VisibleAt of the
// others. Retention is applied first, over every message.
func bruteTake(q *queue, now time.Time, limit int) (ids []string, next time.Time) {
	keep := time.Duration(q.attrs.MessageRetentionPeriod) * time.Second
	var visible []*message
	for _, m := range q.msgs {
		switch {
		case now.Sub(m.EnqueueTime) >= keep:
		case !m.VisibleAt.After(now):
			visible = append(visible, m)
		case next.IsZero() || m.VisibleAt.Before(next):
			next = m.VisibleAt
		}
	}
	sort.Slice(visible, func(i, j int) bool {
		if visible[i].Priority != visible[j].Priority {
			return visible[i].Priority < visible[j].Priority
		}
		return visible[i].seq < visible[j].seq
	})
	for _, m := range visible[:min(limit, len(visible))] {
		ids = append(ids, m.ID)
	}
	return ids, next
}

// indexError says how the indexes disagree with the messages, or "": every
// message must be in byAge and in one of ready and waiting, at the
// positions it records, and nothing else may be.
func indexError(q *queue) string {
	if len(q.byAge) != len(q.msgs) || len(q.ready)+len(q.waiting.items) != len(q.msgs) {
		return fmt.Sprintf("%d messages, %d by age, %d ready, %d waiting", len(q.msgs), len(q.byAge), len(q.ready), len(q.waiting.items))
	}
	fresh := 0
	for i, m := range q.byAge {
		if q.msgs[m.ID] != m || m.ageIdx != i {
			return fmt.Sprintf("byAge[%d] is %s at %d", i, m.ID, m.ageIdx)
		}
	}
	for i, m := range q.ready {
		if q.msgs[m.ID] != m || m.visIdx != i || !m.ready {
			return fmt.Sprintf("ready[%d] is %s at %d (ready %v)", i, m.ID, m.visIdx, m.ready)
		}
	}
	for i, m := range q.waiting.items {
		if q.msgs[m.ID] != m || m.visIdx != i || m.ready {
			return fmt.Sprintf("waiting[%d] is %s at %d (ready %v)", i, m.ID, m.visIdx, m.ready)
		}
		if m.DequeueCount == 0 {
			fresh++
		}
	}
	if fresh != q.waiting.fresh {
		return fmt.Sprintf("%d waiting messages never received, counted %d", fresh, q.waiting.fresh)
	}
	return ""
}

// bruteDepth is what Depth counted before the queue had indexes.
func bruteDepth(q *queue, now time.Time) (visible, delayed, inflight int) {
	keep := time.Duration(q.attrs.MessageRetentionPeriod) * time.Second
	for _, m := range q.msgs {
		switch {
		case now.Sub(m.EnqueueTime) >= keep:
		case !m.VisibleAt.After(now):
			visible++
		case m.DequeueCount == 0:
			delayed++
		default:
			inflight++
		}
	}
	return visible, delayed, inflight
}

// TestIndexedQueueAgreesWithAFullScan runs random sends, receives, peeks,
// deletes, visibility changes and clock moves (forward and back, through
// retention) and checks every take against bruteTake and every depth
// against bruteDepth.
func TestIndexedQueueAgreesWithAFullScan(t *testing.T) {
	t.Parallel()
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			move := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
			s := New(Options{Now: clock, Seed: int64(seed)})
			s.CreateQueue("q")
			s.queues["q"].attrs.MessageRetentionPeriod = 600
			rng := rand.New(rand.NewPCG(seed, 99))
			var handles []string

			for step := range 2000 {
				switch op := rng.IntN(10); {
				case op < 3:
					delay := time.Duration(rng.IntN(4)) * 10 * time.Second
					_, err := s.Send("q", fmt.Sprint("m", step), delay, 1+rng.IntN(3))
					require.NoError(t, err)
				case op < 6:
					limit := 1 + rng.IntN(4)
					peek := op == 5
					s.mu.Lock()
					q := s.queues["q"]
					wantIDs, wantNext := bruteTake(q, clock(), limit)
					msgs, next, err := s.takeLocked("q", limit, time.Duration(1+rng.IntN(40))*time.Second, peek)
					s.mu.Unlock()
					require.NoError(t, err)
					var got []string
					for _, m := range msgs {
						got = append(got, m.ID)
						if !peek {
							handles = append(handles, m.ReceiptHandle)
						}
					}
					require.Equal(t, wantIDs, got, "step %d: take %d (peek %v)", step, limit, peek)
					require.Equal(t, wantNext, next, "step %d: next visible", step)
				case op < 8 && len(handles) > 0:
					i := rng.IntN(len(handles))
					h := handles[i]
					handles = slices.Delete(handles, i, i+1)
					if op == 6 {
						_ = s.Delete("q", h)
					} else if m, err := s.ChangeVisibility("q", h, time.Duration(1+rng.IntN(30))*time.Second); err == nil {
						handles = append(handles, m.ReceiptHandle)
					}
				case op == 8:
					move(time.Duration(rng.IntN(20)) * time.Second)
				default:
					move(-time.Duration(rng.IntN(10)) * time.Second)
				}
				s.mu.Lock()
				bad := indexError(s.queues["q"])
				v, d, f := bruteDepth(s.queues["q"], clock())
				s.mu.Unlock()
				require.Empty(t, bad, "step %d", step)
				gv, gd, gf := s.Depth("q")
				require.Equal(t, [3]int{v, d, f}, [3]int{gv, gd, gf}, "step %d: depth", step)
			}
			visible, delayed, inflight := s.Depth("q")
			assert.Equal(t, len(s.Messages("q")), visible+delayed+inflight)
			assert.Positive(t, delayed+inflight, "the run left messages not visible")
		})
	}
}
