package deploycheck

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixtureRules are the rules the testdata/s.yaml fixture satisfies.
func fixtureRules(t *testing.T) Rules {
	t.Helper()
	return Rules{
		Variables: []Variable{
			{Name: "FC_REGION", Required: true, Platform: true},
			{Name: "QUEUE_NAME", Required: true},
			{Name: "POLL_INTERVAL", Default: "30s"},
			{Name: "MNS_ENDPOINT", Default: "https://${FC_ACCOUNT_ID}.mns.${FC_REGION}.aliyuncs.com"},
		},
		BuildOutputs: map[string]string{
			"dist/install/main": "./functions/install",
			"dist/poller/main":  "./functions/poller",
		},
		Schema:         referenceSchema(t),
		ExtraTriggers:  []string{"install:second"},
		ExpectDefaults: true,
	}
}

// fixtureSpec is testdata/s.yaml rendered by s preview, with defaults.
func fixtureSpec(t *testing.T) Spec {
	t.Helper()
	return preview(t, "shared/tooling/deploycheck/testdata/s.yaml", nil)
}

// set replaces the value at a dotted path ("install.props.triggers[0].x")
// of the spec's resources; a nil value deletes the key.
func set(t *testing.T, spec Spec, path string, value any) {
	t.Helper()
	var cur any = spec.Doc["resources"]
	parts := strings.Split(path, ".")
	for i, part := range parts {
		key, index := part, -1
		if j := strings.IndexByte(part, '['); j >= 0 {
			n, err := strconv.Atoi(strings.TrimSuffix(part[j+1:], "]"))
			require.NoError(t, err)
			key, index = part[:j], n
		}
		m, ok := cur.(map[string]any)
		require.True(t, ok, "%s: not a mapping at %q", path, part)
		last := i == len(parts)-1
		if index < 0 && last {
			if value == nil {
				delete(m, key)
			} else {
				m[key] = value
			}
			return
		}
		cur = m[key]
		if index >= 0 {
			list, ok := cur.([]any)
			require.True(t, ok, "%s: not a list at %q", path, part)
			if last {
				list[index] = value
				return
			}
			cur = list[index]
		}
	}
}

func TestCheckFixtureIsClean(t *testing.T) {
	t.Parallel()
	assert.Empty(t, Check(fixtureSpec(t), fixtureRules(t)))
}

