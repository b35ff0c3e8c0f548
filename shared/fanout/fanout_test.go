package fanout

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestEachCallsEveryIndexOnceWithinTheBound(t *testing.T) {
	for _, tc := range []struct{ n, workers int }{{0, 4}, {1, 4}, {100, 1}, {100, 8}, {3, 0}} {
		var running, peak atomic.Int32
		seen := make([]atomic.Int32, tc.n)
		Each(tc.n, tc.workers, func(i int) {
			cur := running.Add(1)
			for {
				p := peak.Load()
				if cur <= p || peak.CompareAndSwap(p, cur) {
					break
				}
			}
			seen[i].Add(1)
			running.Add(-1)
		})
		for i := range seen {
			assert.Equal(t, int32(1), seen[i].Load(), "n=%d index %d", tc.n, i)
		}
		bound := tc.workers
		if bound <= 0 {
			bound = DefaultWorkers
		}
		assert.LessOrEqual(t, int(peak.Load()), bound)
	}
}
