// Package idorder keeps the IDs an emulator knows in sorted order, cheaply
// while they grow: IDs added since the last listing wait unsorted and are
// merged in when a listing needs the order, so a launch that adds
// thousands of instances between listings pays O(n + k log k) once, not a
// sort per instance. ecssim and hbrsim list their instances with it.
package idorder

import "slices"

// Set is a set of IDs with their order. The zero Set is empty and ready.
// It is not safe for concurrent use: its owner's lock guards it.
type Set struct {
	sorted, pending []string
}

// Add adds id, which the caller knows is not in the set.
func (s *Set) Add(id string) { s.pending = append(s.pending, id) }

// Sorted returns every ID in order. The slice is the set's: read it
// before the next Add or Remove, and do not change it.
func (s *Set) Sorted() []string {
	if len(s.pending) == 0 {
		return s.sorted
	}
	fresh := s.pending
	s.pending = nil
	slices.Sort(fresh)
	merged := make([]string, 0, len(s.sorted)+len(fresh))
	i, j := 0, 0
	for i < len(s.sorted) && j < len(fresh) {
		if s.sorted[i] < fresh[j] {
			merged = append(merged, s.sorted[i])
			i++
		} else {
			merged = append(merged, fresh[j])
			j++
		}
	}
	merged = append(merged, s.sorted[i:]...)
	s.sorted = append(merged, fresh[j:]...)
	return s.sorted
}

// Remove removes id, if it is there.
func (s *Set) Remove(id string) {
	sorted := s.Sorted()
	if i, ok := slices.BinarySearch(sorted, id); ok {
		s.sorted = slices.Delete(s.sorted, i, i+1)
	}
}
