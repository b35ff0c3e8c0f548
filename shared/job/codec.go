package job

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

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
	// supersedesRule is "<jobId>" or "<jobId>/<OUTCOME>".
	supersedesRule = ident.Rule{Min: 1, Max: 200, First: "A-Za-z0-9_.:-", Rest: "A-Za-z0-9_.:/-"}
)

// MaxReasonLen and MaxDetailLen bound the record text a bind message
// carries (Clip cuts to them), so that a full message still fits MNS's
// 64 KB.
const (
	MaxReasonLen = 256
	MaxDetailLen = 512
)

// Clip cuts s to at most n bytes, on a rune boundary, marking the cut.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// MaxGeneration bounds an instance's ledger generation (ledger.MaxGeneration).
const MaxGeneration = 999999

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
// first problem. A version above ReaderVersion is a *TooNewError (AsTooNew).
func (m Message) Validate() error { return m.validate(ReaderVersion) }

func (m Message) validate(reader int) error {
	const op = "job.Validate"
	if err := checkVersion(op, m, reader); err != nil {
		return err
	}
	switch {
	case m.Kind != KindPoll && m.Kind != KindInstallRetry && m.Kind != KindSweep && m.Kind != KindBind:
		return fault.Invalidf(op, "unknown kind %q", m.Kind)
	case !ValidRegion(m.Region):
		return fault.Invalidf(op, "invalid region %q", m.Region)
	case m.Kind == KindSweep:
		return validateSweep(op, m)
	case m.Kind == KindBind && m.Version < BindVersion:
		return fault.Invalidf(op, "a bind message needs version %d or more, has %d", BindVersion, m.Version)
	case m.Kind == KindInstallRetry && m.TaskID != "":
		return fault.Invalidf(op, "an install-retry message with a taskId")
	case m.Sweep != nil:
		return fault.Invalidf(op, "sweep state on a %s message", m.Kind)
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
		case in.Generation < 0 || in.Generation > MaxGeneration:
			return fault.Invalidf(op, "instance %s: generation %d out of range 0..%d", in.ID, in.Generation, MaxGeneration)
		case m.Kind != KindInstallRetry && in.Generation == 0 && m.Version >= Version:
			return fault.Invalidf(op, "instance %s: a %s message for an unclaimed instance (generation 0)", in.ID, m.Kind)
		case len(in.Supersedes) > 200 || (in.Supersedes != "" && !supersedesRule.Valid(in.Supersedes)):
			return fault.Invalidf(op, "instance %s: invalid supersedes %q", in.ID, truncate(in.Supersedes))
		case len(in.Trigger) > 64 || len(in.Reason) > MaxReasonLen || len(in.Detail) > MaxDetailLen:
			return fault.Invalidf(op, "instance %s: trigger, reason or detail too long", in.ID)
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
// holds when the trigger does not decode it), for a reader of ReaderVersion.
// Unknown fields are ignored so a newer producer's additions do not break an
// older consumer. Errors are Invalid; a message too new for the reader is a
// *TooNewError (AsTooNew), for the caller to put back (Defer).
func Decode(body []byte) (Message, error) { return DecodeFor(body, ReaderVersion) }

// DecodeFor is Decode for a reader of the given version (1..ReaderVersion):
// a poller built for an older schema behaves as that poller would.
func DecodeFor(body []byte, reader int) (Message, error) {
	const op = "job.Decode"
	b, err := plainJSON(op, body)
	if err != nil {
		return Message{}, err
	}
	// The version first, so that a newer message whose other fields this
	// reader would misread is put back rather than rejected.
	var head struct {
		Version int `json:"version"`
		Hops    int `json:"hops"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return Message{}, fault.Invalidf(op, "message body is not a job message: %v", err)
	}
	if err := checkVersion(op, Message{Version: head.Version, Hops: head.Hops}, reader); err != nil {
		return Message{}, err
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return Message{}, fault.Invalidf(op, "message body is not a job message: %v", err)
	}
	if (reader < SweepVersion && m.Kind == KindSweep) || (reader < BindVersion && m.Kind == KindBind) {
		return Message{}, fault.Invalidf(op, "unknown kind %q", m.Kind)
	}
	if err := m.validate(reader); err != nil {
		return Message{}, err
	}
	return m, nil
}

// Describe returns a short human description of m for logs.
func (m Message) Describe() string {
	if m.Kind == KindPoll {
		return fmt.Sprintf("poll %s #%d (%d instances)", m.TaskID, m.PollCount+1, len(m.Instances))
	}
	if m.Kind == KindSweep && m.Sweep != nil {
		return fmt.Sprintf("sweep %s part %d", m.Sweep.ID, m.Sweep.Part+1)
	}
	return fmt.Sprintf("%s (%d instances)", m.Kind, len(m.Instances))
}
