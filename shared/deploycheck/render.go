package deploycheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Env looks up an environment variable for ${env('NAME')}; ok is false when
// the variable is unset.
type Env func(name string) (value string, ok bool)

// MapEnv returns an Env reading m.
func MapEnv(m map[string]string) Env {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// Spec is a rendered s.yaml.
type Spec struct {
	// Doc is the whole rendered document.
	Doc map[string]any
	// Functions are the fc3 resources, sorted by resource name.
	Functions []Function
}

// Function is one fc3 resource of the spec.
type Function struct {
	// Resource is the resource's key under resources (what `s <resource>
	// deploy` takes).
	Resource string
	// Component is the resource's component (fc3).
	Component string
	// Props are the rendered props.
	Props map[string]any
	// Actions are the rendered actions (pre-deploy, …).
	Actions map[string]any
}

// Parse parses an s.yaml document and renders its variables the way
// Serverless Devs does: ${vars.a.b}, ${env('NAME')}, ${env('NAME',
// 'default')} and ${json(<expr>)}. A value that is exactly one ${…} keeps the
// type of the result (a number, an object); otherwise results are spliced
// into the text. ${config('Key')} is left as it is, as `s preview` does
// without credentials. Any other expression is an error, so the check never
// guesses.
func Parse(data []byte, env Env) (Spec, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Spec{}, fmt.Errorf("parse YAML: %w", err)
	}
	if doc == nil {
		return Spec{}, errors.New("empty document")
	}
	vars, _ := doc["vars"].(map[string]any)
	r := &renderer{env: env, rawVars: vars, vars: map[string]any{}, state: map[string]int{}}

	out := make(map[string]any, len(doc))
	for k, v := range doc {
		if k == "vars" {
			continue
		}
		rv, err := r.render(v, k)
		if err != nil {
			return Spec{}, err
		}
		out[k] = rv
	}
	rendered := make(map[string]any, len(vars))
	for name := range vars {
		v, err := r.variable(name)
		if err != nil {
			return Spec{}, err
		}
		rendered[name] = v
	}
	if vars != nil {
		out["vars"] = rendered
	}

	spec := Spec{Doc: out}
	resources, _ := out["resources"].(map[string]any)
	names := make([]string, 0, len(resources))
	for name := range resources {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		res, ok := resources[name].(map[string]any)
		if !ok {
			return Spec{}, fmt.Errorf("resources.%s is not a mapping", name)
		}
		fn := Function{Resource: name}
		fn.Component, _ = res["component"].(string)
		fn.Props, _ = res["props"].(map[string]any)
		fn.Actions, _ = res["actions"].(map[string]any)
		spec.Functions = append(spec.Functions, fn)
	}
	return spec, nil
}

// renderer renders ${…} expressions. vars are rendered lazily, on first use,
// so variables may refer to each other in any order.
type renderer struct {
	env     Env
	rawVars map[string]any
	vars    map[string]any
	state   map[string]int // 1 = rendering, 2 = done
}

func (r *renderer) variable(name string) (any, error) {
	switch r.state[name] {
	case 1:
		return nil, fmt.Errorf("vars.%s refers to itself", name)
	case 2:
		return r.vars[name], nil
	}
	raw, ok := r.rawVars[name]
	if !ok {
		return nil, fmt.Errorf("vars.%s is not defined", name)
	}
	r.state[name] = 1
	v, err := r.render(raw, "vars."+name)
	if err != nil {
		return nil, err
	}
	r.vars[name] = v
	r.state[name] = 2
	return v, nil
}

// render renders every string in v, returning a new value.
func (r *renderer) render(v any, path string) (any, error) {
	switch t := v.(type) {
	case string:
		out, err := r.renderString(t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			rv, err := r.render(e, path+"."+k)
			if err != nil {
				return nil, err
			}
			out[k] = rv
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			rv, err := r.render(e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = rv
		}
		return out, nil
	default:
		return v, nil
	}
}

// renderString renders the ${…} expressions of one string.
func (r *renderer) renderString(s string) (any, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			b.WriteString(rest)
			break
		}
		end, err := exprEnd(rest[i+2:])
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		src := rest[i : i+2+end+1]
		val, keep, err := r.eval(rest[i+2 : i+2+end])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		if keep {
			val = src
		}
		if i == 0 && len(src) == len(rest) && b.Len() == 0 {
			return val, nil // the whole value is one expression: keep its type
		}
		b.WriteString(rest[:i])
		b.WriteString(text(val))
		rest = rest[i+len(src):]
	}
	return b.String(), nil
}

// exprEnd returns the index of the '}' closing an expression that starts
// right after "${", skipping quoted strings.
func exprEnd(s string) (int, error) {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0 && (c == '{' || c == '}'):
			// Serverless Devs' template parser splits on braces even inside
			// quotes, so such a file would not deploy.
			return 0, errors.New("a brace inside a quoted string breaks Serverless Devs' template parser")
		case quote != 0:
		case c == '\'' || c == '"':
			quote = c
		case c == '}':
			return i, nil
		}
	}
	return 0, errors.New("unterminated ${")
}

func text(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case nil:
		return ""
	case map[string]any, []any:
		out, err := json.Marshal(t)
		if err != nil {
			return fmt.Sprint(t)
		}
		return string(out)
	default:
		return fmt.Sprint(t)
	}
}

// eval evaluates one expression. keep is true for expressions left as they
// are (config(…)).
func (r *renderer) eval(src string) (v any, keep bool, err error) {
	p := &exprParser{src: src}
	n, err := p.parse()
	if err != nil {
		return nil, false, err
	}
	return r.evalNode(n)
}

