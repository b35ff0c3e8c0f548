// Package scope decides, at install time, whether an ECS instance is in the
// scope of automatic backup-client installation, from four include/exclude
// settings read from the environment:
//
//	INCLUDE_TAGS="env=prod,backup"   an instance must match ALL terms; empty: include all
//	EXCLUDE_TAGS="backup=off,temp"   an instance matching ANY term is excluded
//	RESOURCE_GROUPS="rg-a,rg-b"      only instances in these resource groups; empty: all
//	VPCS="vpc-a"                     only instances in these VPCs; empty: all
//
// A tag term is "key=value" (the tag is present with exactly that value),
// "key" (the tag is present, any value) or "key!=value" (the instance does
// not carry key=value; an absent key matches). Keys and values are
// case-sensitive; spaces around terms, keys and values are trimmed; blank
// terms (",," or a trailing comma) are ignored and duplicate terms count
// once. The first "=" splits key from value, so a value may contain "=";
// "!=" is recognised only right before that first "=".
//
// Parse returns fault.Invalid errors (Op "scope.Parse") naming the variable
// and the bad term; Decide cannot fail. The package has no I/O.
package scope

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
)

// Names of the environment variables the rules come from, as used in error
// messages and decisions.
const (
	EnvIncludeTags    = "INCLUDE_TAGS"
	EnvExcludeTags    = "EXCLUDE_TAGS"
	EnvResourceGroups = "RESOURCE_GROUPS"
	EnvVPCs           = "VPCS"
)

// Limits on one variable.
const (
	// MaxTerms is the most terms one variable may hold.
	MaxTerms = 50
	// MaxLen is the longest value, in bytes, one variable may hold.
	MaxLen = 16 << 10
	// maxShown bounds how much of a bad term an error message quotes.
	maxShown = 64
)

const opParse = "scope.Parse"

// idRule is what a resource group or VPC id must look like.
var idRule = ident.Rule{Min: 1, Max: 128, First: "A-Za-z0-9", Rest: "A-Za-z0-9._-"}

// Rules are parsed scope settings. The zero value includes every instance.
// Rules are immutable and safe for concurrent use.
type Rules struct {
	include []term
	exclude []term
	groups  []string
	vpcs    []string
}

type matchOp int

const (
	present  matchOp = iota // key
	equal                   // key=value
	notEqual                // key!=value
)

type term struct {
	op         matchOp
	key, value string
}

// String renders the term in the syntax it was parsed from.
func (t term) String() string {
	switch t.op {
	case equal:
		return t.key + "=" + t.value
	case notEqual:
		return t.key + "!=" + t.value
	}
	return t.key
}

func (t term) matches(tags map[string]string) bool {
	v, ok := tags[t.key]
	switch t.op {
	case equal:
		return ok && v == t.value
	case notEqual:
		return !ok || v != t.value
	}
	return ok
}

// implies reports whether every tag set matching a also matches b.
func implies(a, b term) bool {
	if a.key != b.key {
		return false
	}
	switch a.op {
	case present:
		return b.op == present
	case equal:
		return b.op == present || (b.op == equal && b.value == a.value) || (b.op == notEqual && b.value != a.value)
	default: // notEqual
		return b.op == notEqual && b.value == a.value
	}
}

// disjoint reports whether no tag set matches both a and b.
func disjoint(a, b term) bool {
	if a.key != b.key {
		return false
	}
	switch {
	case a.op == equal && b.op == equal:
		return a.value != b.value
	case a.op == equal && b.op == notEqual, a.op == notEqual && b.op == equal:
		return a.value == b.value
	}
	return false
}

// Parse parses the four settings (each as read from its environment
// variable). Errors are fault.Invalid and name the variable and the term,
// e.g. `EXCLUDE_TAGS: term "=x" has an empty key`. Besides malformed terms
// it rejects settings that can never include anything: INCLUDE_TAGS terms
// no instance can match together ("env=prod,env=dev"), and an EXCLUDE_TAGS
// term that excludes every instance an INCLUDE_TAGS term admits
// (INCLUDE_TAGS="env=prod", EXCLUDE_TAGS="env").
func Parse(include, exclude, resourceGroups, vpcs string) (Rules, error) {
	var r Rules
	var err error
	if r.include, err = parseTags(EnvIncludeTags, include); err != nil {
		return Rules{}, err
	}
	if r.exclude, err = parseTags(EnvExcludeTags, exclude); err != nil {
		return Rules{}, err
	}
	if r.groups, err = parseIDs(EnvResourceGroups, resourceGroups); err != nil {
		return Rules{}, err
	}
	if r.vpcs, err = parseIDs(EnvVPCs, vpcs); err != nil {
		return Rules{}, err
	}
	for i, a := range r.include {
		for _, b := range r.include[i+1:] {
			if disjoint(a, b) {
				return Rules{}, fault.Invalidf(opParse, "%s: terms %q and %q can never both match", EnvIncludeTags, a, b)
			}
		}
		for _, e := range r.exclude {
			if implies(a, e) {
				return Rules{}, fault.Invalidf(opParse, "%s: term %q excludes every instance that %s term %q admits",
					EnvExcludeTags, e, EnvIncludeTags, a)
			}
		}
	}
	return r, nil
}

