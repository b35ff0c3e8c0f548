// Package outcome defines the explicit end state every accepted instance
// reaches, the record that reports it, and a recorder that writes records as
// structured log lines.
//
// A record carries the job id (derived from the event that announced the
// instance), so a consumer of the log can dedupe on (jobId, instanceId): a
// redelivered message may repeat an identical record, never a different one.
package outcome

import (
	"context"
	"log/slog"
	"strings"
	"time"
)

// Kind is an instance's final state.
type Kind string

const (
	// Installed: the HBR client is ACTIVATED on the instance.
	Installed Kind = "INSTALLED"
	// AlreadyInstalled: the instance had an ACTIVATED client before the
	// event that announced it (a restart, or an instance installed by other
	// means); no install was made.
	AlreadyInstalled Kind = "ALREADY_INSTALLED"
	// Failed: the install failed (after the allowed attempts) or HBR refused
	// the instance; Code says why.
	Failed Kind = "FAILED"
	// NotReady: the instance or its Cloud Assistant never became ready before
	// the readiness deadline.
	NotReady Kind = "NOT_READY"
	// Gone: the instance no longer exists.
	Gone Kind = "GONE"
	// Timeout: the install task did not finish before the job's deadline, or
	// HBR expired it.
	Timeout Kind = "TIMEOUT"
	// Cancelled: the install task was cancelled.
	Cancelled Kind = "CANCELLED"
	// Skipped: the instance is out of scope (a tag, resource group or VPC
	// rule); Reason names the rule.
	Skipped Kind = "SKIPPED"
	// WouldInstall: audit mode; the instance is in scope, has no client and
	// is ready, so enforce mode would install it.
	WouldInstall Kind = "WOULD_INSTALL"

	// Protected: the client is ACTIVATED and the instance is now bound to a
	// backup policy; PolicyID names it.
	Protected Kind = "PROTECTED"
	// AlreadyProtected: the instance was already bound to a backup policy
	// (the configured one or another), which PolicyID names; it was not
	// rebound.
	AlreadyProtected Kind = "ALREADY_PROTECTED"
	// BindFailed: the client is ACTIVATED but binding it to the policy
	// (PolicyID) failed for good; Code says why.
	BindFailed Kind = "BIND_FAILED"
	// WouldProtect: audit mode; the instance has no binding and enforce mode
	// would bind it to PolicyID.
	WouldProtect Kind = "WOULD_PROTECT"
)

// Problem reports whether an outcome needs someone's attention: everything
// but INSTALLED, ALREADY_INSTALLED, SKIPPED, PROTECTED and
// ALREADY_PROTECTED. BIND_FAILED is a problem (the instance is not backed
// up) even though its client is ACTIVATED; the audit kinds WOULD_INSTALL and
// WOULD_PROTECT count as problems so that audit runs are published.
func (k Kind) Problem() bool {
	switch k {
	case Installed, AlreadyInstalled, Skipped, Protected, AlreadyProtected:
		return false
	}
	return true
}

// Audit reports whether the kind is an audit-mode verdict (WOULD_INSTALL,
// WOULD_PROTECT): reported, but nothing went wrong.
func (k Kind) Audit() bool { return k == WouldInstall || k == WouldProtect }

// Slug is the kind as a short lower-case word (at most 16 characters, the
// MNS message-tag limit): installed, already, failed, not-ready, gone,
// timeout, cancelled, skipped, would-install, protected, already-bound,
// bind-failed, would-protect.
func (k Kind) Slug() string {
	switch k {
	case AlreadyInstalled:
		return "already"
	case AlreadyProtected:
		return "already-bound"
	}
	return strings.ToLower(strings.ReplaceAll(string(k), "_", "-"))
}

// TagValue is the value written on the instance for its outcome:
// installed, already-installed, failed:<code>, skipped:<rule>, not-ready,
// gone, timeout, cancelled, would-install, protected:<policy>,
// already-protected:<policy>, bind-failed:<code>, would-protect:<policy>. It
// fits ECS's tag rules (at most 128 characters, no URL).
func (r Record) TagValue() string {
	v := strings.ToLower(strings.ReplaceAll(string(r.Outcome), "_", "-"))
	switch r.Outcome {
	case Failed, BindFailed:
		v += ":" + r.Code
	case Protected, AlreadyProtected, WouldProtect:
		v += ":" + r.PolicyID
	case Skipped:
		v += ":" + strings.TrimPrefix(r.Reason, "excluded by ")
	}
	v = strings.NewReplacer("http://", "", "https://", "").Replace(v)
	if n := 128; len([]rune(v)) > n {
		v = string([]rune(v)[:n])
	}
	return v
}

// Kinds lists every outcome kind, in the order reports print them.
var Kinds = []Kind{Installed, AlreadyInstalled, Failed, NotReady, Gone, Timeout, Cancelled, Skipped, WouldInstall,
	Protected, AlreadyProtected, BindFailed, WouldProtect}

