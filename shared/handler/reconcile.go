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
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/reconcile"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/taskqueue"
)

// TriggerReconcile is the trigger name of the acceptances a sweep logs.
const TriggerReconcile = "reconcile"

// Reconcile handles the reconcile function's invocations: the daily timer
// trigger and manual invokes.
type Reconcile struct {
	Deps
	// Rate is the instances per minute a sweep hands to the install
	// function, Max the
	// most instances one sweep looks at (see reconcile.Service).
	Rate, Max int
	// Reserve is the time a part keeps, before its invocation's deadline
	// (the FC context's), for sending what it found and its continuation;
	// Budget is the listing time of a part when the context has no
	// deadline.
	Reserve, Budget time.Duration
	// Stop, when set, replaces the deadline rule: it is asked after each
	// page whether the part must end (tests use it).
	Stop func(ctx context.Context) bool
}

// Defaults of Reconcile.Reserve and Reconcile.Budget: FC caps an
// EventBridge-fed invocation at 300 s, the functions' timeout.
const (
	DefaultReserve = 60 * time.Second
	DefaultBudget  = 240 * time.Second
)

// NewReconcile returns the reconcile handler.
func NewReconcile(d Deps, rate, max int) *Reconcile {
	d.defaults()
	return &Reconcile{Deps: d, Rate: rate, Max: max, Reserve: DefaultReserve, Budget: DefaultBudget}
}

// stopper returns the rule that ends a part: when the context's deadline
// (or, without one, Budget from now) is less than Reserve away, or a
// quarter of the time left at the start, whichever is less. Deadlines
// are wall-clock time, so this reads the real clock, not Deps.Now.
func (h *Reconcile) stopper(ctx context.Context) func() bool {
	if h.Stop != nil {
		return func() bool { return h.Stop(ctx) }
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(h.Budget + h.Reserve)
	}
	// A short timeout (the local cloud's 30 s) keeps a quarter of it.
	reserve := min(h.Reserve, time.Until(deadline)/4)
	return func() bool { return time.Until(deadline) < reserve }
}

func (h *Reconcile) service(ctx context.Context, s *session) (*reconcile.Service, error) {
	l, err := h.ledger(ctx, s)
	if err != nil {
		return nil, err
	}
	return &reconcile.Service{
		ECS: s.lister, HBR: s.clientLister, Scope: h.Scope, Policy: h.Policy,
		Rate: h.Rate, Max: h.Max, Now: h.Now, Sleep: h.Sleep, Stop: h.stopper(ctx), Workers: h.Workers,
		Protect: h.Protect, Bindings: s.bindingLister, Ledger: l,
	}, nil
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
	svc, err := h.service(ctx, s)
	if err != nil {
		return reconcile.Report{}, err
	}
	part, err := svc.Sweep(ctx, h.Region, req.id, req.at, req.dryRun)
	return h.endPart(ctx, s, req.timer, part, err)
}

// Continue runs the next part of a sweep from its continuation message
// (the poller hands it job.KindSweep messages). Its errors are those of
// Handle; an Invalid one (a continuation past its deadline or its parts, a
// malformed one) means the message is for the dead-letter queue.
func (h *Reconcile) Continue(ctx context.Context, m job.Message) (reconcile.Report, error) {
	s := newSession(h.Cloud)
	svc, err := h.service(ctx, s)
	if err != nil {
		return reconcile.Report{}, err
	}
	part, err := svc.Continue(ctx, m)
	return h.endPart(ctx, s, false, part, err)
}