// split returns the trimmed, non-blank, distinct terms of a variable, after
// the checks every variable shares.
func split(name, raw string) ([]string, error) {
	if len(raw) > MaxLen {
		return nil, fault.Invalidf(opParse, "%s: %d bytes, over the limit of %d", name, len(raw), MaxLen)
	}
	if !utf8.ValidString(raw) {
		return nil, fault.Invalidf(opParse, "%s: not valid UTF-8", name)
	}
	var out []string
	seen := map[string]bool{}
	for part := range strings.SplitSeq(raw, ",") {
		part = strings.TrimSpace(part)
		if part == "" || seen[part] {
			continue
		}
		if strings.IndexFunc(part, unicode.IsControl) >= 0 {
			return nil, fault.Invalidf(opParse, "%s: term %q holds a control character", name, shown(part))
		}
		seen[part] = true
		out = append(out, part)
		if len(out) > MaxTerms {
			return nil, fault.Invalidf(opParse, "%s: more than %d terms", name, MaxTerms)
		}
	}
	return out, nil
}

func parseTags(name, raw string) ([]term, error) {
	parts, err := split(name, raw)
	if err != nil {
		return nil, err
	}
	var out []term
	seen := map[term]bool{}
	for _, part := range parts {
		t := term{op: present, key: part}
		if i := strings.IndexByte(part, '='); i >= 0 {
			t.op, t.key, t.value = equal, part[:i], strings.TrimSpace(part[i+1:])
			if strings.HasSuffix(t.key, "!") {
				t.op, t.key = notEqual, strings.TrimSuffix(t.key, "!")
			}
			t.key = strings.TrimSpace(t.key)
		}
		switch {
		case t.key == "":
			return nil, fault.Invalidf(opParse, "%s: term %q has an empty key", name, shown(part))
		case utf8.RuneCountInString(t.key) > ecs.MaxTagKeyLen:
			return nil, fault.Invalidf(opParse, "%s: term %q has a key of %d characters, over the tag limit of %d",
				name, shown(part), utf8.RuneCountInString(t.key), ecs.MaxTagKeyLen)
		case utf8.RuneCountInString(t.value) > ecs.MaxTagValueLen:
			return nil, fault.Invalidf(opParse, "%s: term %q has a value of %d characters, over the tag limit of %d",
				name, shown(part), utf8.RuneCountInString(t.value), ecs.MaxTagValueLen)
		}
		if !seen[t] { // "env = prod" and "env=prod" are one term
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}

func parseIDs(name, raw string) ([]string, error) {
	parts, err := split(name, raw)
	if err != nil {
		return nil, err
	}
	for _, id := range parts {
		if !idRule.Valid(id) {
			return nil, fault.Invalidf(opParse, "%s: %q is not an ID (want %s)", name, shown(id), idRule)
		}
	}
	return parts, nil
}

// shown cuts a term for quoting in an error message.
func shown(s string) string {
	if utf8.RuneCountInString(s) <= maxShown {
		return s
	}
	return string([]rune(s)[:maxShown]) + "…"
}

// Empty reports whether the rules include every instance, so a caller can
// skip looking instances up.
func (r Rules) Empty() bool {
	return len(r.include) == 0 && len(r.exclude) == 0 && len(r.groups) == 0 && len(r.vpcs) == 0
}

// Decide says whether an instance is in scope and, if not, the rule that
// excluded it, e.g. `exclude tag backup=off`. Rules are checked in a fixed
// order (EXCLUDE_TAGS, RESOURCE_GROUPS, VPCS, INCLUDE_TAGS; terms in the
// order written), so the answer is deterministic. rule is "" when ok.
func (r Rules) Decide(in ecs.Instance) (ok bool, rule string) {
	for _, t := range r.exclude {
		if t.matches(in.Tags) {
			return false, "exclude tag " + t.String()
		}
	}
	if len(r.groups) > 0 && !slices.Contains(r.groups, in.ResourceGroupID) {
		return false, fmt.Sprintf("resource group %q is not in %s", in.ResourceGroupID, EnvResourceGroups)
	}
	if len(r.vpcs) > 0 && !slices.Contains(r.vpcs, in.VpcID) {
		return false, fmt.Sprintf("vpc %q is not in %s", in.VpcID, EnvVPCs)
	}
	for _, t := range r.include {
		if !t.matches(in.Tags) {
			return false, "include tag " + t.String() + " not matched"
		}
	}
	return true, ""
}

// String renders the rules in the variables' syntax, for logs, e.g.
// `INCLUDE_TAGS="env=prod" EXCLUDE_TAGS="" RESOURCE_GROUPS="" VPCS=""`.
func (r Rules) String() string {
	join := func(ts []term) string {
		parts := make([]string, len(ts))
		for i, t := range ts {
			parts[i] = t.String()
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprintf("%s=%q %s=%q %s=%q %s=%q",
		EnvIncludeTags, join(r.include), EnvExcludeTags, join(r.exclude),
		EnvResourceGroups, strings.Join(r.groups, ","), EnvVPCs, strings.Join(r.vpcs, ","))
}
