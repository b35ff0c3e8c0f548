// Package fault classifies errors once, at the adapter that sees them, into a
// small closed set of kinds the rest of the system acts on.
//
// An adapter wraps every error it returns with [Wrap] (or builds an [*Error]);
// callers ask [KindOf] or [Is] and never look at error text. Unclassified
// errors are treated as [Permanent]: retrying an error nobody understood is how
// endless loops start.
package fault

import (
	"context"
	"errors"
	"fmt"
)

// Kind says what a caller can do about an error.
type Kind int

const (
	// Permanent errors will fail the same way if retried (bad request,
	// access denied, unknown resource).
	Permanent Kind = iota
	// Retryable errors may succeed later: throttling, 5xx, network trouble,
	// timeouts.
	Retryable
	// Invalid marks bad input: a malformed event or message, a hostile ID,
	// wrong configuration. Never retried.
	Invalid
)

// String returns the lower-case name of the kind, as used in logs.
func (k Kind) String() string {
	switch k {
	case Retryable:
		return "retryable"
	case Invalid:
		return "invalid"
	default:
		return "permanent"
	}
}

// Error is a classified error. Op names the operation ("hbr.InstallBackupClients"),
// Code carries the service's error code when there is one.
type Error struct {
	Op   string
	Kind Kind
	Code string
	Err  error
}

// Error implements error.
func (e *Error) Error() string {
	msg := e.Op
	if e.Code != "" {
		msg += " [" + e.Code + "]"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Wrap classifies err as kind under op. It returns nil for a nil err.
func Wrap(op string, kind Kind, code string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Op: op, Kind: kind, Code: code, Err: err}
}

// Invalidf returns an Invalid error for op with a formatted message.
func Invalidf(op, format string, args ...any) error {
	return &Error{Op: op, Kind: Invalid, Err: fmt.Errorf(format, args...)}
}

// KindOf returns the kind of the outermost classified error in err's chain.
// A cancelled or expired context is never retryable from the caller's point of
// view, since its own deadline has passed; unclassified errors are Permanent.
func KindOf(err error) Kind {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	return Permanent
}

// Is reports whether err is classified as kind.
func Is(err error, kind Kind) bool {
	if err == nil {
		return false
	}
	return KindOf(err) == kind
}

// CodeOf returns the service error code carried by err, or "".
func CodeOf(err error) string {
	var fe *Error
	for e := err; errors.As(e, &fe); e = fe.Err {
		if fe.Code != "" {
			return fe.Code
		}
	}
	return ""
}

// IsContext reports whether err comes from a cancelled or expired context.
func IsContext(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
