// Package queueevent decodes what the FC 3.0 MNS queue trigger (an EventBridge
// event stream) hands the poller: one CloudEvent object, a JSON array of them,
// or a JSON array of JSON strings each holding one. Each event's
// data.messageBody is the queue message body: already base64-decoded by the
// trigger (IsBase64Decode: true), or still base64, or plain text.
//
// Parse returns an Invalid error (package fault) only when the payload as a
// whole is unusable; one bad event is reported in [Batch.Rejected] and does
// not affect the others.
package queueevent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

// MaxPayloadBytes bounds the payload (the FC synchronous invocation limit is
// 32 MB; a batch of 64 KB messages stays far below this).
const MaxPayloadBytes = 32 << 20

// Message is one queue message from the stream.
type Message struct {
	// EventID is the CloudEvent id, MessageID the MNS message id.
	EventID, MessageID string
	// Body is data.messageBody as delivered.
	Body []byte
}

// Rejected is an event that could not be read.
type Rejected struct {
	Index int
	Err   error
	// Raw is the event as it came (at most MaxRawBytes), for the
	// dead-letter queue.
	Raw []byte
}

// MaxRawBytes bounds Rejected.Raw: a dead-letter message of it stays under
// the 64 KB MNS limit once base64-encoded.
const MaxRawBytes = 32 << 10

// Batch is the decoded payload.
type Batch struct {
	Messages []Message
	Rejected []Rejected
}

type event struct {
	ID   string `json:"id"`
	Data *struct {
		MessageID   string          `json:"messageId"`
		MessageBody json.RawMessage `json:"messageBody"`
	} `json:"data"`
}

// Parse decodes an event-stream payload.
func Parse(payload []byte) (Batch, error) {
	const op = "queueevent.Parse"
	if len(payload) > MaxPayloadBytes {
		return Batch{}, fault.Invalidf(op, "payload is %d bytes, over the %d-byte limit", len(payload), MaxPayloadBytes)
	}
	p := bytes.TrimSpace(payload)
	var items []json.RawMessage
	switch {
	case len(p) == 0:
		return Batch{}, fault.Invalidf(op, "empty payload")
	case p[0] == '{':
		items = []json.RawMessage{p}
	case p[0] == '[':
		if err := json.Unmarshal(p, &items); err != nil {
			return Batch{}, fault.Invalidf(op, "payload is not a valid JSON array: %v", err)
		}
	default:
		return Batch{}, fault.Invalidf(op, "payload is neither a JSON object nor an array (starts with %q)", p[:1])
	}
	var b Batch
	for i, raw := range items {
		m, err := decode(raw)
		if err != nil {
			b.Rejected = append(b.Rejected, Rejected{Index: i, Err: fault.Wrap(op, fault.Invalid, "", fmt.Errorf("event %d: %w", i, err)),
				Raw: raw[:min(len(raw), MaxRawBytes)]})
			continue
		}
		b.Messages = append(b.Messages, m)
	}
	return b, nil
}

func decode(raw json.RawMessage) (Message, error) {
	r := bytes.TrimSpace(raw)
	if len(r) > 0 && r[0] == '"' {
		var s string
		if err := json.Unmarshal(r, &s); err != nil {
			return Message{}, fmt.Errorf("not a JSON string: %v", err)
		}
		r = bytes.TrimSpace([]byte(s))
	}
	if len(r) == 0 || r[0] != '{' {
		return Message{}, fmt.Errorf("not a JSON object")
	}
	var ev event
	if err := json.Unmarshal(r, &ev); err != nil {
		return Message{}, fmt.Errorf("not a CloudEvent: %v", err)
	}
	if ev.Data == nil || len(ev.Data.MessageBody) == 0 {
		return Message{}, fmt.Errorf("no data.messageBody")
	}
	body := ev.Data.MessageBody
	if body[0] == '"' {
		var s string
		if err := json.Unmarshal(body, &s); err != nil {
			return Message{}, fmt.Errorf("data.messageBody: %v", err)
		}
		body = []byte(s)
	}
	// A JSON object body (not a string) is taken as is.
	return Message{EventID: ev.ID, MessageID: ev.Data.MessageID, Body: body}, nil
}

// FromQueue reports whether a payload is an MNS event stream's (a queue
// trigger's) rather than an event from the EventBridge default bus: its
// first event's type starts with "mns:Queue:", or its data holds a
// messageBody. The install function takes both: ECS events and its install
// queue. A payload that cannot be read is not a queue's (the event parser
// then names what is wrong with it).
func FromQueue(payload []byte) bool {
	p := bytes.TrimSpace(payload)
	if len(p) > 0 && p[0] == '[' {
		var items []json.RawMessage
		if json.Unmarshal(p, &items) != nil || len(items) == 0 {
			return false
		}
		p = bytes.TrimSpace(items[0])
		if len(p) > 0 && p[0] == '"' {
			var s string
			if json.Unmarshal(p, &s) != nil {
				return false
			}
			p = bytes.TrimSpace([]byte(s))
		}
	}
	var ev struct {
		Type string `json:"type"`
		Data *struct {
			MessageBody json.RawMessage `json:"messageBody"`
		} `json:"data"`
	}
	if len(p) == 0 || p[0] != '{' || json.Unmarshal(p, &ev) != nil {
		return false
	}
	return strings.HasPrefix(ev.Type, "mns:Queue:") || (ev.Data != nil && len(ev.Data.MessageBody) > 0)
}
