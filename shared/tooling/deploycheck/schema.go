package deploycheck

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// schemaURL names the schema inside the compiler; nothing is fetched.
const schemaURL = "mem:///fc3-schema.json"

// Schema is fc3's props schema (draft-07), compiled by
// github.com/santhosh-tekuri/jsonschema in strict mode: every object schema
// that declares properties and says nothing about others is closed
// (additionalProperties: false), because fc3 silently ignores keys it does not
// know, so a misspelt key would quietly not take effect. Objects the schema
// leaves open on purpose (additionalProperties: true) stay open; Check
// covers the keys this project uses in them.
type Schema struct {
	compiled *jsonschema.Schema
	// triggerConfigs holds the definitions of each trigger type's config.
	// fc3's ITrigger accepts a triggerConfig matching any of them, and one
	// (IOtsConfig) declares nothing, so the schema as a whole lets any
	// trigger config through; Check validates each config against its own
	// type's definition instead.
	triggerConfigs map[string]*jsonschema.Schema
	// doc is the closed document, to name the keys an object accepts.
	doc any
}

// LoadSchema reads and compiles a JSON Schema file.
func LoadSchema(path string) (*Schema, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	return CompileSchema(data)
}

// CompileSchema compiles a JSON Schema document in strict mode.
func CompileSchema(data []byte) (*Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	closeObjects(doc)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("add schema: %w", err)
	}
	compiled, err := c.Compile(schemaURL)
	if err != nil {
		return nil, fmt.Errorf("compile schema: %w", err)
	}
	configs := map[string]*jsonschema.Schema{}
	defs, _ := doc.(map[string]any)["definitions"].(map[string]any)
	for typ, def := range triggerConfigDefinitions {
		if _, ok := defs[def]; !ok {
			continue
		}
		sch, err := c.Compile(schemaURL + "#/definitions/" + def)
		if err != nil {
			return nil, fmt.Errorf("compile schema definition %s: %w", def, err)
		}
		configs[typ] = sch
	}
	return &Schema{compiled: compiled, triggerConfigs: configs, doc: doc}, nil
}

// triggerConfigDefinitions maps fc3 trigger types to the schema definition
// of their triggerConfig (fc3's ITriggerType and the definitions in its
// ITrigger.triggerConfig anyOf).
var triggerConfigDefinitions = map[string]string{
	"eventbridge": "IEventBridge",
	"timer":       "ITimerTriggerConfig",
	"http":        "IHttpTriggerConfig",
	"oss":         "IOssTriggerConfig",
	"log":         "ILogTriggerConfig",
	"mns_topic":   "IMnsTriggerConfig",
	"cdn_events":  "ICdnTriggerConfig",
}

// closeObjects sets additionalProperties: false on every schema object that
// has properties and no additionalProperties of its own.
func closeObjects(v any) {
	switch t := v.(type) {
	case map[string]any:
		if props, ok := t["properties"].(map[string]any); ok {
			if _, set := t["additionalProperties"]; !set {
				t["additionalProperties"] = false
			}
			for _, p := range props {
				closeObjects(p)
			}
		}
		for k, e := range t {
			if k != "properties" && k != "enum" && k != "const" {
				closeObjects(e)
			}
		}
	case []any:
		for _, e := range t {
			closeObjects(e)
		}
	}
}

// Issue is one schema violation at a path such as
// "triggers[0].triggerConfig.runOptions".
type Issue struct {
	Path    string
	Message string
}

var printer = message.NewPrinter(language.English)

// Validate checks v (decoded JSON: objects as map[string]any, numbers as
// json.Number, float64 or int) and returns its issues, sorted by path. Of
// the branches of a failed anyOf it reports the closest one only (the
// fewest problems), as a reader wants to hear about the trigger config
// they meant to write, not about the seven other kinds of trigger.
func (s *Schema) Validate(v any) []Issue {
	return s.validate(s.compiled, v)
}

// ValidateTriggerConfig checks a trigger's config against the definition
// of its type's config; it returns nil for types the schema does not
// describe on their own. Paths are relative to the config.
func (s *Schema) ValidateTriggerConfig(triggerType string, config any) []Issue {
	sch, ok := s.triggerConfigs[triggerType]
	if !ok {
		return nil
	}
	return s.validate(sch, config)
}

func (s *Schema) validate(sch *jsonschema.Schema, v any) []Issue {
	err := sch.Validate(v)
	if err == nil {
		return nil
	}
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return []Issue{{Message: err.Error()}}
	}
	var issues []Issue
	s.collect(ve, &issues)
	sort.SliceStable(issues, func(i, j int) bool { return issues[i].Path < issues[j].Path })
	return issues
}

// collect appends the leaf issues of e.
func (s *Schema) collect(e *jsonschema.ValidationError, out *[]Issue) {
	if _, any := e.ErrorKind.(*kind.AnyOf); any && len(e.Causes) > 0 {
		var best []Issue
		for i, c := range e.Causes {
			var branch []Issue
			s.collect(c, &branch)
			if i == 0 || weight(branch) < weight(best) {
				best = branch
			}
		}
		*out = append(*out, best...)
		return
	}
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			s.collect(c, out)
		}
		return
	}
	p := instancePath(e.InstanceLocation)
	switch k := e.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		known := s.propertiesAt(e.SchemaURL)
		for _, name := range k.Properties {
			*out = append(*out, Issue{Path: join(p, name), Message: "unknown key (fc3 would ignore it silently)" + suggest(name, known)})
		}
	case *kind.Required:
		for _, name := range k.Missing {
			*out = append(*out, Issue{Path: join(p, name), Message: "required but missing"})
		}
	default:
		*out = append(*out, Issue{Path: p, Message: e.ErrorKind.LocalizedString(printer)})
	}
}

// weight ranks an anyOf branch by its number of issues (each unknown key
// is one).
func weight(issues []Issue) int { return len(issues) }

// propertiesAt returns the properties declared by the schema at url
// ("mem:///fc3-schema.json#/definitions/ITrigger").
func (s *Schema) propertiesAt(url string) map[string]any {
	_, frag, _ := strings.Cut(url, "#")
	var cur = s.doc
	for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
		if tok == "" {
			continue
		}
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch t := cur.(type) {
		case map[string]any:
			cur = t[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(t) {
				return nil
			}
			cur = t[i]
		default:
			return nil
		}
	}
	m, _ := cur.(map[string]any)
	props, _ := m["properties"].(map[string]any)
	return props
}

// instancePath renders a JSON pointer's tokens as "a.b[0].c".
func instancePath(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		if _, err := strconv.Atoi(t); err == nil {
			b.WriteString("[" + t + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(t)
	}
	return b.String()
}