func (r *renderer) evalNode(n node) (any, bool, error) {
	switch n.kind {
	case nodeString:
		return n.text, false, nil
	case nodePath:
		if n.path[0] != "vars" || len(n.path) < 2 {
			return nil, false, fmt.Errorf("unsupported reference %q (only vars.* is rendered here)", strings.Join(n.path, "."))
		}
		v, err := r.variable(n.path[1])
		if err != nil {
			return nil, false, err
		}
		for _, key := range n.path[2:] {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false, fmt.Errorf("%s: %q is not a mapping", strings.Join(n.path, "."), key)
			}
			if v, ok = m[key]; !ok {
				return nil, false, fmt.Errorf("%s is not defined", strings.Join(n.path, "."))
			}
		}
		return v, false, nil
	case nodeCall:
		args := make([]any, len(n.args))
		for i, a := range n.args {
			v, keep, err := r.evalNode(a)
			if err != nil {
				return nil, false, err
			}
			if keep {
				return nil, true, nil
			}
			args[i] = v
		}
		return r.call(n.text, args)
	}
	return nil, false, errors.New("empty expression")
}

func (r *renderer) call(name string, args []any) (any, bool, error) {
	str := func(i int) (string, error) {
		s, ok := args[i].(string)
		if !ok {
			return "", fmt.Errorf("%s: argument %d is not a string", name, i+1)
		}
		return s, nil
	}
	switch name {
	case "env":
		if len(args) < 1 || len(args) > 2 {
			return nil, false, fmt.Errorf("env takes 1 or 2 arguments, got %d", len(args))
		}
		key, err := str(0)
		if err != nil {
			return nil, false, err
		}
		if v, ok := r.env(key); ok {
			return v, false, nil
		}
		if len(args) == 2 {
			d, err := str(1)
			return d, false, err
		}
		return nil, false, fmt.Errorf("environment variable %s is not set and has no default", key)
	case "json":
		if len(args) != 1 {
			return nil, false, fmt.Errorf("json takes 1 argument, got %d", len(args))
		}
		s, err := str(0)
		if err != nil {
			return nil, false, err
		}
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, false, fmt.Errorf("json(%q): %w", s, err)
		}
		return normalizeJSON(v), false, nil
	case "config":
		return nil, true, nil
	default:
		return nil, false, fmt.Errorf("unsupported function %s()", name)
	}
}

// normalizeJSON turns JSON numbers into the types YAML decoding produces
// (int for whole numbers).
func normalizeJSON(v any) any {
	switch t := v.(type) {
	case float64:
		if t == float64(int(t)) {
			return int(t)
		}
		return t
	case map[string]any:
		for k, e := range t {
			t[k] = normalizeJSON(e)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = normalizeJSON(e)
		}
		return t
	default:
		return v
	}
}

// The expression language: string literals, dotted paths and calls.
type nodeKind int

const (
	nodeString nodeKind = iota + 1
	nodePath
	nodeCall
)

type node struct {
	kind nodeKind
	text string   // literal value or function name
	path []string // for nodePath
	args []node   // for nodeCall
}

type exprParser struct {
	src string
	pos int
}

func (p *exprParser) parse() (node, error) {
	n, err := p.expr()
	if err != nil {
		return node{}, err
	}
	p.space()
	if p.pos != len(p.src) {
		return node{}, fmt.Errorf("unsupported expression: unexpected %q", p.src[p.pos:])
	}
	return n, nil
}

func (p *exprParser) space() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t') {
		p.pos++
	}
}

func (p *exprParser) expr() (node, error) {
	p.space()
	if p.pos >= len(p.src) {
		return node{}, errors.New("empty expression")
	}
	if c := p.src[p.pos]; c == '\'' || c == '"' {
		return p.str(c)
	}
	id := p.ident()
	if id == "" {
		return node{}, fmt.Errorf("unsupported expression at %q", p.src[p.pos:])
	}
	p.space()
	if p.pos < len(p.src) && p.src[p.pos] == '(' {
		p.pos++
		call := node{kind: nodeCall, text: id}
		p.space()
		if p.pos < len(p.src) && p.src[p.pos] == ')' {
			p.pos++
			return call, nil
		}
		for {
			arg, err := p.expr()
			if err != nil {
				return node{}, err
			}
			call.args = append(call.args, arg)
			p.space()
			if p.pos >= len(p.src) {
				return node{}, fmt.Errorf("%s(: missing )", id)
			}
			switch p.src[p.pos] {
			case ',':
				p.pos++
			case ')':
				p.pos++
				return call, nil
			default:
				return node{}, fmt.Errorf("unsupported expression: unexpected %q in %s()", p.src[p.pos:], id)
			}
		}
	}
	path := []string{id}
	for p.pos < len(p.src) && p.src[p.pos] == '.' {
		p.pos++
		seg := p.ident()
		if seg == "" {
			return node{}, fmt.Errorf("bad reference after %q", strings.Join(path, "."))
		}
		path = append(path, seg)
	}
	return node{kind: nodePath, path: path}, nil
}

func (p *exprParser) ident() string {
	start := p.pos
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if c == '_' || c == '-' && p.pos > start || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && p.pos > start {
			p.pos++
			continue
		}
		break
	}
	return p.src[start:p.pos]
}

func (p *exprParser) str(quote byte) (node, error) {
	p.pos++ // opening quote
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '\\' && p.pos+1 < len(p.src):
			b.WriteByte(p.src[p.pos+1])
			p.pos += 2
		case c == quote:
			p.pos++
			return node{kind: nodeString, text: b.String()}, nil
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	return node{}, errors.New("unterminated string literal")
}
