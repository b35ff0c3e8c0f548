package ebsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
)

// refJSON is how a payload was encoded before it was built in one buffer:
// each event with an Encoder without HTML escaping, then the array of them
// as []json.RawMessage the same way.
func refJSON(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(v))
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func TestPayloadIsTheArrayOfItsEvents(t *testing.T) {
	t.Parallel()
	published := time.Date(2026, 11, 27, 13, 4, 42, 179e6, time.UTC)
	bodies := []string{
		`{"taskId":"t-1","attempt":1}`,
		`<html> & "quotes" \ back\slash`,
		"unicode é ✓ \u2028 and a tab\t",
		"not base64 at all!",
	}
	tests := []struct {
		name   string
		decode bool
		count  int
	}{
		{name: "one message, decoded", decode: true, count: 1},
		{name: "a batch, decoded", decode: true, count: len(bodies)},
		{name: "a batch, raw", decode: false, count: len(bodies)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Stream{QueueName: "jobs", Base64Decode: tt.decode}
			r := &streamRun{s: s, name: "MNS-jobs-stream", region: "cn-hangzhou", account: "123", subject: "acs:mns:cn-hangzhou:123:queues/jobs"}
			var batch []item
			for i, b := range bodies[:tt.count] {
				body := b
				if i%2 == 0 {
					body = base64.StdEncoding.EncodeToString([]byte(b))
				}
				batch = append(batch, item{
					msg:     mnssim.Message{ID: "M" + string(rune('A'+i)), Body: body, EnqueueTime: published.Add(-time.Second)},
					eventID: "e-" + string(rune('a'+i)), requestID: "R",
				})
			}

			payload, events := r.payload(batch, published)

			want := make([]json.RawMessage, len(batch))
			for i, it := range batch {
				want[i] = refJSON(t, r.event(it, published))
				assert.Equal(t, string(want[i]), string(events[i]), "event %d", i)
			}
			assert.Equal(t, string(refJSON(t, want)), string(payload))
			events[0] = append(events[0], "garbage"...)
			assert.True(t, json.Valid(payload), "an event's slice cannot grow into the payload")
		})
	}
}
