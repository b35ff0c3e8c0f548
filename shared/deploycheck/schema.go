package deploycheck

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
)

// Schema is a JSON Schema (the draft-07 subset fc3's schema uses: type,
// enum, const, properties, required, additionalProperties, items,
// minItems, maxItems, anyOf, if/then/else, minimum, maximum, multipleOf,
// pattern and local $ref).
type Schema struct {
	root map[string]any
	res  map[string]*regexp.Regexp
}

// ReferenceSchemaPath is where the fc3 props schema (devsapp/fc3
// src/schema.json, commit 4ca1c1b) sits relative to the repository root: in
// the reference material beside the project, not in the repository, since it
// is another project's file.
const ReferenceSchemaPath = "../shared/reference/fc3-schema.json"

// LoadSchema reads and parses a JSON Schema file.
func LoadSchema(path string) (*Schema, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	return ParseSchema(data)
}

// ParseSchema parses a JSON Schema document.
func ParseSchema(data []byte) (*Schema, error) {
	var root map[string]any
	if err := json.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	return &Schema{root: root, res: map[string]*regexp.Regexp{}}, nil
}

// Issue is one schema violation at a path such as
// "triggers[0].triggerConfig.runOptions".
type Issue struct {
	Path    string
	Message string
}

// Validate checks v (decoded YAML or JSON) against the schema. With strict
// set, an object key that the schema does not declare is an issue too,
// unless the schema allows additional properties: fc3 silently ignores such
// keys, so a misspelt one would quietly not take effect.
func (s *Schema) Validate(v any, strict bool) []Issue {
	var out []Issue
	s.validate(s.root, v, "", strict, &out)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (s *Schema) validate(sch map[string]any, v any, path string, strict bool, out *[]Issue) {
	add := func(format string, args ...any) {
		*out = append(*out, Issue{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if ref, ok := sch["$ref"].(string); ok {
		target, err := s.resolve(ref)
		if err != nil {
			add("%v", err)
			return
		}
		s.validate(target, v, path, strict, out)
		return
	}

	if t, ok := sch["type"]; ok && !hasType(t, v) {
		add("want %s, got %s", typeNames(t), jsonType(v))
		return
	}
	if c, ok := sch["const"]; ok && !jsonEqual(c, v) {
		add("want %v, got %v", c, v)
	}
	if enum, ok := sch["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			if jsonEqual(e, v) {
				found = true
				break
			}
		}
		if !found {
			add("%v is not one of %v", v, enum)
		}
	}
	if f, ok := number(v); ok {
		if m, ok := sch["minimum"].(float64); ok && f < m {
			add("%v is below the minimum %v", v, m)
		}
		if m, ok := sch["maximum"].(float64); ok && f > m {
			add("%v is above the maximum %v", v, m)
		}
		if m, ok := sch["multipleOf"].(float64); ok && m > 0 && math.Mod(f, m) != 0 {
			add("%v is not a multiple of %v", v, m)
		}
	}
	if p, ok := sch["pattern"].(string); ok {
		if str, ok := v.(string); ok {
			re, err := s.regexp(p)
			if err != nil {
				add("schema pattern %q: %v", p, err)
			} else if !re.MatchString(str) {
				add("%q does not match %s", str, p)
			}
		}
	}

	if obj, ok := v.(map[string]any); ok {
		props, _ := sch["properties"].(map[string]any)
		if req, ok := sch["required"].([]any); ok {
			for _, r := range req {
				if name, ok := r.(string); ok {
					if _, present := obj[name]; !present {
						*out = append(*out, Issue{Path: join(path, name), Message: "required but missing"})
					}
				}
			}
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ps, ok := props[k].(map[string]any); ok {
				s.validate(ps, obj[k], join(path, k), strict, out)
				continue
			}
			switch ap := sch["additionalProperties"].(type) {
			case bool:
				if !ap {
					*out = append(*out, Issue{Path: join(path, k), Message: "not allowed here"})
				}
			case map[string]any:
				s.validate(ap, obj[k], join(path, k), strict, out)
			default:
				if strict && props != nil {
					*out = append(*out, Issue{Path: join(path, k), Message: "unknown key (fc3 would ignore it silently)" + suggest(k, props)})
				}
			}
		}
	}

	if arr, ok := v.([]any); ok {
		if n, ok := sch["minItems"].(float64); ok && float64(len(arr)) < n {
			add("has %d items, want at least %v", len(arr), n)
		}
		if n, ok := sch["maxItems"].(float64); ok && float64(len(arr)) > n {
			add("has %d items, want at most %v", len(arr), n)
		}
		if items, ok := sch["items"].(map[string]any); ok {
			for i, e := range arr {
				s.validate(items, e, fmt.Sprintf("%s[%d]", path, i), strict, out)
			}
		}
	}

	if anyOf, ok := sch["anyOf"].([]any); ok {
		// Report the issues of the closest branch: one of the value's type
		// if any, then the one with the fewest issues.
		var best []Issue
		bestScore := -1
		for _, alt := range anyOf {
			m, ok := alt.(map[string]any)
			if !ok {
				continue
			}
			var issues []Issue
			s.validate(m, v, path, strict, &issues)
			if len(issues) == 0 {
				best = nil
				break
			}
			score := len(issues)
			if !s.typeMatches(m, v) {
				score += 1 << 20
			}
			if bestScore < 0 || score < bestScore {
				best, bestScore = issues, score
			}
		}
		*out = append(*out, best...)
	}

	if cond, ok := sch["if"].(map[string]any); ok {
		var issues []Issue
		s.validate(cond, v, path, false, &issues)
		branch := "else"
		if len(issues) == 0 {
			branch = "then"
		}
		if b, ok := sch[branch].(map[string]any); ok {
			s.validate(b, v, path, strict, out)
		}
	}
}

// typeMatches reports whether sch (following one $ref) accepts v's type.
func (s *Schema) typeMatches(sch map[string]any, v any) bool {
	if ref, ok := sch["$ref"].(string); ok {
		target, err := s.resolve(ref)
		if err != nil {
			return false
		}
		sch = target
	}
	t, ok := sch["type"]
	return !ok || hasType(t, v)
}

func (s *Schema) resolve(ref string) (map[string]any, error) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("unsupported $ref %q", ref)
	}
	var cur any = s.root
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
		cur = m[part]
	}
	m, ok := cur.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("$ref %q does not resolve", ref)
	}
	return m, nil
}

func (s *Schema) regexp(p string) (*regexp.Regexp, error) {
	if re, ok := s.res[p]; ok {
		return re, nil
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, err
	}
	s.res[p] = re
	return re, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest names a declared key close to an unknown one.
func suggest(key string, props map[string]any) string {
	best, bestD := "", 3
	for p := range props {
		if d := distance(strings.ToLower(key), strings.ToLower(p)); d < bestD || d == bestD && p < best {
			best, bestD = p, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	if f, ok := number(v); ok {
		if f == math.Trunc(f) {
			return "integer"
		}
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

func hasType(t any, v any) bool {
	actual := jsonType(v)
	match := func(want string) bool {
		return want == actual || want == "number" && actual == "integer"
	}
	switch w := t.(type) {
	case string:
		return match(w)
	case []any:
		for _, e := range w {
			if s, ok := e.(string); ok && match(s) {
				return true
			}
		}
	}
	return false
}

func typeNames(t any) string {
	if s, ok := t.(string); ok {
		return s
	}
	return fmt.Sprint(t)
}

func jsonEqual(a, b any) bool {
	fa, aok := number(a)
	fb, bok := number(b)
	if aok && bok {
		return fa == fb
	}
	return reflect.DeepEqual(a, b)
}