// Record is one instance's outcome. Outcome and Code are the decision: a
// duplicate delivery that reaches the same decision writes the same two
// values. Reason, TaskID, Attempts and Detail describe how it was reached and
// may differ between two deliveries (another task, one more readiness check).
type Record struct {
	JobID         string
	InstanceID    string
	Region        string
	Outcome       Kind
	Reason        string
	Code          string
	TaskID        string
	ClientID      string
	Attempts      int
	FirstSeen     time.Time
	OriginEventID string
	// Detail is free text for humans (the full error); it may differ between
	// duplicate deliveries and is not part of the decision.
	Detail string
	// PolicyID is the backup policy of the binding outcomes (PROTECTED,
	// ALREADY_PROTECTED, BIND_FAILED, WOULD_PROTECT); logged as "policyId",
	// omitted when empty.
	PolicyID string
	// Supersedes, when set, names what this record corrects: the previous
	// generation's record as "<jobId>/<OUTCOME>" (a restart after a
	// failure, a sweep that found the instance uncovered), or "<jobId>" for
	// an owner whose chain died and was taken over.
	Supersedes string
	// Generation is the instance ledger generation the record ends (0: not
	// claimed, a record from before the ledger); logged as "generation".
	Generation int
	// LeaseUntil is the owner's lease, Via the delivery being handled:
	// what the ledger needs to write the record (never logged).
	LeaseUntil time.Time
	Via        string
}

// Join notes an announcement of an instance another job owns in the
// instance ledger: it records nothing, and the owner records the outcome.
type Join struct {
	JobID, InstanceID, Region, OriginEventID string
	// Owner is the owning job; Generation its ledger generation; State
	// what the owner is doing ("generation 1 installing task t-… (attempt
	// 1)", "generation 1 recorded INSTALLED at …").
	Owner      string
	Generation int
	State      string
	// Reason says why the announcement joined.
	Reason string
}

// Recorder receives outcome records and acceptance notices.
type Recorder interface {
	// Accepted notes that the system took responsibility for an instance.
	Accepted(ctx context.Context, a Acceptance)
	// Record reports an instance's final outcome.
	Record(ctx context.Context, r Record)
	// Joined notes an announcement that joined the instance's owner (no
	// outcome of its own).
	Joined(ctx context.Context, j Join)
}

// Acceptance notes an instance the system has taken responsibility for.
type Acceptance struct {
	JobID, InstanceID, Region, OriginEventID, Trigger string
}

// Log writes records as slog entries: msg "accepted" (INFO) and msg "outcome"
// (WARN for problems, INFO otherwise and for audit verdicts) with the fields
// the README documents; "policyId" only when the record names a policy.
type Log struct {
	Logger *slog.Logger
	Now    func() time.Time
}

// Accepted implements Recorder.
func (l Log) Accepted(ctx context.Context, a Acceptance) {
	l.Logger.LogAttrs(ctx, slog.LevelInfo, "accepted",
		slog.String("jobId", a.JobID),
		slog.String("instanceId", a.InstanceID),
		slog.String("region", a.Region),
		slog.String("trigger", a.Trigger),
		slog.String("originEventId", a.OriginEventID),
	)
}

// Joined implements Recorder: an INFO line "joined" naming the owner.
func (l Log) Joined(ctx context.Context, j Join) {
	l.Logger.LogAttrs(ctx, slog.LevelInfo, "joined",
		slog.String("jobId", j.JobID),
		slog.String("instanceId", j.InstanceID),
		slog.String("region", j.Region),
		slog.String("owner", j.Owner),
		slog.Int("generation", j.Generation),
		slog.String("ownerState", j.State),
		slog.String("reason", j.Reason),
		slog.String("originEventId", j.OriginEventID),
	)
}

// Record implements Recorder.
func (l Log) Record(ctx context.Context, r Record) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	level := slog.LevelInfo
	if r.Outcome.Problem() && !r.Outcome.Audit() {
		level = slog.LevelWarn
	}
	elapsed := 0.0
	if !r.FirstSeen.IsZero() {
		elapsed = now().Sub(r.FirstSeen).Seconds()
	}
	attrs := []slog.Attr{
		slog.String("jobId", r.JobID),
		slog.String("instanceId", r.InstanceID),
		slog.String("region", r.Region),
		slog.String("outcome", string(r.Outcome)),
		slog.String("reason", r.Reason),
		slog.String("code", r.Code),
		slog.String("taskId", r.TaskID),
		slog.String("clientId", r.ClientID),
		slog.Int("attempts", r.Attempts),
		slog.Float64("elapsedSeconds", float64(int64(elapsed*1000))/1000),
		slog.String("originEventId", r.OriginEventID),
		slog.String("detail", r.Detail),
		slog.String("supersedes", r.Supersedes),
		slog.Int("generation", r.Generation),
	}
	if r.PolicyID != "" {
		attrs = append(attrs, slog.String("policyId", r.PolicyID))
	}
	l.Logger.LogAttrs(ctx, level, "outcome", attrs...)
}