func TestCheckFindsProblems(t *testing.T) {
	t.Parallel()
	trigger := "poller.props.triggers[0].triggerConfig."
	cases := []struct {
		name   string
		mutate func(t *testing.T, s Spec, r *Rules)
		want   string // substring of one problem's String()
	}{
		{"misspelt prop", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "install.props.memorySzie", 256)
		}, `install: props.memorySzie: unknown key (fc3 would ignore it silently); did you mean "memorySize"?`},
		{"memory not a multiple of 64", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "install.props.memorySize", 100)
		}, "props.memorySize: multipleOf: got 100, want 64"},
		{"misspelt trigger key", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "install.props.triggers[0].qualifer", "LATEST")
		}, `install: props.triggers[0].qualifer: unknown key (fc3 would ignore it silently); did you mean "qualifier"?`},
		{"misspelt eventbridge config key", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "install.props.triggers[0].triggerConfig.triggerEnabel", true)
		}, `install: props.triggers[0].triggerConfig.triggerEnabel: unknown key (fc3 would ignore it silently); did you mean "triggerEnable"?`},
		{"wrong type in a trigger config", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "install.props.triggers[0].triggerConfig.triggerEnable", "yes")
		}, `install: props.triggers[0].triggerConfig.triggerEnable: got string, want boolean`},
		{"misspelt runOptions key", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, trigger+"runOptions.errorTolerance", "ALL")
		}, `runOptions.errorTolerance: unknown key (fc3 and FC would ignore it silently); did you mean "errorsTolerance"?`},
		{"misspelt batch window key", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, trigger+"runOptions.batchWindow.countBasedWindow", 1)
		}, `batchWindow.countBasedWindow: unknown key`},
		{"invalid filter pattern", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "install.props.triggers[0].triggerConfig.eventRuleFilterPattern", `{"source":["acs.ecs"]`)
		}, "eventRuleFilterPattern: not valid JSON"},
		{"filter pattern not an object", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "install.props.triggers[0].triggerConfig.eventRuleFilterPattern", `["acs.ecs"]`)
		}, "eventRuleFilterPattern: must be a JSON object"},
		{"missing IEventBridge field", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "install.props.triggers[0].triggerConfig.runOptions", nil)
		}, "install: props.triggers[0].triggerConfig.runOptions: required but missing"},
		{"missing eventSourceParameters", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "install.props.triggers[0].triggerConfig.eventSourceConfig.eventSourceParameters", nil)
		}, "triggerConfig.eventSourceConfig.eventSourceParameters: required but missing"},
		{"malformed dead-letter ARN", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, trigger+"runOptions.deadLetterQueue.Arn", "acs:mns:cn-hangzhou:123:queues/dead-letters")
		}, `want acs:mns:<region>:<account>:/queues/<name>`},
		{"dead-letter queue in another region", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, trigger+"runOptions.deadLetterQueue.Arn", "acs:mns:cn-beijing:123:/queues/dead-letters")
		}, "queue region cn-beijing differs from the function's region cn-hangzhou"},
		{"no dead-letter queue", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, trigger+"runOptions.deadLetterQueue", nil)
		}, "deadLetterQueue: missing"},
		{"malformed async destination", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "install.props.asyncInvokeConfig.destinationConfig.onFailure.destination", "acs:mns:cn-hangzhou:123:/queues/dead-letters")
		}, "an MNS queue destination is acs:mns:<region>:<account>:/queues/<name>/messages"},
		{"errorsTolerance NONE", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, trigger+"runOptions.errorsTolerance", "NONE")
		}, "NONE blocks the whole stream"},
		{"batch too large", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, trigger+"runOptions.batchWindow.CountBasedWindow", 20000)
		}, "CountBasedWindow: want an integer 1..10000"},
		{"MNS parameters not nested", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, trigger+"eventSourceConfig.eventSourceParameters", map[string]any{"QueueName": "jobs"})
		}, "sourceMNSParameters: missing"},
		{"trigger queue is not QUEUE_NAME", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, trigger+"eventSourceConfig.eventSourceParameters.sourceMNSParameters.QueueName", "other")
		}, `QueueName: "other" differs from QUEUE_NAME "jobs"`},
		{"base64 decoding off", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, trigger+"eventSourceConfig.eventSourceParameters.sourceMNSParameters.IsBase64Decode", false)
		}, "IsBase64Decode: want true"},
		{"stream invoked asynchronously", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, trigger+"asyncInvocationType", true)
		}, "an event stream must invoke synchronously"},
		{"stream in event-driven mode", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, trigger+"runOptions.mode", "event-driven")
		}, "want event-streaming"},
		{"timeout over the EventBridge cap", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "poller.props.timeout", 600)
		}, "EventBridge triggers cap an invocation at 300 s"},
		{"unknown environment variable", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "poller.props.environmentVariables", map[string]any{"QUEUE_NAME": "jobs", "POLL_INTERVALL": "30s"})
		}, "the code does not read POLL_INTERVALL"},
		{"required variable missing", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "poller.props.environmentVariables", map[string]any{"POLL_INTERVAL": "30s"})
		}, "QUEUE_NAME is required but not set"},
		{"platform variable set", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "poller.props.environmentVariables", map[string]any{"QUEUE_NAME": "jobs", "FC_REGION": "cn-hangzhou"})
		}, "FC_REGION is set by Function Compute"},
		{"non-string variable", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "poller.props.environmentVariables", map[string]any{"QUEUE_NAME": "jobs", "POLL_INTERVAL": 30})
		}, "props.environmentVariables.POLL_INTERVAL: got number, want string"},
		{"default drifted", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "poller.props.environmentVariables", map[string]any{"QUEUE_NAME": "jobs", "POLL_INTERVAL": "45s"})
		}, `"45s" differs from the code's default "30s"`},
		{"code not built", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "poller.props.code", "./build/poller")
		}, "deploys build/poller/main, which the Makefile does not build"},
		{"handler not the binary", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "poller.props.handler", "bootstrap")
		}, "deploys dist/poller/bootstrap"},
		{"built but not deployed", func(t *testing.T, s Spec, r *Rules) {
			r.BuildOutputs["dist/sweeper/main"] = "./functions/sweeper"
		}, "the Makefile builds dist/sweeper/main (./functions/sweeper) but no function deploys it"},
		{"wrong runtime", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "poller.props.runtime", "custom.debian10")
		}, `want go1`},
		{"no role", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "poller.props.role", nil)
		}, "props.role: missing"},
		{"second eventbridge trigger not redeployed", func(t *testing.T, s Spec, r *Rules) {
			r.ExtraTriggers = nil
		}, `eventbridge trigger "second" follows another one`},
		{"extra trigger that does not exist", func(t *testing.T, s Spec, r *Rules) {
			r.ExtraTriggers = append(r.ExtraTriggers, "poller:nope")
		}, "s.yaml has no eventbridge trigger poller:nope"},
		{"unrendered expression", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "poller.props.description", "${resources.install.output.arn}")
		}, "unrendered expression ${resources.install.output.arn}"},
		{"duplicate trigger name", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "install.props.triggers[1].triggerName", "first")
		}, `duplicate trigger name "first"`},
		{"bad region", func(t *testing.T, s Spec, r *Rules) {
			set(t, s, "poller.props.region", "hangzhou")
		}, "props.region: value must be one of 'ap-northeast-1'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec := fixtureSpec(t)
			rules := fixtureRules(t)
			tc.mutate(t, spec, &rules)
			problems := Check(spec, rules)
			var lines []string
			for _, p := range problems {
				lines = append(lines, p.String())
			}
			assert.Contains(t, strings.Join(lines, "\n"), tc.want)
		})
	}
}

func TestCheckWithoutEditionOrResources(t *testing.T) {
	t.Parallel()
	spec, err := NewSpec(map[string]any{"edition": "1.0.0", "name": "x"})
	require.NoError(t, err)
	problems := Check(spec, Rules{})
	require.Len(t, problems, 2)
	assert.Equal(t, `edition: want 3.0.0 (Serverless Devs 3), got "1.0.0"`, problems[0].String())
	assert.Equal(t, "resources: no resources", problems[1].String())
}

func TestParseBuildCommands(t *testing.T) {
	t.Parallel()
	out := strings.Join([]string{
		"GOOS=linux GOARCH=amd64 CGO_ENABLED=0 go build -trimpath -ldflags='-s -w -buildid=' -o dist/install/main ./functions/install",
		"GOOS=linux GOARCH=amd64 CGO_ENABLED=0 go build -trimpath -ldflags='-s -w -buildid=' -o ./dist//poller/main ./functions/poller",
		"echo go build is not here",
		"",
	}, "\n")
	assert.Equal(t, map[string]string{
		"dist/install/main": "./functions/install",
		"dist/poller/main":  "./functions/poller",
	}, ParseBuildCommands(out))
}
