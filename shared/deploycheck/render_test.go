package deploycheck

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRendersVariables(t *testing.T) {
	t.Parallel()
	doc := `
edition: 3.0.0
vars:
  region: ${env('REGION', 'cn-hangzhou')}
  size: 128
  name: fn-${vars.region}
  nested:
    queue: ${env('QUEUE', "jobs")}
    list: [a, "${vars.region}"]
  log: ${json(env('LOG', '"auto"'))}
resources:
  f:
    component: fc3
    props:
      region: ${vars.region}
      memorySize: ${vars.size}
      functionName: ${vars.name}
      queue: ${vars.nested.queue}
      env: ${vars.nested}
      log: ${vars.log}
      arn: acs:mns:${vars.region}:${config('AccountID')}:/queues/${vars.nested.queue}
      text: 'size ${vars.size} in ${ vars.region }'
`
	cases := []struct {
		name string
		env  map[string]string
		want map[string]any
	}{
		{"defaults", nil, map[string]any{
			"region":       "cn-hangzhou",
			"memorySize":   128,
			"functionName": "fn-cn-hangzhou",
			"queue":        "jobs",
			"env":          map[string]any{"queue": "jobs", "list": []any{"a", "cn-hangzhou"}},
			"log":          "auto",
			"arn":          "acs:mns:cn-hangzhou:${config('AccountID')}:/queues/jobs",
			"text":         "size 128 in cn-hangzhou",
		}},
		{"overrides", map[string]string{"REGION": "cn-beijing", "QUEUE": "q2", "LOG": `{"project":"p","logstore":"l","n":1}`}, map[string]any{
			"region":       "cn-beijing",
			"memorySize":   128,
			"functionName": "fn-cn-beijing",
			"queue":        "q2",
			"env":          map[string]any{"queue": "q2", "list": []any{"a", "cn-beijing"}},
			"log":          map[string]any{"project": "p", "logstore": "l", "n": 1},
			"arn":          "acs:mns:cn-beijing:${config('AccountID')}:/queues/q2",
			"text":         "size 128 in cn-beijing",
		}},
		{"empty value is a value", map[string]string{"QUEUE": ""}, map[string]any{
			"region":       "cn-hangzhou",
			"memorySize":   128,
			"functionName": "fn-cn-hangzhou",
			"queue":        "",
			"env":          map[string]any{"queue": "", "list": []any{"a", "cn-hangzhou"}},
			"log":          "auto",
			"arn":          "acs:mns:cn-hangzhou:${config('AccountID')}:/queues/",
			"text":         "size 128 in cn-hangzhou",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec, err := Parse([]byte(doc), MapEnv(tc.env))
			require.NoError(t, err)
			require.Len(t, spec.Functions, 1)
			assert.Equal(t, "f", spec.Functions[0].Resource)
			assert.Equal(t, "fc3", spec.Functions[0].Component)
			assert.Equal(t, tc.want, spec.Functions[0].Props)
		})
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, doc, want string
	}{
		{"unset variable without default", "a: ${env('NOPE')}", "environment variable NOPE is not set and has no default"},
		{"undefined var", "a: ${vars.nope}", "vars.nope is not defined"},
		{"missing nested key", "vars: {a: {b: 1}}\nc: ${vars.a.x}", "vars.a.x is not defined"},
		{"self reference", "vars: {a: '${vars.b}', b: '${vars.a}'}", "refers to itself"},
		{"unsupported function", "a: ${file('./x')}", "unsupported function file()"},
		{"other resources", "a: ${resources.f.output.url}", "unsupported reference"},
		{"brace in a default", "a: ${env('X', 'hbr.{region}.aliyuncs.com')}", "brace inside a quoted string breaks Serverless Devs"},
		{"unterminated", "a: ${env('X'", "unterminated ${"},
		{"operators", `a: "${env('X', 'a') == 'b' ? 1 : 2}"`, "unsupported expression"},
		{"bad json", "a: ${json('[1,')}", `json("[1,")`},
		{"not YAML", "a: [", "parse YAML"},
		{"empty", "", "empty document"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.doc), MapEnv(nil))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestSchemaValidate(t *testing.T) {
	t.Parallel()
	schema, err := ParseSchema([]byte(`{
		"definitions": {"Size": {"type": "integer", "minimum": 128, "multipleOf": 64}},
		"type": "object",
		"required": ["name"],
		"properties": {
			"name": {"type": "string", "pattern": "^[a-z]+$"},
			"size": {"$ref": "#/definitions/Size"},
			"log": {"anyOf": [{"const": "auto", "type": "string"}, {"type": "object", "required": ["project"], "properties": {"project": {"type": "string"}}}]},
			"tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
			"open": {"type": "object", "additionalProperties": true, "properties": {}},
			"closed": {"type": "object", "additionalProperties": false, "properties": {"a": {"type": "boolean"}}},
			"runtime": {"enum": ["go1", "custom"]}
		},
		"if": {"required": ["runtime"], "properties": {"runtime": {"const": "go1"}}},
		"then": {"required": ["handler"]}
	}`))
	require.NoError(t, err)
	cases := []struct {
		name   string
		value  map[string]any
		strict bool
		want   []Issue
	}{
		{"valid", map[string]any{"name": "abc", "size": 192, "log": "auto", "tags": []any{"x"}, "open": map[string]any{"anything": 1}, "closed": map[string]any{"a": true}, "runtime": "custom"}, true, nil},
		{"log object", map[string]any{"name": "abc", "log": map[string]any{"project": "p"}}, true, nil},
		{"missing required", map[string]any{}, false, []Issue{{Path: "name", Message: "required but missing"}}},
		{"wrong type", map[string]any{"name": 3}, false, []Issue{{Path: "name", Message: "want string, got integer"}}},
		{"pattern", map[string]any{"name": "ABC"}, false, []Issue{{Path: "name", Message: `"ABC" does not match ^[a-z]+$`}}},
		{"ref minimum and multiple", map[string]any{"name": "a", "size": 100}, false, []Issue{
			{Path: "size", Message: "100 is below the minimum 128"},
			{Path: "size", Message: "100 is not a multiple of 64"},
		}},
		{"anyOf picks the closest branch", map[string]any{"name": "a", "log": map[string]any{}}, false, []Issue{{Path: "log.project", Message: "required but missing"}}},
		{"maxItems and items", map[string]any{"name": "a", "tags": []any{"x", 1, "z"}}, false, []Issue{
			{Path: "tags", Message: "has 3 items, want at most 2"},
			{Path: "tags[1]", Message: "want string, got integer"},
		}},
		{"additionalProperties false", map[string]any{"name": "a", "closed": map[string]any{"b": true}}, false, []Issue{{Path: "closed.b", Message: "not allowed here"}}},
		{"unknown key lax", map[string]any{"name": "a", "nmae": "b"}, false, nil},
		{"unknown key strict", map[string]any{"name": "a", "nmae": "b"}, true, []Issue{{Path: "nmae", Message: `unknown key (fc3 would ignore it silently); did you mean "name"?`}}},
		{"enum", map[string]any{"name": "a", "runtime": "go2"}, false, []Issue{{Path: "runtime", Message: "go2 is not one of [go1 custom]"}}},
		{"if then", map[string]any{"name": "a", "runtime": "go1"}, false, []Issue{{Path: "handler", Message: "required but missing"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, schema.Validate(tc.value, tc.strict))
		})
	}
}
