package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aliyun/fc-runtime-go-sdk/fccontext"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/reconcile"
)

// TriggerReconcile is the trigger name of the acceptances a sweep logs.
const TriggerReconcile = "reconcile"

// Reconcile handles the reconcile function's invocations: the daily timer
// trigger and manual invokes.
type Reconcile struct {
	Deps
	// Rate is the instances per minute a sweep hands to the poller, Max the
	// most instances one sweep looks at (see reconcile.Service).
	Rate, Max int
}

// NewReconcile returns the reconcile handler.
func NewReconcile(d Deps, rate, max int) *Reconcile {
	d.defaults()
	return &Reconcile{Deps: d, Rate: rate, Max: max}
}

// sweepRequest is what an invocation asks for.
type sweepRequest struct {
	id     string
	at     time.Time
	dryRun bool
	timer  bool
}

// Handle runs one sweep of the function's region. The payload is a timer
// event ({"triggerTime":"2026-11-27T03:00:00Z","triggerName":"daily",
// "payload":"{\"dryRun\":true}"}), whose triggerTime names the sweep so that
// a redelivered invocation makes the same job ids, or a manual request:
// empty, {}, {"dryRun":true}, {"sweepId":"x"} (the sweep is then named by
// sweepId, else the FC request id, else "manual-<unix seconds>").
//
// It logs "accepted" for every instance it enqueues before sending, sends
// the job messages, logs the report ("coverage") and returns it. Errors:
// Invalid for a malformed payload (naming the problem); the sweep's listing
// errors as classified by the adapters; Retryable when job messages could
// not be queued (a redelivery, with the same sweep id, completes the sweep).
func (h *Reconcile) Handle(ctx context.Context, payload []byte) (reconcile.Report, error) {
	log := h.Logger
	req, err := h.parse(ctx, payload)
	if err != nil {
		log.ErrorContext(ctx, "rejected payload", slog.String("error", err.Error()), slog.String("class", fault.KindOf(err).String()))
		return reconcile.Report{}, err
	}
	s := newSession(h.Cloud)
	svc := &reconcile.Service{
		ECS: s.lister, HBR: s.clientLister, Scope: h.Scope, Policy: h.Policy,
		Rate: h.Rate, Max: h.Max, Now: h.Now,
	}
	rep, res, err := svc.Sweep(ctx, h.Region, req.id, req.at, req.dryRun)
	if err != nil {
		log.ErrorContext(ctx, "sweep failed", slog.String("sweepId", req.id), slog.String("error", err.Error()),
			slog.String("class", fault.KindOf(err).String()), slog.String("code", fault.CodeOf(err)))
		return rep, fmt.Errorf("reconcile sweep %s of %s: %w", req.id, h.Region, err)
	}
	for _, n := range res.Next {
		for _, in := range n.Message.Instances {
			h.Outcomes.Accepted(ctx, outcome.Acceptance{JobID: in.JobID, InstanceID: in.ID, Region: n.Message.Region,
				OriginEventID: in.OriginEventID, Trigger: TriggerReconcile})
		}
	}
	_, err = h.deliver(ctx, s, res)
	h.logReport(ctx, req, rep, err)
	if err != nil {
		return rep, err
	}
	return rep, nil
}

// logReport writes the coverage report as one log line.
func (h *Reconcile) logReport(ctx context.Context, req sweepRequest, rep reconcile.Report, deliverErr error) {
	trigger := "manual"
	if req.timer {
		trigger = "timer"
	}
	attrs := []slog.Attr{
		slog.String("region", rep.Region), slog.String("sweepId", rep.SweepID), slog.String("trigger", trigger),
		slog.Bool("dryRun", rep.DryRun),
		slog.Int("listed", rep.Listed), slog.Int("total", rep.Total), slog.Int("covered", rep.Covered),
		slog.Int("installing", rep.Installing), slog.Int("excludedTotal", rep.ExcludedTotal()),
		slog.Int("missing", rep.Missing), slog.Int("failed", rep.Failed),
		slog.Int("enqueued", rep.Enqueued), slog.Int("messages", rep.Messages),
		slog.Any("excluded", rep.Excluded), slog.Any("clientStatus", rep.ClientStatus),
		slog.Bool("truncated", rep.Truncated), slog.Float64("spreadSeconds", rep.SpreadSeconds),
	}
	level := slog.LevelInfo
	if deliverErr != nil {
		level = slog.LevelError
		attrs = append(attrs, slog.String("error", deliverErr.Error()), slog.String("class", fault.KindOf(deliverErr).String()))
	}
	h.Logger.LogAttrs(ctx, level, "coverage", attrs...)
}

// Fields of the payloads, exactly as spelt.
const (
	fieldTriggerTime = "triggerTime"
	fieldPayload     = "payload"
	fieldDryRun      = "dryRun"
	fieldSweepID     = "sweepId"
)

