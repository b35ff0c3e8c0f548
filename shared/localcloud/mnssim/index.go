package mnssim

import (
	"container/heap"
	"time"
)

// A queue indexes its messages three ways, so receiving, changing
// visibility, deleting and expiring cost O(log n) however many messages wait
// (a launch's poll queue holds thousands of delayed messages, and every
// receive used to look at each of them):
//
//   - ready: messages that were visible when last looked at, by priority
//     then enqueue order (the order Receive hands them out);
//   - waiting: the others, by the time they become visible;
//   - byAge: every message, by enqueue time (retention).
//
// Every message is in byAge and in exactly one of ready and waiting. The
// heaps are intrusive: a message records its position in each.

// readyHeap orders messages by priority (1 first), then enqueue order.
type readyHeap []*message

func (h readyHeap) Len() int { return len(h) }
func (h readyHeap) Less(i, j int) bool {
	if h[i].Priority != h[j].Priority {
		return h[i].Priority < h[j].Priority
	}
	return h[i].seq < h[j].seq
}
func (h readyHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].visIdx, h[j].visIdx = i, j
}
func (h *readyHeap) Push(x any) {
	m := x.(*message)
	m.visIdx, m.ready = len(*h), true
	*h = append(*h, m)
}
func (h *readyHeap) Pop() any { return popLast((*[]*message)(h)) }

// waitingHeap orders messages by the time they become visible, and counts
// those never received (delayed rather than in flight).
type waitingHeap struct {
	items []*message
	fresh int
}

func (h *waitingHeap) Len() int           { return len(h.items) }
func (h *waitingHeap) Less(i, j int) bool { return h.items[i].VisibleAt.Before(h.items[j].VisibleAt) }
func (h *waitingHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].visIdx, h.items[j].visIdx = i, j
}
func (h *waitingHeap) Push(x any) {
	m := x.(*message)
	m.visIdx, m.ready = len(h.items), false
	h.items = append(h.items, m)
	if m.DequeueCount == 0 {
		h.fresh++
	}
}
func (h *waitingHeap) Pop() any {
	m := popLast(&h.items).(*message)
	if m.DequeueCount == 0 {
		h.fresh--
	}
	return m
}

// ageHeap orders messages by enqueue time.
type ageHeap []*message

func (h ageHeap) Len() int           { return len(h) }
func (h ageHeap) Less(i, j int) bool { return h[i].EnqueueTime.Before(h[j].EnqueueTime) }
func (h ageHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].ageIdx, h[j].ageIdx = i, j
}
func (h *ageHeap) Push(x any) {
	m := x.(*message)
	m.ageIdx = len(*h)
	*h = append(*h, m)
}
func (h *ageHeap) Pop() any {
	old := *h
	m := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	m.ageIdx = -1
	return m
}

func popLast(h *[]*message) any {
	old := *h
	m := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	m.visIdx = -1
	return m
}

// add indexes a new message, visible or not as of now.
func (q *queue) add(m *message, now time.Time) {
	heap.Push(&q.byAge, m)
	q.place(m, now)
}

// place puts a message that is in neither visibility heap into the one its
// VisibleAt says as of now.
func (q *queue) place(m *message, now time.Time) {
	if m.VisibleAt.After(now) {
		heap.Push(&q.waiting, m)
		return
	}
	heap.Push(&q.ready, m)
	if now.After(q.settled) {
		q.settled = now // every ready message is visible at settled
	}
}

// unplace takes a message out of its visibility heap.
func (q *queue) unplace(m *message) {
	if m.ready {
		heap.Remove(&q.ready, m.visIdx)
	} else {
		heap.Remove(&q.waiting, m.visIdx)
	}
}

// remove forgets a message: its ID, its handle and its index entries.
func (q *queue) remove(m *message) {
	q.unplace(m)
	heap.Remove(&q.byAge, m.ageIdx)
	delete(q.handles, m.ReceiptHandle)
	delete(q.msgs, m.ID)
}

// moved re-indexes a message whose VisibleAt changed.
func (q *queue) moved(m *message, now time.Time) {
	q.unplace(m)
	q.place(m, now)
}

// settle brings the visibility heaps up to now: the waiting messages that
// have become visible move to ready. When the clock went back (a test's
// fake clock), ready messages that are not visible any more move back.
func (q *queue) settle(now time.Time) {
	if now.Before(q.settled) {
		back := q.ready
		q.ready = nil
		for _, m := range back {
			q.place(m, now)
		}
	}
	q.settled = now
	for len(q.waiting.items) > 0 && !q.waiting.items[0].VisibleAt.After(now) {
		heap.Push(&q.ready, heap.Pop(&q.waiting))
	}
}

// nextVisible is the earliest time a message that is not visible now
// becomes visible (zero if none). settle(now) must have run.
func (q *queue) nextVisible() time.Time {
	if len(q.waiting.items) == 0 {
		return time.Time{}
	}
	return q.waiting.items[0].VisibleAt
}
