package ebsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

// Pattern is a compiled EventBridge event pattern (a rule's
// eventRuleFilterPattern), the subset this project's rules use plus the
// common operators. From the EventBridge docs
// (https://www.alibabacloud.com/help/en/doc-detail/181432.htm): a pattern has
// the nested structure of the events it matches; keys are ANDed; the values
// of an array are ORed; a value is an exact JSON value or an operator object:
// {"prefix":"…"}, {"suffix":"…"}, {"exists":true|false} or
// {"anything-but":value or [values]}. An event field that is an array
// matches when any of its elements does. "{}" matches every event.
// Other operators (numeric, cidr, contains) are rejected when compiled, so a
// pattern this emulator cannot judge fails loudly instead of matching.
type Pattern struct {
	src  string
	root map[string]any
}

// CompilePattern parses a pattern; the error is fault.Invalid.
func CompilePattern(src string) (*Pattern, error) {
	const op = "ebsim.CompilePattern"
	var root map[string]any
	dec := json.NewDecoder(strings.NewReader(src))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		return nil, fault.Invalidf(op, "pattern %q is not a JSON object: %v", src, err)
	}
	if err := checkPattern("", root); err != nil {
		return nil, fault.Invalidf(op, "pattern %q: %v", src, err)
	}
	return &Pattern{src: src, root: root}, nil
}

// String returns the pattern's source.
func (p *Pattern) String() string { return p.src }

// Match reports whether the event (one JSON object) matches the pattern.
func (p *Pattern) Match(event []byte) bool {
	var ev eventObject
	if json.NewDecoder(bytes.NewReader(event)).Decode(&ev) != nil {
		return false
	}
	return matchObject(p.root, ev)
}

// eventObject is a JSON object of an event whose members are decoded only
// when a pattern looks at them: a rule names a few fields of an event that
// carries many, and a bus matches every event against every rule.
type eventObject map[string]json.RawMessage

// parseEvent reads an event that is known to be one valid JSON object.
func parseEvent(event []byte) (eventObject, bool) {
	var ev eventObject
	return ev, json.Unmarshal(event, &ev) == nil
}

// value decodes one member as a decoder with UseNumber would: strings,
// json.Number, bools, nil, and []any or map[string]any for the rest.
func value(raw json.RawMessage) any {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	switch raw[0] {
	case '"':
		if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			return string(inner)
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		return nil
	case 't':
		return true
	case 'f':
		return false
	case 'n':
		return nil
	case '{', '[':
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if dec.Decode(&v) != nil {
			return nil
		}
		return v
	default:
		return json.Number(raw)
	}
}

func checkPattern(path string, node map[string]any) error {
	keys := make([]string, 0, len(node))
	for k := range node {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		at := strings.TrimPrefix(path+"."+k, ".")
		switch v := node[k].(type) {
		case map[string]any:
			if err := checkPattern(at, v); err != nil {
				return err
			}
		case []any:
			for _, c := range v {
				if op, ok := c.(map[string]any); ok {
					if err := checkOperator(at, op); err != nil {
						return err
					}
				}
			}
		default:
			return fmt.Errorf("%s: a value must be an array or an object, got %v", at, v)
		}
	}
	return nil
}

func checkOperator(at string, op map[string]any) error {
	if len(op) != 1 {
		return fmt.Errorf("%s: an operator object has one key, got %d", at, len(op))
	}
	for name, arg := range op {
		switch name {
		case "prefix", "suffix":
			if _, ok := arg.(string); !ok {
				return fmt.Errorf("%s: %s takes a string", at, name)
			}
		case "exists":
			if _, ok := arg.(bool); !ok {
				return fmt.Errorf("%s: exists takes true or false", at)
			}
		case "anything-but":
		default:
			return fmt.Errorf("%s: operator %q is not emulated", at, name)
		}
	}
	return nil
}

func matchObject(pat map[string]any, ev eventObject) bool {
	for k, pv := range pat {
		raw, present := ev[k]
		switch p := pv.(type) {
		case map[string]any:
			raw = bytes.TrimSpace(raw)
			if !present || len(raw) == 0 || raw[0] != '{' {
				return false
			}
			var sub eventObject
			if json.Unmarshal(raw, &sub) != nil || !matchObject(p, sub) {
				return false
			}
		case []any:
			var v any
			if present {
				v = value(raw)
			}
			if !matchAny(p, v, present) {
				return false
			}
		}
	}
	return true
}

// matchAny reports whether one of the alternatives matches the field.
func matchAny(alts []any, v any, present bool) bool {
	for _, a := range alts {
		if op, ok := a.(map[string]any); ok {
			if matchOperator(op, v, present) {
				return true
			}
			continue
		}
		if present && anyElement(v, func(x any) bool { return equalJSON(a, x) }) {
			return true
		}
	}
	return false
}

func matchOperator(op map[string]any, v any, present bool) bool {
	for name, arg := range op {
		switch name {
		case "exists":
			return present == arg.(bool)
		case "prefix":
			return present && anyElement(v, func(x any) bool { s, ok := x.(string); return ok && strings.HasPrefix(s, arg.(string)) })
		case "suffix":
			return present && anyElement(v, func(x any) bool { s, ok := x.(string); return ok && strings.HasSuffix(s, arg.(string)) })
		case "anything-but":
			if !present {
				return false
			}
			excluded := []any{arg}
			if list, ok := arg.([]any); ok {
				excluded = list
			}
			return !anyElement(v, func(x any) bool {
				for _, e := range excluded {
					if equalJSON(e, x) {
						return true
					}
				}
				return false
			})
		}
	}
	return false
}

// anyElement applies f to v, or to each element when v is an array.
func anyElement(v any, f func(any) bool) bool {
	if list, ok := v.([]any); ok {
		for _, x := range list {
			if f(x) {
				return true
			}
		}
		return false
	}
	return f(v)
}

func equalJSON(a, b any) bool {
	// The common cases without formatting: what fmt.Sprint and the type
	// check below decide for them.
	switch av := a.(type) {
	case string:
		bv, ok := b.(string)
		return ok && av == bv
	case bool:
		bv, ok := b.(bool)
		return ok && av == bv
	}
	an, aok := a.(json.Number)
	bn, bok := b.(json.Number)
	if aok && bok {
		af, err1 := an.Float64()
		bf, err2 := bn.Float64()
		return err1 == nil && err2 == nil && af == bf
	}
	return fmt.Sprint(a) == fmt.Sprint(b) && sameKind(a, b)
}

func sameKind(a, b any) bool { return fmt.Sprintf("%T", a) == fmt.Sprintf("%T", b) }
