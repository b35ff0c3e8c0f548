package deploycheck

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func timerRules(t *testing.T) Rules {
	t.Helper()
	return Rules{
		Variables:    []Variable{{Name: "QUEUE_NAME", Required: true}},
		BuildOutputs: map[string]string{"dist/reconcile/main": "./functions/reconcile"},
		Schema:       referenceSchema(t),
	}
}

func TestCheckTimerTriggers(t *testing.T) {
	t.Parallel()
	cfg := "reconcile.props.triggers[0].triggerConfig."
	tests := []struct {
		name   string
		mutate func(t *testing.T, s Spec)
		want   string // substring of the one problem expected; "" for none
	}{
		{"clean", func(*testing.T, Spec) {}, ""},
		{"UTC cron", func(t *testing.T, s Spec) { set(t, s, cfg+"cronExpression", "0 30 2 * * 1-5") }, ""},
		{"every 12 hours", func(t *testing.T, s Spec) { set(t, s, cfg+"cronExpression", "@every 12h") }, ""},
		{"no payload", func(t *testing.T, s Spec) { set(t, s, cfg+"payload", nil) }, ""},
		{"dry-run payload", func(t *testing.T, s Spec) { set(t, s, cfg+"payload", `{"dryRun":true}`) }, ""},
		{"five-field cron", func(t *testing.T, s Spec) { set(t, s, cfg+"cronExpression", "0 3 * * *") },
			"cronExpression: \"0 3 * * *\": want six fields"},
		{"interval too short", func(t *testing.T, s Spec) { set(t, s, cfg+"cronExpression", "@every 30s") },
			"the shortest interval is one minute"},
		{"interval not a duration", func(t *testing.T, s Spec) { set(t, s, cfg+"cronExpression", "@every day") },
			"@every takes a duration"},
		{"bad time zone", func(t *testing.T, s Spec) { set(t, s, cfg+"cronExpression", "CRON_TZ=Asia Shanghai 0 0 3 * * *") },
			"want six fields"},
		{"bad field", func(t *testing.T, s Spec) { set(t, s, cfg+"cronExpression", "0 0 3 * * #") },
			"field # holds a character"},
		{"payload not JSON", func(t *testing.T, s Spec) { set(t, s, cfg+"payload", "dryRun") },
			"payload: not valid JSON"},
		{"payload not an object", func(t *testing.T, s Spec) { set(t, s, cfg+"payload", `[true]`) },
			"payload: must be a JSON object"},
		{"enable as a string", func(t *testing.T, s Spec) { set(t, s, cfg+"enable", "true") },
			"enable: got string, want boolean"},
		{"enable missing", func(t *testing.T, s Spec) { set(t, s, cfg+"enable", nil) },
			"triggerConfig.enable: required but missing"},
		{"misspelt cron key", func(t *testing.T, s Spec) {
			set(t, s, cfg+"cronExpression", nil)
			set(t, s, cfg+"cronExpresion", "0 0 3 * * *")
		}, "cronExpression: missing or not a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := preview(t, "shared/tooling/deploycheck/testdata/timer.yaml", nil)
			tt.mutate(t, spec)
			problems := Check(spec, timerRules(t))
			if tt.want == "" {
				assert.Empty(t, problems)
				return
			}
			require.NotEmpty(t, problems)
			var texts []string
			for _, p := range problems {
				texts = append(texts, p.String())
			}
			assert.Contains(t, strings.Join(texts, "\n"), tt.want)
		})
	}
}

// TestRepositoryTimerOverrides renders the real s.yaml with the reconcile
// schedule overridden and checks the timer trigger it deploys.
func TestRepositoryTimerOverrides(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env          map[string]string
		wantCron     string
		wantEnabled  bool
		wantProblems bool
	}{
		{nil, "CRON_TZ=Asia/Shanghai 0 0 3 * * *", true, false},
		{map[string]string{"RECONCILE_SCHEDULE": "@every 6h", "RECONCILE_TIMER": "false"}, "@every 6h", false, false},
		{map[string]string{"RECONCILE_SCHEDULE": "0 3 * * *"}, "0 3 * * *", true, true},
	}
	for _, tt := range tests {
		spec := preview(t, "s.yaml", tt.env)
		var trigger map[string]any
		for _, fn := range spec.Functions {
			if fn.Resource == "reconcile" {
				list, _ := fn.Props["triggers"].([]any)
				require.Len(t, list, 1)
				trigger, _ = list[0].(map[string]any)
			}
		}
		require.NotNil(t, trigger, "s.yaml has a reconcile function with one trigger")
		assert.Equal(t, "timer", trigger["triggerType"])
		cfg, _ := trigger["triggerConfig"].(map[string]any)
		assert.Equal(t, tt.wantCron, cfg["cronExpression"])
		assert.Equal(t, tt.wantEnabled, cfg["enable"])
		assert.Equal(t, "{}", cfg["payload"])
		var timerProblems []string
		for _, p := range Check(spec, Rules{Schema: referenceSchema(t)}) {
			if strings.Contains(p.Path, "triggerConfig") && p.Resource == "reconcile" {
				timerProblems = append(timerProblems, p.String())
			}
		}
		assert.Equal(t, tt.wantProblems, len(timerProblems) > 0, "env %v: %v", tt.env, timerProblems)
	}
}
