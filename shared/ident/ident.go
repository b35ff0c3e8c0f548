// Package ident checks ASCII identifiers (region ids, MNS queue and topic
// names, RAM role names, ids handed out by the cloud) without regular
// expressions.
//
// A [Rule] says how long an identifier may be and which characters it may
// start with and continue with; it accepts exactly what the regular
// expression its String method prints accepts. Rules are plain values: a
// package-level Rule costs nothing at program start (compiling the
// equivalent regular expressions with counted repetition took milliseconds
// on every cold start of a function), and checking one allocates nothing.
//
// The package returns no errors: checks report a bool, and callers say in
// their own errors what was wrong.
package ident

import (
	"strconv"
	"strings"
)

// Charset is a set of ASCII bytes written like the inside of a regexp
// character class: "a-z0-9-" is the lower-case letters, the digits and '-'.
// "x-y" is the inclusive range x..y (empty when y < x); every other byte,
// including a '-' at the start or end, stands for itself. Bytes of 0x80 and
// above are never members, even when written in the spec, so a multi-byte
// UTF-8 character is never accepted.
type Charset string

// Contains reports whether b is in c.
func (c Charset) Contains(b byte) bool {
	bits := c.bits()
	return bits.has(b)
}

// bitset is a Charset's members: bit x of word x/64 for byte x.
type bitset [2]uint64

func (c Charset) bits() bitset {
	var set bitset
	for i := 0; i < len(c); i++ {
		lo, hi := int(c[i]), int(c[i])
		if i+2 < len(c) && c[i+1] == '-' {
			hi = int(c[i+2])
			i += 2
		}
		set.addRange(lo, min(hi, 127))
	}
	return set
}

// addRange adds the bytes lo..hi (hi < 128) to s.
func (s *bitset) addRange(lo, hi int) {
	for w := range s {
		l, h := max(lo, 64*w), min(hi, 64*w+63)
		if l <= h {
			s[w] |= ^uint64(0) >> (63 - (h - l)) << (l - 64*w)
		}
	}
}

func (s *bitset) has(b byte) bool {
	return b < 128 && s[b>>6]&(1<<(b&63)) != 0
}

// Rule says what an identifier must look like: Min..Max bytes, the first in
// First and the rest in Rest. Max 0 means no upper bound. Because the
// charsets are ASCII, bytes and characters count alike.
type Rule struct {
	Min, Max    int
	First, Rest Charset
}

// Valid reports whether s follows r. Nothing is trimmed: "abc\n" is
// rejected, as the regexp rejects it.
func (r Rule) Valid(s string) bool {
	if len(s) < r.Min || (r.Max > 0 && len(s) > r.Max) {
		return false
	}
	if s == "" {
		return true
	}
	first := r.First.bits()
	if !first.has(s[0]) {
		return false
	}
	rest := first
	if r.Rest != r.First {
		rest = r.Rest.bits()
	}
	for i := 1; i < len(s); i++ {
		if !rest.has(s[i]) {
			return false
		}
	}
	return true
}

// String returns the regular expression accepting exactly what r accepts,
// e.g. "^[A-Za-z][A-Za-z0-9-]{0,119}$", for error messages.
func (r Rule) String() string {
	most := r.Max // at most this many bytes; < 0: unbounded
	if most == 0 {
		most = -1
	}
	if r.First == r.Rest {
		return "^" + class(r.Rest) + quantifier(r.Min, most) + "$"
	}
	restMost := most
	if most > 0 {
		restMost = most - 1
	}
	if r.Min == 0 {
		return "^(" + class(r.First) + class(r.Rest) + quantifier(0, restMost) + ")?$"
	}
	return "^" + class(r.First) + class(r.Rest) + quantifier(r.Min-1, restMost) + "$"
}

// class renders c as a regexp character class, escaping the bytes a class
// gives a meaning to.
func class(c Charset) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := 0; i < len(c); i++ {
		if strings.IndexByte(`\[]^`, c[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(c[i])
	}
	b.WriteByte(']')
	return b.String()
}

// quantifier renders "least to most repetitions" (most < 0: unbounded) of
// the preceding class.
func quantifier(least, most int) string {
	switch {
	case most < 0 && least == 0:
		return "*"
	case most < 0 && least == 1:
		return "+"
	case most < 0:
		return "{" + strconv.Itoa(least) + ",}"
	case least == 1 && most == 1:
		return ""
	case least == most:
		return "{" + strconv.Itoa(least) + "}"
	}
	return "{" + strconv.Itoa(least) + "," + strconv.Itoa(most) + "}"
}

// Shared rules. They are values: treat them as constants.
var (
	// Region is a region id such as "cn-hangzhou": ^[a-z0-9-]{1,64}$.
	Region = Rule{Min: 1, Max: 64, First: "a-z0-9-", Rest: "a-z0-9-"}
	// QueueName is an MNS queue name: 1..120 letters, digits or '-',
	// starting with a letter.
	QueueName = Rule{Min: 1, Max: 120, First: "A-Za-z", Rest: "A-Za-z0-9-"}
	// TopicName is an MNS topic name: 1..256 letters, digits or '-',
	// starting with a letter.
	TopicName = Rule{Min: 1, Max: 256, First: "A-Za-z", Rest: "A-Za-z0-9-"}
	// RoleName is a RAM role name: 1..64 letters, digits or "._-".
	RoleName = Rule{Min: 1, Max: 64, First: "A-Za-z0-9._-", Rest: "A-Za-z0-9._-"}
	// CloudID is an id an Alibaba Cloud API hands out and takes back, such
	// as an ECS instance id or an HBR task id: 1..128 letters, digits or
	// "._:-".
	CloudID = Rule{Min: 1, Max: 128, First: "A-Za-z0-9._:-", Rest: "A-Za-z0-9._:-"}
)
