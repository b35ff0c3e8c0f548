package ebsim_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ebsim"
)

func TestPatternMatch(t *testing.T) {
	t.Parallel()
	const runInstances = `{"source":"acs.ecs","type":"ecs:ActionTrail:ConsoleOperation","data":{"eventName":"RunInstances","ids":["i-1","i-2"],"n":3}}`
	const running = `{"source":"acs.ecs","type":"ecs:Instance:StateChange","data":{"state":"Running"}}`
	tests := []struct {
		name, pattern, event string
		want                 bool
	}{
		{"empty pattern matches all", `{}`, running, true},
		{"exact values are ORed", `{"type":["ecs:Instance:StateChange","ecs:CloudAssistant:FirstHeartbeat"]}`, running, true},
		{"keys are ANDed", `{"source":["acs.ecs"],"type":["ecs:CloudAssistant:FirstHeartbeat"]}`, running, false},
		{"nested key", `{"data":{"eventName":["RunInstances"]}}`, runInstances, true},
		{"nested key missing", `{"data":{"eventName":["RunInstances"]}}`, running, false},
		{"nested object absent", `{"data":{"x":{"y":["z"]}}}`, running, false},
		{"prefix", `{"type":[{"prefix":"ecs:ActionTrail:"}]}`, runInstances, true},
		{"prefix misses", `{"type":[{"prefix":"ecs:Instance:"}]}`, runInstances, false},
		{"suffix misses another launch path", `{"type":[{"suffix":":ActionTrail:ApiCall"}]}`, runInstances, false},
		{"suffix or exact", `{"type":[{"suffix":":ActionTrail:ApiCall"},"ecs:ActionTrail:ConsoleOperation"]}`, runInstances, true},
		{"array field matches any element", `{"data":{"ids":["i-2"]}}`, runInstances, true},
		{"number", `{"data":{"n":[3]}}`, runInstances, true},
		{"string is not a number", `{"data":{"n":["3"]}}`, runInstances, false},
		{"exists", `{"data":{"state":[{"exists":true}]}}`, running, true},
		{"not exists", `{"data":{"state":[{"exists":false}]}}`, runInstances, true},
		{"anything-but", `{"data":{"state":[{"anything-but":["Stopped","Stopping"]}]}}`, running, true},
		{"anything-but excludes", `{"data":{"state":[{"anything-but":"Running"}]}}`, running, false},
		{"not an object event", `{"source":["acs.ecs"]}`, `[1]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ebsim.CompilePattern(tt.pattern)
			require.NoError(t, err)
			assert.Equal(t, tt.want, p.Match([]byte(tt.event)))
		})
	}
}

func TestCompilePatternRejects(t *testing.T) {
	t.Parallel()
	for _, src := range []string{`[]`, `{"type":"x"}`, `{"type":[{"numeric":[">",1]}]}`, `{"type":[{"prefix":1}]}`, `{"type":[{"prefix":"a","suffix":"b"}]}`} {
		_, err := ebsim.CompilePattern(src)
		assert.True(t, fault.Is(err, fault.Invalid), "%s: %v", src, err)
	}
}

func TestBusAppliesRules(t *testing.T) {
	t.Parallel()
	target := &fakeTarget{}
	state, err := ebsim.CompilePattern(`{"type":["ecs:Instance:StateChange"]}`)
	require.NoError(t, err)
	ecs, err := ebsim.CompilePattern(`{"source":["acs.ecs"]}`)
	require.NoError(t, err)
	var missed [][]byte
	bus := &ebsim.Bus{Target: target, Rules: []*ebsim.Pattern{state, ecs}, OnUnmatched: func(e []byte) { missed = append(missed, e) }}
	require.NoError(t, bus.Publish(waitCtx(t), []byte(`{"source":"acs.ecs","type":"ecs:Instance:StateChange"}`)))
	require.NoError(t, bus.Publish(waitCtx(t), []byte(`{"source":"acs.ecs","type":"other"}`)))
	require.NoError(t, bus.Publish(waitCtx(t), []byte(`{"source":"acs.oss","type":"other"}`)))
	require.NoError(t, bus.Wait(waitCtx(t)))
	assert.Len(t, target.invocations(), 3, "once per matching rule")
	assert.Equal(t, 1, bus.Unmatched())
	assert.Equal(t, [][]byte{[]byte(`{"source":"acs.oss","type":"other"}`)}, missed)
}
