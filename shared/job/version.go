package job

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
)

// Forward compatibility. A message's "version" is the lowest reader version
// that can act on it: a writer stamps the smallest version whose readers
// understand every field and kind it uses (poll and install-retry messages
// are still version 1, so pollers of schema 1 keep working; a sweep message
// is SweepVersion, a bind message BindVersion). A reader of version R acts on a message iff
// 1 ≤ version ≤ R, and ignores fields it does not know. A reader that meets
// a newer message does not drop it: it puts it back on the queue after
// DeferDelay with "hops" one higher (Defer), for a newer poller of a rolling
// deploy to pick up, and dead-letters it once hops reaches MaxHops.
const (
	// ReaderVersion is the highest message version this code reads.
	ReaderVersion = 3
	// SweepVersion is the version of KindSweep messages (schema 2 added
	// the kind).
	SweepVersion = 2
	// BindVersion is the version of KindBind messages (schema 2 added the
	// kind and the instances' installed, clientId and taskId fields).
	BindVersion = 2
	// MaxHops bounds how often a message too new for the pollers that see
	// it is put back: DeferDelay × MaxHops (30 min) covers a rolling deploy.
	MaxHops = 30
	// DeferDelay is the delay of a message put back for a newer poller.
	DeferDelay = time.Minute
)

// KindSweep continues a reconcile sweep from Sweep.Token (schema 2).
const KindSweep Kind = "sweep"

// Limits of a sweep message.
const (
	// MaxSweepParts bounds the invocations of one sweep (each lists at
	// least one page of 100 instances): a hostile or looping continuation
	// ends in the dead-letter queue.
	MaxSweepParts = 2000
	// MaxTokenLen bounds the listing token a sweep message carries.
	MaxTokenLen = 1024
	// maxReportBytes bounds the running totals a sweep message carries.
	maxReportBytes = 16 << 10
)

// sweepIDRule is reconcile.ValidSweepID's rule.
var sweepIDRule = ident.Rule{Min: 1, Max: 64, First: "A-Za-z0-9", Rest: "A-Za-z0-9_.:+-"}

// Sweep is the state a KindSweep message carries from one invocation of a
// sweep to the next.
type Sweep struct {
	// ID names the sweep (job ids derive from it); At is when it was
	// triggered; DryRun only reports.
	ID     string    `json:"id"`
	At     time.Time `json:"at"`
	DryRun bool      `json:"dryRun,omitempty"`
	// Token is the listing's NextToken: where the next part starts.
	Token string `json:"token"`
	// Part counts the invocations so far (the first is 1).
	Part int `json:"part"`
	// Report holds the running totals (package reconcile's Report, as
	// JSON): the last part logs the whole region's.
	Report json.RawMessage `json:"report,omitempty"`
}

// TooNewError says that a message needs a newer reader than this one.
type TooNewError struct {
	// Version is the message's version, Reader the reader's.
	Version, Reader int
	// Hops is how often the message was already put back.
	Hops int
}

// Error implements error.
func (e *TooNewError) Error() string {
	return fmt.Sprintf("message version %d needs a newer poller (this one reads up to %d; put back %d times)", e.Version, e.Reader, e.Hops)
}

// AsTooNew reports whether err says the message is too new, and returns it.
func AsTooNew(err error) (*TooNewError, bool) {
	var t *TooNewError
	ok := errors.As(err, &t)
	return t, ok
}

// checkVersion applies the version rule for a reader of version reader.
func checkVersion(op string, m Message, reader int) error {
	switch {
	case m.Version < 1:
		return fault.Invalidf(op, "unsupported schema version %d", m.Version)
	case m.Hops < 0 || m.Hops > MaxHops:
		return fault.Invalidf(op, "hops %d out of range 0..%d", m.Hops, MaxHops)
	case m.Version > reader:
		return fault.Wrap(op, fault.Invalid, "UnsupportedVersion", &TooNewError{Version: m.Version, Reader: reader, Hops: m.Hops})
	}
	return nil
}

// validateSweep checks a KindSweep message.
func validateSweep(op string, m Message) error {
	s := m.Sweep
	switch {
	case m.Version < SweepVersion:
		return fault.Invalidf(op, "a sweep message needs version %d or more, has %d", SweepVersion, m.Version)
	case s == nil:
		return fault.Invalidf(op, "sweep message without sweep state")
	case len(m.Instances) != 0:
		return fault.Invalidf(op, "sweep message with instances")
	case !sweepIDRule.Valid(s.ID):
		return fault.Invalidf(op, "sweep id %q is not valid", truncate(s.ID))
	case s.At.IsZero():
		return fault.Invalidf(op, "sweep without a trigger time")
	case s.Token == "" || len(s.Token) > MaxTokenLen:
		return fault.Invalidf(op, "sweep token: want 1..%d bytes", MaxTokenLen)
	case s.Part < 1 || s.Part >= MaxSweepParts:
		return fault.Invalidf(op, "sweep part %d out of range 1..%d", s.Part, MaxSweepParts-1)
	case len(s.Report) > maxReportBytes:
		return fault.Invalidf(op, "sweep report over %d bytes", maxReportBytes)
	case len(s.Report) > 0 && !json.Valid(s.Report):
		return fault.Invalidf(op, "sweep report is not JSON")
	case m.Deadline.IsZero():
		return fault.Invalidf(op, "no deadline")
	}
	return nil
}

// Defer returns body (plain or base64 JSON, as Decode takes it) with its
// "hops" raised by one and every other field kept as it was, for a reader
// that cannot act on the message to put it back on the queue. It fails
// (Invalid) when the body is not a JSON object or hops would pass MaxHops:
// the message is then for the dead-letter queue.
func Defer(body []byte) ([]byte, int, error) {
	const op = "job.Defer"
	b, err := plainJSON(op, body)
	if err != nil {
		return nil, 0, err
	}
	fields := map[string]json.RawMessage{}
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, 0, fault.Invalidf(op, "message body is not a JSON object: %v", err)
	}
	hops := 0
	if raw, ok := fields["hops"]; ok {
		if err := json.Unmarshal(raw, &hops); err != nil || hops < 0 {
			return nil, 0, fault.Invalidf(op, "hops %s is not a count", truncate(string(raw)))
		}
	}
	hops++
	if hops > MaxHops {
		return nil, hops, fault.Invalidf(op, "put back %d times already: no poller that reads it came", MaxHops)
	}
	fields["hops"] = json.RawMessage(fmt.Sprint(hops))
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, 0, fault.Wrap(op, fault.Invalid, "", err)
	}
	if n := base64.StdEncoding.EncodedLen(len(out)); n > MaxEncodedBytes {
		return nil, 0, fault.Invalidf(op, "message would be %d bytes encoded, over the MNS limit", n)
	}
	return out, hops, nil
}

// plainJSON returns the JSON object of a body given plain or as base64.
func plainJSON(op string, body []byte) ([]byte, error) {
	if len(body) > maxDecodeBytes {
		return nil, fault.Invalidf(op, "message body is %d bytes, over the %d-byte limit", len(body), maxDecodeBytes)
	}
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return nil, fault.Invalidf(op, "empty message body")
	}
	if b[0] != '{' {
		dec := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
		n, err := base64.StdEncoding.Decode(dec, b)
		if err != nil {
			return nil, fault.Invalidf(op, "message body is neither JSON nor base64 JSON: %v", err)
		}
		b = bytes.TrimSpace(dec[:n])
		if len(b) == 0 || b[0] != '{' {
			return nil, fault.Invalidf(op, "base64 message body does not hold a JSON object")
		}
	}
	return b, nil
}
