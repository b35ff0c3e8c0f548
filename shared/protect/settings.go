package protect

import (
	"strings"
	"unicode/utf8"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

// The environment variables the settings come from.
const (
	// EnvPolicyID is the policy every protected instance is bound to when no
	// tag rule matches it.
	EnvPolicyID = "BACKUP_POLICY_ID"
	// EnvPolicyByTag maps instance tags to policies: comma-separated terms
	// "key=value:po-…" (the tag has that value) or "key:po-…" (the tag is
	// present); the first matching term wins.
	EnvPolicyByTag = "BACKUP_POLICY_BY_TAG"
)

// Limits of EnvPolicyByTag.
const (
	// MaxRules is the most terms EnvPolicyByTag may hold.
	MaxRules = 50
	// maxTagKey and maxTagValue are ECS's tag limits.
	maxTagKey, maxTagValue = 128, 128
)

const opParse = "protect.Parse"

// Rule binds instances carrying a tag to a policy.
type Rule struct {
	// Key is the tag key.
	Key string
	// Value is the tag value; AnyValue makes the rule match any value.
	Value    string
	AnyValue bool
	// PolicyID is the backup policy of matching instances.
	PolicyID string
}

// String is the rule as written in EnvPolicyByTag.
func (r Rule) String() string {
	if r.AnyValue {
		return r.Key + ":" + r.PolicyID
	}
	return r.Key + "=" + r.Value + ":" + r.PolicyID
}

// Matches reports whether an instance with tags matches the rule.
func (r Rule) Matches(tags map[string]string) bool {
	v, ok := tags[r.Key]
	return ok && (r.AnyValue || v == r.Value)
}

// Settings say which backup policy each instance is bound to. The zero value
// binds nothing.
type Settings struct {
	// Default is the policy of instances no rule matches; "" leaves them
	// unbound.
	Default string
	// Rules are tried in order; the first that matches wins.
	Rules []Rule
}

// Enabled reports whether binding is configured at all. When it is not,
// the functions behave exactly as without this feature.
func (s Settings) Enabled() bool { return s.Default != "" || len(s.Rules) > 0 }

// NeedsTags reports whether an instance's tags can change its policy, so
// the caller must know them (see Target.Tags).
func (s Settings) NeedsTags() bool { return len(s.Rules) > 0 }

// Policies lists every policy the settings name, without duplicates, in
// order of appearance (rules first, then the default).
func (s Settings) Policies() []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range append(rulePolicies(s.Rules), s.Default) {
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

func rulePolicies(rules []Rule) []string {
	out := make([]string, 0, len(rules)+1)
	for _, r := range rules {
		out = append(out, r.PolicyID)
	}
	return out
}

// PolicyFor returns the policy for an instance with tags: the first
// matching rule's, else Default. ok is false when there is none.
func (s Settings) PolicyFor(tags map[string]string) (policyID string, ok bool) {
	for _, r := range s.Rules {
		if r.Matches(tags) {
			return r.PolicyID, true
		}
	}
	return s.Default, s.Default != ""
}

// ValidPolicyID reports whether id looks like an HBR backup policy ID: "po-"
// followed by 1..61 letters or digits.
func ValidPolicyID(id string) bool {
	rest, ok := strings.CutPrefix(id, "po-")
	if !ok || len(rest) == 0 || len(rest) > 61 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// Parse reads the settings from the values of EnvPolicyID and
// EnvPolicyByTag (surrounding spaces are ignored; both empty disables
// binding). Errors are fault.Invalid (Op "protect.Parse") and name the
// variable and the bad term.
func Parse(policyID, byTag string) (Settings, error) {
	var s Settings
	s.Default = strings.TrimSpace(policyID)
	if s.Default != "" && !ValidPolicyID(s.Default) {
		return Settings{}, fault.Invalidf(opParse, "%s=%q: a backup policy id is po- followed by letters or digits", EnvPolicyID, s.Default)
	}
	byTag = strings.TrimSpace(byTag)
	if byTag == "" {
		return s, nil
	}
	if !utf8.ValidString(byTag) {
		return Settings{}, fault.Invalidf(opParse, "%s: not valid UTF-8", EnvPolicyByTag)
	}
	terms := strings.Split(byTag, ",")
	if len(terms) > MaxRules {
		return Settings{}, fault.Invalidf(opParse, "%s: %d terms, more than %d", EnvPolicyByTag, len(terms), MaxRules)
	}
	seen := map[string]string{}
	for _, raw := range terms {
		term := strings.TrimSpace(raw)
		r, err := parseRule(term)
		if err != nil {
			return Settings{}, err
		}
		match := r.Key + "\x00" + r.Value
		if r.AnyValue {
			match = r.Key + "\x00*"
		}
		if prev, ok := seen[match]; ok {
			return Settings{}, fault.Invalidf(opParse, "%s: term %q repeats the tag of term %q; the first would always win", EnvPolicyByTag, term, prev)
		}
		seen[match] = term
		s.Rules = append(s.Rules, r)
	}
	return s, nil
}

// parseRule parses one term: key=value:po-… or key:po-….
func parseRule(term string) (Rule, error) {
	fail := func(why string, args ...any) (Rule, error) {
		return Rule{}, fault.Invalidf(opParse, "%s: term %q: "+why, append([]any{EnvPolicyByTag, term}, args...)...)
	}
	if term == "" {
		return fail("empty term (stray comma?)")
	}
	for _, c := range term {
		if c < 0x20 || c == 0x7f {
			return fail("holds a control character")
		}
	}
	i := strings.LastIndexByte(term, ':')
	if i < 0 {
		return fail("want key=value:po-… or key:po-…")
	}
	match, policy := strings.TrimSpace(term[:i]), strings.TrimSpace(term[i+1:])
	if !ValidPolicyID(policy) {
		return fail("policy id %q is not po- followed by letters or digits", policy)
	}
	r := Rule{PolicyID: policy}
	key, value, hasValue := strings.Cut(match, "=")
	r.Key, r.Value, r.AnyValue = strings.TrimSpace(key), strings.TrimSpace(value), !hasValue
	switch {
	case r.Key == "":
		return fail("empty tag key")
	case utf8.RuneCountInString(r.Key) > maxTagKey:
		return fail("tag key over %d characters", maxTagKey)
	case utf8.RuneCountInString(r.Value) > maxTagValue:
		return fail("tag value over %d characters", maxTagValue)
	}
	return r, nil
}
