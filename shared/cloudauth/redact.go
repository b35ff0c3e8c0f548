package cloudauth

import (
	"errors"
	"net/url"
	"strings"
)

// Redactor removes one credential's secret and token from texts that leave an
// adapter: service messages, transport errors, response snippets. It matches
// the raw values and the URL-escaped forms they take in signed query strings
// and paths, escaped once or twice.
type Redactor struct {
	secrets []string
}

// Redactor returns the Redactor for c's secret and security token (never the
// access key ID, which is not a secret and helps diagnose permissions).
func (c Credentials) Redactor() Redactor {
	var r Redactor
	for _, s := range []string{c.AccessKeySecret, c.SecurityToken} {
		if s == "" {
			continue
		}
		once := url.QueryEscape(s)
		r.secrets = append(r.secrets, s, once, url.QueryEscape(once), url.PathEscape(s))
	}
	return r
}

// Text returns s with every form of the secret and token replaced by "***".
func (r Redactor) Text(s string) string {
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, "***")
	}
	return s
}

// Snippet redacts s and shortens it to one line of at most limit bytes, so an
// HTML error page or a long body becomes a readable hint in an error.
func (r Redactor) Snippet(s string, limit int) string {
	s = strings.Join(strings.Fields(r.Text(s)), " ")
	if limit > 0 && len(s) > limit {
		s = s[:limit] + "…"
	}
	return s
}

// Error wraps err so that its text is redacted while its identity
// (errors.Is/As, and net.Error's Timeout/Temporary) is kept. A nil err stays
// nil.
func (r Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	return redactedError{err: err, r: r}
}

// redactedError is what Redactor.Error returns.
type redactedError struct {
	err error
	r   Redactor
}

func (e redactedError) Error() string { return e.r.Text(e.err.Error()) }
func (e redactedError) Unwrap() error { return e.err }

// Timeout keeps the net.Error behaviour of what it wraps.
func (e redactedError) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.err, &t) && t.Timeout()
}

// Temporary keeps the net.Error behaviour of what it wraps.
func (e redactedError) Temporary() bool {
	var t interface{ Temporary() bool }
	return errors.As(e.err, &t) && t.Temporary()
}