// endPart delivers a part: it logs "accepted" for each instance, sends the
// install messages in batches, then the continuation, and logs the report:
// "sweep part" with the running totals while the sweep goes on, "coverage"
// with the whole region's when it is complete.
func (h *Reconcile) endPart(ctx context.Context, s *session, timer bool, part reconcile.Part, err error) (reconcile.Report, error) {
	log := h.Logger
	rep := part.Report
	if err != nil {
		log.ErrorContext(ctx, "sweep failed", slog.String("sweepId", rep.SweepID), slog.Int("part", rep.Parts),
			slog.String("error", err.Error()), slog.String("class", fault.KindOf(err).String()), slog.String("code", fault.CodeOf(err)))
		return rep, fmt.Errorf("reconcile sweep %s of %s: %w", rep.SweepID, rep.Region, err)
	}
	res := part.Result
	for _, n := range res.Next {
		for _, in := range n.Message.Instances {
			h.Outcomes.Accepted(ctx, outcome.Acceptance{JobID: in.JobID, InstanceID: in.ID, Region: n.Message.Region,
				OriginEventID: in.OriginEventID, Trigger: TriggerReconcile})
		}
	}
	_, err = h.deliverBatch(ctx, s, res)
	if err == nil && part.Next != nil {
		err = h.sendContinuation(ctx, s, *part.Next)
	}
	h.logReport(ctx, timer, rep, err)
	return rep, err
}

// sendContinuation queues the message that runs the sweep's next part.
func (h *Reconcile) sendContinuation(ctx context.Context, s *session, m job.Message) error {
	body, err := job.Encode(m)
	if err != nil {
		return fmt.Errorf("encode the sweep continuation: %w", err)
	}
	q, err := s.cloud.Queue(ctx)
	if err != nil {
		return fmt.Errorf("build the queue client: %w", err)
	}
	id, err := sendWithRetry(ctx, q, taskqueue.Message{Body: body}, h.Sleep)
	if err != nil {
		return fmt.Errorf("queue the sweep continuation (the trigger will redeliver): %w", err)
	}
	h.Logger.InfoContext(ctx, "sweep continues", slog.String("sweepId", m.Sweep.ID), slog.Int("part", m.Sweep.Part+1),
		slog.String("messageId", id))
	return nil
}

// BatchSender sends many messages to the job queue in BatchSendMessage
// requests (taskqueue.Sender satisfies it).
type BatchSender interface {
	SendBatch(ctx context.Context, msgs []taskqueue.Message) ([]string, error)
}

// deliverBatch is deliver for the many install-retry messages of a sweep
// (announcements for the install function): it sends them to the install
// queue in BatchSendMessage requests of 16, retrying the unsent ones of a
// retryable failure a few times. When the queue cannot be used (a
// permanent error) the instances of the unsent messages end as FAILED, as
// deliver does, and the error is returned. A queue client that cannot
// batch gets deliver's one-by-one sends.
func (h *Reconcile) deliverBatch(ctx context.Context, s *session, res install.Result) (int, error) {
	if err := h.Deps.finish(ctx, s, res.Outcomes); err != nil {
		return 0, err
	}
	if len(res.Next) == 0 {
		return 0, nil
	}
	q, err := s.cloud.InstallQueue(ctx)
	if err != nil {
		for _, n := range res.Next {
			h.abandon(ctx, s, n, err)
		}
		return 0, fmt.Errorf("build the queue client: %w", err)
	}
	bq, ok := q.(BatchSender)
	if !ok {
		return h.deliver(ctx, s, install.Result{Next: res.Next})
	}
	pending := make([]int, 0, len(res.Next))
	msgs := make([]taskqueue.Message, 0, len(res.Next))
	for i, n := range res.Next {
		body, err := job.Encode(n.Message)
		if err != nil {
			h.Logger.ErrorContext(ctx, "cannot encode a job message", slog.String("error", err.Error()))
			h.abandon(ctx, s, n, fault.Wrap("handler.deliverBatch", fault.Invalid, "InternalError", err))
			continue
		}
		pending = append(pending, i)
		msgs = append(msgs, taskqueue.Message{Body: body, Delay: n.Delay})
	}
	sent := 0
	for attempt := 1; len(msgs) > 0; attempt++ {
		ids, err := bq.SendBatch(ctx, msgs)
		var retry []int
		var again []taskqueue.Message
		for j := range msgs {
			if j < len(ids) && ids[j] != "" {
				sent++
				continue
			}
			if err == nil { // no id without an error: treat as unsent
				err = fault.Wrap("handler.deliverBatch", fault.Retryable, "", fmt.Errorf("no message id returned"))
			}
			retry = append(retry, pending[j])
			again = append(again, msgs[j])
		}
		if len(retry) == 0 {
			break
		}
		retryable := fault.Is(err, fault.Retryable) && ctx.Err() == nil
		if !retryable || attempt >= sendAttempts {
			h.Logger.ErrorContext(ctx, "cannot queue job messages", slog.Int("unsent", len(retry)), slog.Int("sent", sent),
				slog.String("error", err.Error()), slog.String("class", fault.KindOf(err).String()))
			if !retryable && !fault.IsContext(err) {
				for _, i := range retry {
					h.abandon(ctx, s, res.Next[i], err)
				}
			}
			kind := fault.Retryable
			if !retryable && !fault.IsContext(err) {
				kind = fault.Permanent
			}
			return sent, fault.Wrap("handler.deliver", kind, fault.CodeOf(err),
				fmt.Errorf("%d of %d job messages could not be queued (the trigger will redeliver): %w", len(retry), len(res.Next), err))
		}
		h.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		pending, msgs = retry, again
	}
	h.Logger.InfoContext(ctx, "queued", slog.Int("messages", sent), slog.Int("instances", countInstances(res.Next)))
	return sent, nil
}

