package job

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
)

// MaxEncodedBytes is the MNS message size limit; Encode never returns more.
const MaxEncodedBytes = 65536

// maxDecodeBytes bounds what Decode accepts before parsing.
const maxDecodeBytes = MaxEncodedBytes

var (
	// instanceIDTail is what follows "i-" in an instance id.
	instanceIDTail = ident.Rule{Min: 1, Max: 62, First: "A-Za-z0-9", Rest: "A-Za-z0-9"}
	jobIDRule      = ident.Rule{Min: 1, Max: 64, First: "A-Za-z0-9_.:-", Rest: "A-Za-z0-9_.:-"}
)

// ValidInstanceID reports whether id looks like an ECS instance id: "i-"
// followed by 1..62 ASCII letters or digits.
func ValidInstanceID(id string) bool {
	tail, ok := strings.CutPrefix(id, "i-")
	return ok && instanceIDTail.Valid(tail)
}

// ValidRegion reports whether r looks like a region id (cn-hangzhou).
func ValidRegion(r string) bool { return ident.Region.Valid(r) }

// MaxOriginLen bounds the origin event id kept in messages and logs.
const MaxOriginLen = 128

// TrimOrigin shortens an untrusted event id to MaxOriginLen bytes.
func TrimOrigin(id string) string {
	if len(id) > MaxOriginLen {
		return id[:MaxOriginLen]
	}
	return id
}

// Validate checks m against the schema and returns an Invalid error naming the
// first problem.
func (m Message) Validate() error {
	const op = "job.Validate"
	switch {
	case m.Version != Version:
		return fault.Invalidf(op, "unsupported schema version %d (want %d)", m.Version, Version)
	case m.Kind != KindPoll && m.Kind != KindInstallRetry && m.Kind != KindBind:
		return fault.Invalidf(op, "unknown kind %q", m.Kind)
	case !ValidRegion(m.Region):
		return fault.Invalidf(op, "invalid region %q", m.Region)
	case m.Kind == KindPoll && !ident.CloudID.Valid(m.TaskID):
		return fault.Invalidf(op, "poll message with invalid taskId %q", m.TaskID)
	case len(m.Instances) == 0:
		return fault.Invalidf(op, "no instances")
	case len(m.Instances) > MaxInstances:
		return fault.Invalidf(op, "%d instances, more than %d", len(m.Instances), MaxInstances)
	case m.Deadline.IsZero():
		return fault.Invalidf(op, "no deadline")
	case m.PollCount < 0 || m.Retries < 0:
		return fault.Invalidf(op, "negative counter")
	case len(m.OriginEventID) > MaxOriginLen:
		return fault.Invalidf(op, "originEventId longer than %d bytes", MaxOriginLen)
	}
	seen := make(map[string]bool, len(m.Instances))
	for i, in := range m.Instances {
		switch {
		case !ValidInstanceID(in.ID):
			return fault.Invalidf(op, "instance %d: invalid id %q", i, truncate(in.ID))
		case !jobIDRule.Valid(in.JobID):
			return fault.Invalidf(op, "instance %s: invalid jobId %q", in.ID, truncate(in.JobID))
		case seen[in.ID+"\x00"+in.JobID]:
			return fault.Invalidf(op, "instance %s listed twice", in.ID)
		case in.Attempts < 0 || in.NotReady < 0:
			return fault.Invalidf(op, "instance %s: negative counter", in.ID)
		case len(in.OriginEventID) > MaxOriginLen:
			return fault.Invalidf(op, "instance %s: originEventId longer than %d bytes", in.ID, MaxOriginLen)
		case len(in.LastCode) > 128:
			return fault.Invalidf(op, "instance %s: lastCode too long", in.ID)
		case m.Kind == KindBind && in.Installed != "INSTALLED" && in.Installed != "ALREADY_INSTALLED":
			return fault.Invalidf(op, "bind message: instance %s has installed %q (want INSTALLED or ALREADY_INSTALLED)", in.ID, truncate(in.Installed))
		case in.ClientID != "" && !ident.CloudID.Valid(in.ClientID), in.TaskID != "" && !ident.CloudID.Valid(in.TaskID):
			return fault.Invalidf(op, "instance %s: invalid clientId or taskId", in.ID)
		}
		seen[in.ID+"\x00"+in.JobID] = true
	}
	if len(m.LastError) > 128 {
		return fault.Invalidf(op, "lastError too long")
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Encode validates m and returns its JSON form. The queue adapter base64-encodes
// it on the wire; the encoded size is checked against MaxEncodedBytes here so
// that a message that validates can always be sent.
func Encode(m Message) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fault.Wrap("job.Encode", fault.Invalid, "", err)
	}
	if n := base64.StdEncoding.EncodedLen(len(b)); n > MaxEncodedBytes {
		return nil, fault.Invalidf("job.Encode", "encoded message is %d bytes, over the %d-byte MNS limit", n, MaxEncodedBytes)
	}
	return b, nil
}

// Decode parses a message body: plain JSON, or base64 of JSON (what the queue
// holds when the trigger does not decode it). Unknown fields are ignored so a
// newer producer's additions do not break an older consumer; a different
// schema version is rejected. Errors are Invalid.
func Decode(body []byte) (Message, error) {
	const op = "job.Decode"
	if len(body) > maxDecodeBytes {
		return Message{}, fault.Invalidf(op, "message body is %d bytes, over the %d-byte limit", len(body), maxDecodeBytes)
	}
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return Message{}, fault.Invalidf(op, "empty message body")
	}
	if b[0] != '{' {
		dec := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
		n, err := base64.StdEncoding.Decode(dec, b)
		if err != nil {
			return Message{}, fault.Invalidf(op, "message body is neither JSON nor base64 JSON: %v", err)
		}
		b = bytes.TrimSpace(dec[:n])
		if len(b) == 0 || b[0] != '{' {
			return Message{}, fault.Invalidf(op, "base64 message body does not hold a JSON object")
		}
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return Message{}, fault.Invalidf(op, "message body is not a job message: %v", err)
	}
	if err := m.Validate(); err != nil {
		return Message{}, err
	}
	return m, nil
}

// Describe returns a short human description of m for logs.
func (m Message) Describe() string {
	if m.Kind == KindPoll {
		return fmt.Sprintf("poll %s #%d (%d instances)", m.TaskID, m.PollCount+1, len(m.Instances))
	}
	return fmt.Sprintf("%s (%d instances)", m.Kind, len(m.Instances))
}