// parse reads the invocation's payload. A manual request may hold only
// dryRun and sweepId, so that a misspelt "dry_run" fails instead of running
// a real sweep; a timer event may hold other fields (the platform's to add).
func (h *Reconcile) parse(ctx context.Context, payload []byte) (sweepRequest, error) {
	const op = "handler.Reconcile"
	fields := map[string]json.RawMessage{}
	if p := bytes.TrimSpace(payload); len(p) > 0 {
		if p[0] != '{' {
			return sweepRequest{}, fault.Invalidf(op, "payload is not a JSON object: want a timer event or {\"dryRun\":true}")
		}
		if err := json.Unmarshal(p, &fields); err != nil {
			return sweepRequest{}, fault.Wrap(op, fault.Invalid, "", fmt.Errorf("payload is not valid JSON: %w", err))
		}
	}
	var req sweepRequest
	if raw, ok := fields[fieldTriggerTime]; ok {
		return h.timer(op, raw, fields)
	}
	if err := onlyFields(op, "payload", fields, fieldDryRun, fieldSweepID); err != nil {
		return sweepRequest{}, err
	}
	var err error
	if req.dryRun, err = boolField(op, "payload", fields); err != nil {
		return sweepRequest{}, err
	}
	if raw, ok := fields[fieldSweepID]; ok {
		if err := json.Unmarshal(raw, &req.id); err != nil || !reconcile.ValidSweepID(req.id) {
			return sweepRequest{}, fault.Invalidf(op, "sweepId %s: want 1..%d letters, digits or _.:+- starting with a letter or digit",
				clip(string(raw)), reconcile.MaxSweepIDLen)
		}
	}
	now := h.Now()
	if req.id == "" {
		if fctx, ok := fccontext.FromContext(ctx); ok && fctx != nil && reconcile.ValidSweepID(fctx.RequestID) {
			req.id = fctx.RequestID
		} else {
			req.id = "manual-" + strconv.FormatInt(now.Unix(), 10)
		}
	}
	// HBR reports client creation times in whole seconds: a sub-second
	// event time could make a client this sweep installed look older.
	req.at = now.Truncate(time.Second)
	return req, nil
}

// timer reads a timer event: triggerTime names the sweep, and the payload
// string, when set, is a JSON object that may hold dryRun.
func (h *Reconcile) timer(op string, rawTime json.RawMessage, fields map[string]json.RawMessage) (sweepRequest, error) {
	var req sweepRequest
	req.timer = true
	var ts string
	if err := json.Unmarshal(rawTime, &ts); err != nil {
		return sweepRequest{}, fault.Invalidf(op, "timer event: triggerTime %s is not a string", clip(string(rawTime)))
	}
	at, err := time.Parse(time.RFC3339, strings.TrimSpace(ts))
	if err != nil {
		return sweepRequest{}, fault.Invalidf(op, "timer event: triggerTime %q is not an RFC 3339 time", clip(ts))
	}
	req.at = at.UTC().Truncate(time.Second)
	req.id = req.at.Format(time.RFC3339)
	if req.dryRun, err = boolField(op, "timer event", fields); err != nil {
		return sweepRequest{}, err
	}
	if raw, ok := fields[fieldPayload]; ok && string(raw) != "null" {
		var text string
		if err := json.Unmarshal(raw, &text); err != nil {
			return sweepRequest{}, fault.Invalidf(op, "timer event: payload %s is not a string", clip(string(raw)))
		}
		if t := strings.TrimSpace(text); t != "" {
			opts := map[string]json.RawMessage{}
			if err := json.Unmarshal([]byte(t), &opts); err != nil {
				return sweepRequest{}, fault.Invalidf(op, "timer event: payload %q is not a JSON object (want {} or {\"dryRun\":true})", clip(t))
			}
			if err := onlyFields(op, "timer payload", opts, fieldDryRun); err != nil {
				return sweepRequest{}, err
			}
			dry, err := boolField(op, "timer payload", opts)
			if err != nil {
				return sweepRequest{}, err
			}
			req.dryRun = req.dryRun || dry
		}
	}
	return req, nil
}

// onlyFields rejects fields other than allowed, naming them.
func onlyFields(op, what string, fields map[string]json.RawMessage, allowed ...string) error {
	var unknown []string
	for k := range fields {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			unknown = append(unknown, strconv.Quote(clip(k)))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return fault.Invalidf(op, "%s: unknown field %s (want %s)", what, strings.Join(unknown, ", "), strings.Join(allowed, ", "))
}

// boolField reads the optional dryRun field.
func boolField(op, what string, fields map[string]json.RawMessage) (bool, error) {
	raw, ok := fields[fieldDryRun]
	if !ok || string(raw) == "null" {
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, fault.Invalidf(op, "%s: dryRun %s is not true or false", what, clip(string(raw)))
	}
	return b, nil
}

// clip shortens untrusted text quoted in an error.
func clip(s string) string {
	const n = 64
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func (s *session) lister(ctx context.Context, region string) (reconcile.Lister, error) {
	return s.ecsClient(ctx, region)
}

func (s *session) clientLister(ctx context.Context, region string) (reconcile.ClientLister, error) {
	return s.client(ctx, region)
}
