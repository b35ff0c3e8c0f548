// Package deploycheck checks that s.yaml, the Serverless Devs description of
// the deployment, agrees with the code and with what the fc3 component
// accepts — before a deploy, because fc3 only logs schema errors at debug
// level and silently ignores misspelt keys.
//
// Serverless Devs itself renders the file: [Preview] runs the pinned
// `s preview -o json` (the Makefile installs it into .tools/) and
// [ParsePreview] reads its output. [Check] then compares the rendered spec
// with [Rules]: fc3's published props schema ([LoadSchema], validated by
// github.com/santhosh-tekuri/jsonschema), and what only this project knows:
// the binaries the Makefile builds ([ParseBuildCommands]), the environment
// variables the code reads (shared/config's list), and the deployment rules
// the schema leaves open (EventBridge trigger fields, filter patterns,
// dead-letter ARNs, queue names, timeouts, the fc3 trigger-ordering quirk,
// timer expressions and payloads).
//
// Check returns problems as values, not errors; Preview, ParsePreview and
// LoadSchema return plain errors for unreadable input. Nothing here is
// classified with shared/fault: this package runs in tests and tools, not
// in the functions.
package deploycheck

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
)

// Variable is an environment variable the code reads (config.Variable).
type Variable struct {
	Name    string
	Default string
	// Required variables must be set to a non-empty value.
	Required bool
	// Platform variables are set by Function Compute and must not be set in
	// s.yaml.
	Platform bool
}

// Rules is what a spec is checked against.
type Rules struct {
	// Variables lists every environment variable the functions read.
	Variables []Variable
	// BuildOutputs maps each binary the Makefile builds ("dist/install/main")
	// to the package it is built from ("./functions/install"); see
	// ParseBuildCommands.
	BuildOutputs map[string]string
	// Schema is the fc3 props schema, applied in strict mode (unknown keys
	// are problems); nil skips it.
	Schema *Schema
	// ExtraTriggers lists the "<resource>:<trigger>" pairs the Makefile
	// deploys on their own, one `s <resource> deploy --trigger <trigger>`
	// each, to work around fc3 skipping every eventbridge trigger listed
	// after an unchanged one.
	ExtraTriggers []string
	// ExpectDefaults says the spec was rendered with an empty environment,
	// so every environment variable set in it must carry the code's default
	// (the two lists of defaults must not drift apart).
	ExpectDefaults bool
}

// Problem is one inconsistency, located by resource and path.
type Problem struct {
	Resource string
	Path     string
	Message  string
}

// String renders a problem as "resource: path: message".
func (p Problem) String() string {
	loc := p.Resource
	if p.Path != "" {
		if loc != "" {
			loc += ": "
		}
		loc += p.Path
	}
	if loc == "" {
		return p.Message
	}
	return loc + ": " + p.Message
}

// Limits and formats the checks rely on.
const (
	// eventBridgeMaxTimeout caps an invocation by an EventBridge trigger
	// (sync or async), in seconds.
	eventBridgeMaxTimeout = 300
	// maxEnvBytes is FC's limit on the total size of environment variables.
	maxEnvBytes = 4096
)

