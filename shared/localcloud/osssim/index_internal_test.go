package osssim

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKeyIndexMatchesASortedSlice drives the chunked index and a plain
// sorted slice with the same random inserts and deletes.
func TestKeyIndexMatchesASortedSlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var x keyIndex
	present := map[string]bool{}
	for range 20000 {
		k := "k" + strconv.Itoa(rng.IntN(5000))
		if present[k] && rng.IntN(3) == 0 {
			x.delete(k)
			delete(present, k)
		} else if !present[k] {
			x.insert(k)
			present[k] = true
		}
	}
	want := make([]string, 0, len(present))
	for k := range present {
		want = append(want, k)
	}
	slices.Sort(want)
	require.Equal(t, len(want), x.n)
	assert.Greater(t, len(x.chunks), 1, "the test must cover several chunks")

	var got []string
	x.ascend("", func(k string) bool { got = append(got, k); return true })
	assert.Equal(t, want, got)

	for _, from := range []string{"", "k", "k2", "k2500", "k4999", "k5", "z"} {
		i, _ := slices.BinarySearch(want, from)
		var tail []string
		x.ascend(from, func(k string) bool { tail = append(tail, k); return len(tail) < 10 })
		assert.Equal(t, want[i:min(i+10, len(want))], orEmpty(tail), "from %q", from)
	}
	var p []string
	x.withPrefix("k12", func(k string) bool { p = append(p, k); return true })
	for _, k := range p {
		assert.Regexp(t, `^k12`, k)
	}
	x.delete("absent")
	assert.Equal(t, len(want), x.n)
}

func orEmpty(s []string) []string {
	if len(s) == 0 {
		return []string{}
	}
	return s
}
