package job

import (
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

func sweepSample() Message {
	return Message{
		Version: SweepVersion, Kind: KindSweep, Region: "cn-hangzhou", Deadline: t0.Add(24 * time.Hour), SentAt: t0,
		Sweep: &Sweep{ID: "2026-11-27T03:00:00Z", At: t0, Token: "tok-1", Part: 1, Report: json.RawMessage(`{"listed":100}`)},
	}
}

func TestVersionRule(t *testing.T) {
	poll, err := Encode(sample(1))
	require.NoError(t, err)
	sweep, err := Encode(sweepSample())
	require.NoError(t, err)
	old := sample(1)
	old.Version = 1
	old.Instances[0].Generation = 0
	v1poll, err := Encode(old)
	require.NoError(t, err)
	future := []byte(`{"version":4,"kind":"teleport","region":"cn-hangzhou","whatever":[1,2]}`)

	tests := []struct {
		name    string
		body    []byte
		reader  int
		tooNew  bool
		wantErr bool
	}{
		{"v1 reader leaves a poll that carries a ledger generation", poll, 1, true, true},
		{"v2 reader leaves a poll that carries a ledger generation", poll, 2, true, true},
		{"v3 reader acts on a poll", poll, 3, false, false},
		{"v3 reader acts on a v1 poll of the previous releases", v1poll, 3, false, false},
		{"v1 reader leaves a sweep", sweep, 1, true, true},
		{"v2 reader acts on a sweep", sweep, 2, false, false},
		{"v3 reader leaves a v4 message whatever its fields", future, 3, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeFor(tc.body, tc.reader)
			if !tc.wantErr {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.True(t, fault.Is(err, fault.Invalid))
			_, tooNew := AsTooNew(err)
			assert.Equal(t, tc.tooNew, tooNew, "%v", err)
		})
	}
}

func TestDeferCountsHopsAndKeepsTheRest(t *testing.T) {
	body := []byte(`{"version":4,"kind":"teleport","extra":{"a":1}}`)
	for hop := 1; hop <= MaxHops; hop++ {
		in := body
		if hop%2 == 0 {
			in = []byte(base64.StdEncoding.EncodeToString(body))
		}
		out, hops, err := Defer(in)
		require.NoError(t, err, "hop %d", hop)
		assert.Equal(t, hop, hops)
		var fields map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(out, &fields))
		assert.JSONEq(t, `{"a":1}`, string(fields["extra"]))
		assert.JSONEq(t, `"teleport"`, string(fields["kind"]))
		body = out
	}
	_, hops, err := Defer(body)
	assert.True(t, fault.Is(err, fault.Invalid), "past MaxHops: %v", err)
	assert.Equal(t, MaxHops+1, hops)

	for name, bad := range map[string]string{"not json": "xx", "array": "[1]", "negative hops": `{"hops":-4}`, "text hops": `{"hops":"1"}`} {
		t.Run(name, func(t *testing.T) {
			_, _, err := Defer([]byte(bad))
			assert.True(t, fault.Is(err, fault.Invalid), "%v", err)
		})
	}
}

func TestSweepMessage(t *testing.T) {
	b, err := Encode(sweepSample())
	require.NoError(t, err)
	got, err := Decode(b)
	require.NoError(t, err)
	require.NotNil(t, got.Sweep)
	assert.Equal(t, "tok-1", got.Sweep.Token)
	assert.JSONEq(t, `{"listed":100}`, string(got.Sweep.Report))
	assert.Equal(t, "sweep 2026-11-27T03:00:00Z part 2", got.Describe())

	bad := map[string]func(*Message){
		"version 1":      func(m *Message) { m.Version = 1 },
		"no state":       func(m *Message) { m.Sweep = nil },
		"instances":      func(m *Message) { m.Instances = sample(1).Instances },
		"bad id":         func(m *Message) { m.Sweep.ID = "../x" },
		"no token":       func(m *Message) { m.Sweep.Token = "" },
		"part 0":         func(m *Message) { m.Sweep.Part = 0 },
		"too many parts": func(m *Message) { m.Sweep.Part = MaxSweepParts },
		"no time":        func(m *Message) { m.Sweep.At = time.Time{} },
		"bad report":     func(m *Message) { m.Sweep.Report = json.RawMessage(`{`) },
	}
	for name, f := range bad {
		t.Run(name, func(t *testing.T) {
			m := sweepSample()
			f(&m)
			_, err := Encode(m)
			assert.True(t, fault.Is(err, fault.Invalid), "%v", err)
		})
	}
}