var (
	queueRe   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,119}$`)
	envKeyRe  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	accountRe = `([0-9]+|\$\{[^}]+\})`
	// EventBridge dead-letter queue: acs:mns:<region>:<account>:/queues/<name>
	dlqArnRe = regexp.MustCompile(`^acs:mns:([a-z0-9-]+):` + accountRe + `:/queues/([^/]+)$`)
	// FC async destination (MNS queue): the same ARN plus /messages.
	destArnRe  = regexp.MustCompile(`^acs:mns:([a-z0-9-]+):` + accountRe + `:/queues/([^/]+)/messages$`)
	unrendered = regexp.MustCompile(`\$\{[^}]*\}`)
	configRef  = regexp.MustCompile(`^\$\{config\(['"][A-Za-z]+['"]\)\}$`)
	buildCmdRe = regexp.MustCompile(`\bgo build\b.*\s-o\s+(\S+)\s+(\./functions/\S+)`)
)

// Known keys of the objects that fc3's schema leaves open
// (additionalProperties: true), from the FC 3.0 API models
// (EventBridgeTriggerConfig, RunOptions, BatchWindow, RetryStrategy,
// DeadLetterQueue, SourceMNSParameters, DeliveryOption).
var (
	runOptionsKeys  = keys("mode", "batchWindow", "retryStrategy", "errorsTolerance", "deadLetterQueue", "maximumTasks")
	batchWindowKeys = keys("CountBasedWindow", "TimeBasedWindow")
	retryKeys       = keys("PushRetryStrategy")
	dlqKeys         = keys("Arn")
	mnsSourceKeys   = keys("QueueName", "RegionId", "IsBase64Decode")
	deliveryKeys    = keys("mode", "eventSchema", "concurrency")
	sourceParamKeys = keys("sourceMNSParameters", "sourceRocketMQParameters", "sourceRabbitMQParameters", "sourceKafkaParameters", "sourceDTSParameters", "sourceMQTTParameters")
)

func keys(ks ...string) map[string]bool {
	m := make(map[string]bool, len(ks))
	for _, k := range ks {
		m[k] = true
	}
	return m
}

// ParseBuildCommands reads the output of `make -n build` and returns, for
// every `go build … -o <binary> ./functions/<fn>` line, the binary path
// (cleaned, e.g. "dist/install/main") and its package.
func ParseBuildCommands(out string) map[string]string {
	builds := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if m := buildCmdRe.FindStringSubmatch(line); m != nil {
			builds[path.Clean(m[1])] = m[2]
		}
	}
	return builds
}

// Check compares a rendered spec with the rules and returns every problem
// found, in a stable order. An empty result means the spec is consistent.
func Check(spec Spec, rules Rules) []Problem {
	c := &checker{rules: rules, vars: map[string]Variable{}}
	for _, v := range rules.Variables {
		c.vars[v.Name] = v
	}
	if e, _ := spec.Doc["edition"].(string); e != "3.0.0" {
		c.add("", "edition", "want 3.0.0 (Serverless Devs 3), got %q", e)
	}
	if len(spec.Functions) == 0 {
		c.add("", "resources", "no resources")
	}

	used := map[string]bool{}
	triggers := map[string]bool{}
	for _, fn := range spec.Functions {
		c.function(fn, used, triggers)
	}

	outputs := make([]string, 0, len(rules.BuildOutputs))
	for bin := range rules.BuildOutputs {
		outputs = append(outputs, bin)
	}
	sort.Strings(outputs)
	for _, bin := range outputs {
		if !used[bin] {
			c.add("", "", "the Makefile builds %s (%s) but no function deploys it", bin, rules.BuildOutputs[bin])
		}
	}
	for _, t := range rules.ExtraTriggers {
		if !triggers[t] {
			c.add("", "", "the Makefile deploys trigger %s on its own, but s.yaml has no eventbridge trigger %s", t, t)
		}
	}
	return c.problems
}

type checker struct {
	rules    Rules
	vars     map[string]Variable
	problems []Problem
}

func (c *checker) add(resource, path, format string, args ...any) {
	c.problems = append(c.problems, Problem{Resource: resource, Path: path, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) function(fn Function, used, triggers map[string]bool) {
	r := fn.Resource
	if fn.Component != "fc3" {
		c.add(r, "component", "want fc3, got %q", fn.Component)
		return
	}
	props := fn.Props
	if props == nil {
		c.add(r, "props", "missing")
		return
	}
	if c.rules.Schema != nil {
		for _, is := range c.rules.Schema.Validate(props) {
			c.add(r, join("props", is.Path), "%s", is.Message)
		}
	}
	walkStrings(props, "props", func(p, s string) {
		for _, m := range unrendered.FindAllString(s, -1) {
			if !configRef.MatchString(m) {
				c.add(r, p, "unrendered expression %s", m)
			}
		}
	})

	// fc3's schema checks the region (IRegion) and the types of the
	// environment variables (IKV); what follows is this project's own.
	region, _ := props["region"].(string)
	c.code(r, props, used)
	if role, _ := props["role"].(string); strings.TrimSpace(role) == "" {
		c.add(r, "props.role", "missing: the functions call HBR and MNS with the role's credentials")
	}
	env := c.environment(r, props)
	c.asyncConfig(r, region, props)

	list, _ := props["triggers"].([]any)
	eb := 0
	names := map[string]bool{}
	for i, t := range list {
		tr, ok := t.(map[string]any)
		if !ok {
			continue
		}
		p := fmt.Sprintf("props.triggers[%d]", i)
		name, _ := tr["triggerName"].(string)
		if names[name] {
			c.add(r, p+".triggerName", "duplicate trigger name %q", name)
		}
		names[name] = true
		typ, _ := tr["triggerType"].(string)
		if c.rules.Schema != nil {
			for _, is := range c.rules.Schema.ValidateTriggerConfig(typ, tr["triggerConfig"]) {
				c.add(r, join(p+".triggerConfig", is.Path), "%s", is.Message)
			}
		}
		if typ == "timer" {
			cfg, _ := tr["triggerConfig"].(map[string]any)
			c.timer(r, p+".triggerConfig", cfg)
		}
		if typ != "eventbridge" {
			continue
		}
		eb++
		triggers[r+":"+name] = true
		if eb > 1 && !contains(c.rules.ExtraTriggers, r+":"+name) {
			c.add(r, p, "eventbridge trigger %q follows another one: fc3 skips it whenever the one before is unchanged; deploy it on its own (add %s:%s to EXTRA_TRIGGERS in the Makefile)", name, r, name)
		}
		if eb == 1 && contains(c.rules.ExtraTriggers, r+":"+name) {
			c.add(r, p, "eventbridge trigger %q is the function's first: it needs no separate deploy", name)
		}
		cfg, _ := tr["triggerConfig"].(map[string]any)
		c.eventBridge(r, p+".triggerConfig", region, cfg, env)
	}
	if eb > 0 {
		if t, ok := number(props["timeout"]); ok && t > eventBridgeMaxTimeout {
			c.add(r, "props.timeout", "%v s: EventBridge triggers cap an invocation at %d s", t, eventBridgeMaxTimeout)
		}
	}
}

// code checks runtime, handler and code against the Makefile's build output.
func (c *checker) code(r string, props map[string]any, used map[string]bool) {
	if rt, _ := props["runtime"].(string); rt != "go1" {
		c.add(r, "props.runtime", "want go1 (fc-runtime-go-sdk does not run in custom runtimes), got %q", rt)
	}
	code, _ := props["code"].(string)
	handler, _ := props["handler"].(string)
	if code == "" || handler == "" {
		c.add(r, "props.code", "code and handler are required (code %q, handler %q)", code, handler)
		return
	}
	bin := path.Join(path.Clean(code), handler)
	if pkg, ok := c.rules.BuildOutputs[bin]; ok {
		used[bin] = true
		if want := "./functions/" + path.Base(path.Clean(code)); pkg != want {
			c.add(r, "props.code", "%s is built from %s, want %s", bin, pkg, want)
		}
		return
	}
	c.add(r, "props.code", "code %q with handler %q deploys %s, which the Makefile does not build (it builds %s)",
		code, handler, bin, strings.Join(sortedKeys(c.rules.BuildOutputs), ", "))
}

// environment checks environmentVariables against the variables the code
// reads, and returns them.
func (c *checker) environment(r string, props map[string]any) map[string]string {
	env := map[string]string{}
	raw, ok := props["environmentVariables"].(map[string]any)
	if !ok {
		c.add(r, "props.environmentVariables", "missing")
		raw = map[string]any{}
	}
	size := 0
	for _, k := range sortedKeys(raw) {
		p := "props.environmentVariables." + k
		s, ok := raw[k].(string)
		if !ok {
			s = fmt.Sprint(raw[k])
		}
		env[k] = s
		size += len(k) + len(s)
		if !envKeyRe.MatchString(k) {
			c.add(r, p, "a variable name starts with a letter and has only letters, digits and '_'")
		}
		v, known := c.vars[k]
		switch {
		case !known:
			c.add(r, p, "the code does not read %s", k)
		case v.Platform:
			c.add(r, p, "%s is set by Function Compute and must not be set here", k)
		case c.rules.ExpectDefaults && v.Default != "" && !strings.Contains(v.Default, "$") && s != v.Default:
			c.add(r, p, "%q differs from the code's default %q", s, v.Default)
		}
	}
	for _, v := range c.rules.Variables {
		if v.Required && !v.Platform && strings.TrimSpace(env[v.Name]) == "" {
			c.add(r, "props.environmentVariables", "%s is required but not set", v.Name)
		}
	}
	if size > maxEnvBytes {
		c.add(r, "props.environmentVariables", "%d bytes, over FC's limit of %d", size, maxEnvBytes)
	}
	return env
}

// asyncConfig checks FC async-invocation destinations.
func (c *checker) asyncConfig(r, region string, props map[string]any) {
	ac, _ := props["asyncInvokeConfig"].(map[string]any)
	dc, _ := ac["destinationConfig"].(map[string]any)
	for _, which := range []string{"onSuccess", "onFailure"} {
		d, _ := dc[which].(map[string]any)
		dest, _ := d["destination"].(string)
		if dest == "" || !strings.HasPrefix(dest, "acs:mns:") {
			continue
		}
		p := "props.asyncInvokeConfig.destinationConfig." + which + ".destination"
		m := destArnRe.FindStringSubmatch(dest)
		switch {
		case m == nil:
			c.add(r, p, "%q: an MNS queue destination is acs:mns:<region>:<account>:/queues/<name>/messages", dest)
		case m[1] != region:
			c.add(r, p, "queue region %s differs from the function's region %s", m[1], region)
		case !queueRe.MatchString(m[3]):
			c.add(r, p, "%q is not an MNS queue name", m[3])
		}
	}
}

// eventBridge checks one eventbridge trigger's config.
func (c *checker) eventBridge(r, p, region string, cfg map[string]any, env map[string]string) {
	if cfg == nil {
		c.add(r, p, "missing")
		return
	}
	if pat, ok := cfg["eventRuleFilterPattern"].(string); ok {
		var v any
		if err := json.Unmarshal([]byte(pat), &v); err != nil {
			c.add(r, join(p, "eventRuleFilterPattern"), "not valid JSON: %v", err)
		} else if _, ok := v.(map[string]any); !ok {
			c.add(r, join(p, "eventRuleFilterPattern"), "must be a JSON object")
		}
	}

	src, _ := cfg["eventSourceConfig"].(map[string]any)
	srcType, _ := src["eventSourceType"].(string)
	params, _ := src["eventSourceParameters"].(map[string]any)
	c.unknownKeys(r, join(p, "eventSourceConfig.eventSourceParameters"), params, sourceParamKeys)
	sink, _ := cfg["eventSinkConfig"].(map[string]any)
	delivery, _ := sink["deliveryOption"].(map[string]any)
	c.unknownKeys(r, join(p, "eventSinkConfig.deliveryOption"), delivery, deliveryKeys)

	ro, _ := cfg["runOptions"].(map[string]any)
	c.unknownKeys(r, join(p, "runOptions"), ro, runOptionsKeys)
	mode, _ := ro["mode"].(string)
	switch mode {
	case "event-driven", "event-streaming":
	default:
		c.add(r, join(p, "runOptions.mode"), "want event-driven or event-streaming, got %q", mode)
	}

	switch srcType {
	case "Default":
		if mode == "event-streaming" {
			c.add(r, join(p, "runOptions.mode"), "the Default bus is event-driven")
		}
	case "MNS":
		c.mnsSource(r, p, region, params, env)
		if mode != "event-streaming" {
			c.add(r, join(p, "runOptions.mode"), "the MNS queue trigger of FC 3.0 is an event stream: want event-streaming")
		}
	case "":
		c.add(r, join(p, "eventSourceConfig.eventSourceType"), "missing")
	}
	if mode == "event-streaming" {
		c.stream(r, join(p, "runOptions"), region, ro)
		if async, _ := cfg["asyncInvocationType"].(bool); async {
			c.add(r, join(p, "asyncInvocationType"), "an event stream must invoke synchronously, or failures bypass its retry and dead-letter queue")
		}
	}
}

func (c *checker) mnsSource(r, p, region string, params map[string]any, env map[string]string) {
	mp := join(p, "eventSourceConfig.eventSourceParameters.sourceMNSParameters")
	mns, ok := params["sourceMNSParameters"].(map[string]any)
	if !ok {
		c.add(r, mp, "missing (the MNS parameters are nested here, not directly under eventSourceParameters)")
		return
	}
	c.unknownKeys(r, mp, mns, mnsSourceKeys)
	q, _ := mns["QueueName"].(string)
	// The install function consumes the install queue, the poller the job
	// queue: each must be the queue the code sends that work to.
	name := "QUEUE_NAME"
	if r == "install" {
		name = "INSTALL_QUEUE_NAME"
	}
	switch {
	case !queueRe.MatchString(q):
		c.add(r, join(mp, "QueueName"), "%q is not an MNS queue name", q)
	case env[name] != "" && q != env[name]:
		c.add(r, join(mp, "QueueName"), "%q differs from %s %q, the queue the functions send %s's work to", q, name, env[name], r)
	}
	if rid, ok := mns["RegionId"].(string); ok && rid != region {
		c.add(r, join(mp, "RegionId"), "%q differs from the function's region %q (an MNS trigger must be in the queue's region)", rid, region)
	}
	if b, ok := mns["IsBase64Decode"].(bool); !ok || !b {
		c.add(r, join(mp, "IsBase64Decode"), "want true: the sender base64-encodes every message body")
	}
}

func (c *checker) stream(r, p, region string, ro map[string]any) {
	if bw, ok := ro["batchWindow"].(map[string]any); ok {
		c.unknownKeys(r, join(p, "batchWindow"), bw, batchWindowKeys)
		if n, ok := number(bw["CountBasedWindow"]); !ok || n < 1 || n > 10000 || n != float64(int(n)) {
			c.add(r, join(p, "batchWindow.CountBasedWindow"), "want an integer 1..10000, got %v", bw["CountBasedWindow"])
		}
		if n, ok := number(bw["TimeBasedWindow"]); !ok || n < 0 || n > 15 || n != float64(int(n)) {
			c.add(r, join(p, "batchWindow.TimeBasedWindow"), "want an integer 0..15 (seconds), got %v", bw["TimeBasedWindow"])
		}
	}
	if rs, ok := ro["retryStrategy"].(map[string]any); ok {
		c.unknownKeys(r, join(p, "retryStrategy"), rs, retryKeys)
		switch s, _ := rs["PushRetryStrategy"].(string); s {
		case "BACKOFF_RETRY", "EXPONENTIAL_DECAY_RETRY":
		default:
			c.add(r, join(p, "retryStrategy.PushRetryStrategy"), "want BACKOFF_RETRY or EXPONENTIAL_DECAY_RETRY, got %q", s)
		}
	}
	switch et, _ := ro["errorsTolerance"].(string); et {
	case "ALL":
	case "NONE":
		c.add(r, join(p, "errorsTolerance"), "NONE blocks the whole stream on one failing message after its retries; want ALL with a dead-letter queue")
	default:
		c.add(r, join(p, "errorsTolerance"), "want ALL, got %q (the API default NONE blocks the stream on a failing message)", et)
	}
	dlq, ok := ro["deadLetterQueue"].(map[string]any)
	if !ok {
		c.add(r, join(p, "deadLetterQueue"), "missing: without it, messages that fail all retries are discarded")
		return
	}
	c.unknownKeys(r, join(p, "deadLetterQueue"), dlq, dlqKeys)
	arn, _ := dlq["Arn"].(string)
	m := dlqArnRe.FindStringSubmatch(arn)
	switch {
	case m == nil:
		c.add(r, join(p, "deadLetterQueue.Arn"), "%q: want acs:mns:<region>:<account>:/queues/<name>", arn)
	case m[1] != region:
		c.add(r, join(p, "deadLetterQueue.Arn"), "queue region %s differs from the function's region %s", m[1], region)
	case !queueRe.MatchString(m[3]):
		c.add(r, join(p, "deadLetterQueue.Arn"), "%q is not an MNS queue name", m[3])
	}
}

// unknownKeys reports keys of obj missing from known, for the objects fc3's
// schema leaves open.
func (c *checker) unknownKeys(r, p string, obj map[string]any, known map[string]bool) {
	for _, k := range sortedKeys(obj) {
		if !known[k] {
			c.add(r, join(p, k), "unknown key (fc3 and FC would ignore it silently)%s", suggest(k, toAny(known)))
		}
	}
}

func toAny(m map[string]bool) map[string]any {
	out := make(map[string]any, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// walkStrings calls fn for every string in v with its path.
func walkStrings(v any, p string, fn func(path, s string)) {
	switch t := v.(type) {
	case string:
		fn(p, t)
	case map[string]any:
		for _, k := range sortedKeys(t) {
			walkStrings(t[k], join(p, k), fn)
		}
	case []any:
		for i, e := range t {
			walkStrings(e, fmt.Sprintf("%s[%d]", p, i), fn)
		}
	}
}
