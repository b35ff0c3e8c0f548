package queueevent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
)

func TestParseSamples(t *testing.T) {
	for _, name := range []string{"poller-stream.json", "poller-stream-strings-base64.json"} {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("..", "..", "events", name))
			require.NoError(t, err)
			b, err := Parse(raw)
			require.NoError(t, err)
			require.Len(t, b.Messages, 1)
			assert.Empty(t, b.Rejected)
			assert.NotEmpty(t, b.Messages[0].MessageID)
			m, err := job.Decode(b.Messages[0].Body)
			require.NoError(t, err, "the body decodes into a job message, base64 or not")
			assert.Equal(t, job.KindPoll, m.Kind)
			assert.Equal(t, "t-demo0000000000001", m.TaskID)
		})
	}
}

func TestParseShapes(t *testing.T) {
	obj := `{"id":"e1","data":{"messageId":"m1","messageBody":"hello"}}`
	tests := []struct {
		name     string
		payload  string
		bodies   []string
		rejected int
		wantErr  bool
	}{
		{name: "single object", payload: obj, bodies: []string{"hello"}},
		{name: "array", payload: "[" + obj + "," + obj + "]", bodies: []string{"hello", "hello"}},
		{name: "array of strings", payload: `["{\"id\":\"e2\",\"data\":{\"messageBody\":\"x\"}}"]`, bodies: []string{"x"}},
		{name: "object body", payload: `[{"id":"e3","data":{"messageBody":{"version":1}}}]`, bodies: []string{`{"version":1}`}},
		{name: "bad items do not spoil good ones", payload: `[` + obj + `,5,{"id":"x"},"nope"]`, bodies: []string{"hello"}, rejected: 3},
		{name: "not json", payload: `<xml/>`, wantErr: true},
		{name: "broken array", payload: `[{"id":`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Parse([]byte(tt.payload))
			if tt.wantErr {
				require.Error(t, err)
				assert.True(t, fault.Is(err, fault.Invalid))
				return
			}
			require.NoError(t, err)
			var got []string
			for _, m := range b.Messages {
				got = append(got, string(m.Body))
			}
			assert.Equal(t, tt.bodies, got)
			assert.Len(t, b.Rejected, tt.rejected)
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"poller-stream.json", "poller-stream-strings-base64.json"} {
		raw, err := os.ReadFile(filepath.Join("..", "..", "events", name))
		require.NoError(f, err)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		b, err := Parse(payload)
		if err != nil {
			assert.True(t, fault.Is(err, fault.Invalid))
			return
		}
		for _, m := range b.Messages {
			_, _ = job.Decode(m.Body) // must not panic
		}
	})
}

func TestRejectedKeepsTheEventForTheDeadLetterQueue(t *testing.T) {
	long := `{"id":"x","pad":"` + strings.Repeat("a", MaxRawBytes) + `"}`
	b, err := Parse([]byte(`[{"id":"no-data"},` + long + `]`))
	require.NoError(t, err)
	require.Len(t, b.Rejected, 2)
	assert.JSONEq(t, `{"id":"no-data"}`, string(b.Rejected[0].Raw))
	assert.Len(t, b.Rejected[1].Raw, MaxRawBytes, "cut to fit a dead letter")
}
