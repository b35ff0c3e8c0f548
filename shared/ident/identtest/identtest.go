// Package identtest lets tests prove that a validator accepts exactly what a
// regular expression accepts, so a regexp can be replaced by an ident.Rule
// (or a few lines of code) without changing behaviour. It is for _test.go
// files only; it returns no errors and reports through testing.T.
package identtest

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// maxReported bounds the disagreements one failure lists.
const maxReported = 10

// Case is one validator and the regexp it must agree with.
type Case struct {
	Name    string
	Pattern string            // the regular expression
	Valid   func(string) bool // the validator standing in for it
	// Accept are strings Pattern accepts: typical ones and ones of its
	// maximum length. Run also checks its edits of them (see Run).
	Accept []string
	// Reject are edge cases Pattern rejects, listed for the reader:
	// empty, max+1, a bad first byte, unicode, a trailing "\n".
	Reject []string
}

// Run checks each case in a subtest: Pattern accepts Accept and rejects
// Reject, and Valid agrees with Pattern on them; on the empty string; on
// every string of one or two probes (all ASCII bytes, a few multi-byte
// characters and an invalid UTF-8 byte); and on each Accept sample with "\n"
// or a space before or after it, doubled, and with a byte deleted, replaced
// by a probe or a probe inserted, at every position of a short sample and
// near both ends and the middle of a long one. A sample of maximum length
// thereby reaches max-1, max+1 and every first-byte, last-byte and unicode
// case.
func Run(t *testing.T, cases []Case) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			re, err := regexp.Compile(c.Pattern)
			require.NoError(t, err)
			for _, s := range c.Accept {
				assert.True(t, re.MatchString(s), "%s rejects sample %q", c.Pattern, s)
				assert.True(t, c.Valid(s), "validator rejects %q", s)
			}
			for _, s := range c.Reject {
				assert.False(t, re.MatchString(s), "%s accepts %q", c.Pattern, s)
				assert.False(t, c.Valid(s), "validator accepts %q", s)
			}
			assert.Empty(t, disagreements(re, c.Valid, c.Accept), "validator and %s disagree", c.Pattern)
		})
	}
}

// disagreements returns up to maxReported generated inputs on which valid
// and re disagree.
func disagreements(re *regexp.Regexp, valid func(string) bool, samples []string) []string {
	var diff []string
	check := func(s string) {
		if want := re.MatchString(s); valid(s) != want && len(diff) < maxReported {
			diff = append(diff, fmt.Sprintf("%q: regexp says %v", s, want))
		}
	}
	probes := probes()
	check("")
	for _, a := range probes {
		check(a)
		for _, b := range probes {
			check(a + b)
		}
	}
	for _, s := range samples {
		for _, v := range []string{s, s + "\n", "\n" + s, " " + s, s + " ", s + s} {
			check(v)
		}
		for _, i := range positions(len(s)) {
			check(s[:i] + s[i+1:])
			for _, p := range probes {
				check(s[:i] + p + s[i+1:])
				check(s[:i] + p + s[i:])
			}
		}
		for _, p := range probes {
			check(s + p)
		}
	}
	return diff
}

// probes are the bytes and characters tried at each position.
func probes() []string {
	p := make([]string, 0, 132)
	for b := 0; b < 128; b++ {
		p = append(p, string(rune(b)))
	}
	return append(p, "é", "ａ", "\u00a0", "\xff")
}

// positions are the edit positions in a string of n bytes: all of them for
// a short string, else the first three, the middle and the last three.
func positions(n int) []int {
	if n <= 16 {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		return all
	}
	return []int{0, 1, 2, n / 2, n - 3, n - 2, n - 1}
}
