// Package fanout runs independent calls at once, a bounded number at a
// time: the instance ledger's per-instance reads and writes each take a
// network round trip, and one invocation may hold a thousand instances.
package fanout

import "sync"

// DefaultWorkers is the bound Each uses for workers ≤ 0.
const DefaultWorkers = 16

// Each calls fn(i) for every i in [0, n), at most workers at a time, and
// returns when all have returned. fn must be safe to call concurrently;
// results go into slots indexed by i.
func Each(n, workers int, fn func(i int)) {
	if workers <= 0 {
		workers = DefaultWorkers
	}
	if n <= 1 || workers == 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
