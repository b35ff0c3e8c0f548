package osssim

import (
	"slices"
	"strings"
)

// chunkSize bounds the keys of one chunk of a keyIndex (a chunk splits in
// two when it reaches twice this).
const chunkSize = 256

// keyIndex is a bucket's keys in byte order, kept in sorted chunks so that
// inserting or deleting one key moves at most 2*chunkSize strings (one
// sorted slice would move half the bucket on every insert), and finding
// where a listing starts is two binary searches.
type keyIndex struct {
	chunks [][]string // non-empty, sorted, each chunk's keys before the next's
	n      int
}

// chunkFor returns the chunk that holds k or would: the last whose first
// key is <= k (the first chunk when k sorts before every key).
func (x *keyIndex) chunkFor(k string) int {
	i, _ := slices.BinarySearchFunc(x.chunks, k, func(c []string, k string) int {
		if c[0] <= k {
			return -1
		}
		return 1
	})
	return max(i-1, 0)
}

// insert adds k, which must not be present.
func (x *keyIndex) insert(k string) {
	x.n++
	if len(x.chunks) == 0 {
		x.chunks = [][]string{{k}}
		return
	}
	ci := x.chunkFor(k)
	c := x.chunks[ci]
	i, _ := slices.BinarySearch(c, k)
	c = slices.Insert(c, i, k)
	if len(c) < 2*chunkSize {
		x.chunks[ci] = c
		return
	}
	lo := append(make([]string, 0, 2*chunkSize), c[:chunkSize]...)
	hi := append(make([]string, 0, 2*chunkSize), c[chunkSize:]...)
	x.chunks[ci] = lo
	x.chunks = slices.Insert(x.chunks, ci+1, hi)
}

// delete removes k if present.
func (x *keyIndex) delete(k string) {
	if len(x.chunks) == 0 {
		return
	}
	ci := x.chunkFor(k)
	c := x.chunks[ci]
	i, found := slices.BinarySearch(c, k)
	if !found {
		return
	}
	x.n--
	c = slices.Delete(c, i, i+1)
	if len(c) == 0 {
		x.chunks = slices.Delete(x.chunks, ci, ci+1)
		return
	}
	x.chunks[ci] = c
}

// ascend calls fn with each key >= from in order until fn returns false.
func (x *keyIndex) ascend(from string, fn func(k string) bool) {
	if len(x.chunks) == 0 {
		return
	}
	ci := x.chunkFor(from)
	i, _ := slices.BinarySearch(x.chunks[ci], from)
	for ; ci < len(x.chunks); ci, i = ci+1, 0 {
		for _, k := range x.chunks[ci][i:] {
			if !fn(k) {
				return
			}
		}
	}
}

// withPrefix calls fn with each key that starts with prefix, in order,
// until fn returns false.
func (x *keyIndex) withPrefix(prefix string, fn func(k string) bool) {
	x.ascend(prefix, func(k string) bool {
		return strings.HasPrefix(k, prefix) && fn(k)
	})
}
