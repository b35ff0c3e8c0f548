// Package ident checks ASCII identifiers (region ids, MNS queue and topic
// names, RAM role names, ids handed out by the cloud).
//
// A [Rule] says how long an identifier may be and which characters it may
// start with and continue with; String prints it as the regular expression
// that accepts exactly those, and Valid matches with that expression from
// the standard library, compiled on a rule's first use and kept (so a rule
// costs nothing at program start: compiling every expression up front took
// milliseconds of each cold start).
//
// The package returns no errors: checks report a bool, and callers say in
// their own errors what was wrong.
package ident

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Charset is a set of ASCII bytes written as the inside of a regexp
// character class: "a-z0-9-" is the lower-case letters, the digits and '-'
// ("x-y" is the inclusive range x..y; a '-' at the start or end stands for
// itself). It must be a valid, non-empty class; bytes of 0x80 and above are
// never members.
type Charset string

// Contains reports whether b is in c.
func (c Charset) Contains(b byte) bool {
	return b < 0x80 && compiled("^"+class(c)+"$").Match([]byte{b})
}

// compiled returns the expression expr, compiled once per process.
func compiled(expr string) *regexp.Regexp {
	if re, ok := cache.Load(expr); ok {
		return re.(*regexp.Regexp)
	}
	re, _ := cache.LoadOrStore(expr, regexp.MustCompile(expr))
	return re.(*regexp.Regexp)
}

var cache sync.Map // expression → *regexp.Regexp

// Rule says what an identifier must look like: Min..Max bytes, the first in
// First and the rest in Rest. Max 0 means no upper bound. Because the
// charsets are ASCII, bytes and characters count alike.
type Rule struct {
	Min, Max    int
	First, Rest Charset
}

// Valid reports whether s follows r. Nothing is trimmed: "abc\n" is
// rejected.
func (r Rule) Valid(s string) bool {
	return r.regexp().MatchString(s)
}

// regexp is r's expression, compiled on r's first use.
func (r Rule) regexp() *regexp.Regexp {
	rules.RLock()
	re, ok := rules.m[r]
	rules.RUnlock()
	if ok {
		return re
	}
	re = compiled(r.String())
	rules.Lock()
	rules.m[r] = re
	rules.Unlock()
	return re
}

// rules caches each Rule's compiled expression (a map lookup, unlike
// rendering the expression again, allocates nothing).
var rules = struct {
	sync.RWMutex
	m map[Rule]*regexp.Regexp
}{m: map[Rule]*regexp.Regexp{}}

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