func countInstances(next []install.Next) int {
	n := 0
	for _, x := range next {
		n += len(x.Message.Instances)
	}
	return n
}

// logReport writes the report as one log line: "coverage" once the sweep
// is complete (its totals are the whole region's), "sweep part" before.
func (h *Reconcile) logReport(ctx context.Context, timer bool, rep reconcile.Report, deliverErr error) {
	trigger := "manual"
	switch {
	case timer:
		trigger = "timer"
	case rep.Parts > 1:
		trigger = "continuation"
	}
	attrs := []slog.Attr{
		slog.String("region", rep.Region), slog.String("sweepId", rep.SweepID), slog.String("trigger", trigger),
		slog.Bool("dryRun", rep.DryRun),
		slog.Int("listed", rep.Listed), slog.Int("total", rep.Total), slog.Int("covered", rep.Covered),
		slog.Int("installing", rep.Installing), slog.Int("excludedTotal", rep.ExcludedTotal()),
		slog.Int("missing", rep.Missing), slog.Int("failed", rep.Failed),
		slog.Int("enqueued", rep.Enqueued), slog.Int("messages", rep.Messages),
		slog.Any("excluded", rep.Excluded), slog.Any("clientStatus", rep.ClientStatus),
		slog.Int("unbound", rep.Unbound), slog.Int("bindQueued", rep.BindQueued),
		slog.Int("unrecorded", rep.Unrecorded), slog.Int("staleClaims", rep.StaleClaims), slog.Int("retries", rep.Retries),
		slog.Bool("truncated", rep.Truncated), slog.Float64("spreadSeconds", rep.SpreadSeconds),
		slog.Int("parts", rep.Parts), slog.Bool("complete", rep.Complete),
	}
	msg := "coverage"
	if !rep.Complete {
		msg = "sweep part"
	}
	level := slog.LevelInfo
	if deliverErr != nil {
		level = slog.LevelError
		attrs = append(attrs, slog.String("error", deliverErr.Error()), slog.String("class", fault.KindOf(deliverErr).String()))
	}
	h.Logger.LogAttrs(ctx, level, msg, attrs...)
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

// lister is the session's ECS client as a paging lister (ecs.Client is one).
func (s *session) lister(ctx context.Context, region string) (reconcile.Lister, error) {
	cl, err := s.ecsClient(ctx, region)
	if err != nil {
		return nil, err
	}
	l, ok := cl.(reconcile.Lister)
	if !ok {
		return nil, fault.Invalidf("handler.lister", "the ECS client of %s cannot list in pages", region)
	}
	return l, nil
}

func (s *session) bindingLister(ctx context.Context, region string) (reconcile.BindingLister, error) {
	return s.client(ctx, region)
}

func (s *session) clientLister(ctx context.Context, region string) (reconcile.ClientLister, error) {
	return s.client(ctx, region)
}
