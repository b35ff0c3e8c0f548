package handler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecsevent"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/poll"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/protect"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/scope"
)

// Deps are what both handlers are built from.
type Deps struct {
	// Region is the function's region (FC_REGION).
	Region string
	// Policy holds the timing and retry rules.
	Policy install.Policy
	// Cloud builds the invocation's clients.
	Cloud Cloud
	// Logger writes JSON lines; Outcomes records outcomes (defaults to
	// outcome.Log over Logger).
	Logger   *slog.Logger
	Outcomes outcome.Recorder
	// Now is the clock; Sleep pauses between send retries.
	Now   func() time.Time
	Sleep func(time.Duration)
	// Jitter spreads back-off delays; nil means none.
	Jitter func(time.Duration) time.Duration
	// Scope and Audit are the coverage settings (see install.Service).
	Scope scope.Rules
	Audit bool
	// TagKey, when set, is the tag written on each instance with its
	// outcome (never in audit mode); NotifyAll publishes every outcome to
	// the topic, not only the problems.
	TagKey    string
	NotifyAll bool
	// Reinstall lists the operator-set client statuses installed over
	// anyway (see install.Service.Reinstall).
	Reinstall map[string]bool
	// Protect says which backup policy an instance whose client is
	// ACTIVATED is bound to; binding is off when it names none.
	Protect protect.Settings
}

// DepsFrom fills the configuration part of Deps from cfg.
func DepsFrom(cfg config.Config) Deps {
	return Deps{
		Region:    cfg.Region,
		Policy:    install.PolicyFrom(cfg),
		Scope:     cfg.Scope,
		Audit:     cfg.Audit(),
		TagKey:    cfg.OutcomeTagKey,
		NotifyAll: cfg.NotifyAll,
		Reinstall: cfg.ReinstallStatuses,
		Protect:   cfg.Protect,
	}
}

func (d *Deps) defaults() {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Sleep == nil {
		d.Sleep = time.Sleep
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Outcomes == nil {
		d.Outcomes = outcome.Log{Logger: d.Logger, Now: d.Now}
	}
}

// pollService is the poll step over the invocation's clients, with the
// install step and the binding step it ends with.
func (d *Deps) pollService(s *session) *poll.Service {
	return &poll.Service{Tasks: s.tasks, Install: d.installService(s), Now: d.Now,
		Protect: &protect.Service{HBR: s.binder, Settings: d.Protect, Audit: d.Audit}}
}

func (d *Deps) installService(s *session) *install.Service {
	return &install.Service{HBR: s.installer, ECS: s.inventory, Scope: d.Scope, Audit: d.Audit,
		Policy: d.Policy, Now: d.Now, Jitter: d.Jitter, Reinstall: d.Reinstall, Started: d.queueNow(s)}
}

// Install handles EventBridge ECS events.
type Install struct{ Deps }

// NewInstall returns the install handler.
func NewInstall(d Deps) *Install {
	d.defaults()
	return &Install{d}
}

// InstallSummary is the install function's response.
type InstallSummary struct {
	Events   int            `json:"events"`
	Accepted int            `json:"accepted"`
	Ignored  int            `json:"ignored"`
	Rejected []string       `json:"rejected,omitempty"`
	Outcomes map[string]int `json:"outcomes,omitempty"`
	Queued   int            `json:"queued"`
}

// Handle processes one invocation's payload, taken raw so that even a payload
// that is not JSON gets an error naming the problem: a CloudEvent, or an array
// of them. It returns an Invalid error when nothing in the payload could be read
// (so the bad event lands in the trigger's dead-letter destination after the
// platform's bounded retries), and a Retryable one when follow-up messages
// could not be queued.
func (h *Install) Handle(ctx context.Context, payload []byte) (InstallSummary, error) {
	log := h.Logger
	batch, err := ecsevent.Parse(payload, h.Region)
	if err != nil {
		log.ErrorContext(ctx, "rejected payload", slog.String("error", err.Error()), slog.String("class", fault.KindOf(err).String()))
		return InstallSummary{}, err
	}
	sum := InstallSummary{Events: batch.Events, Ignored: len(batch.Ignored)}
	for _, ig := range batch.Ignored {
		level := slog.LevelInfo
		if ig.Routine {
			level = slog.LevelDebug
		}
		log.Log(ctx, level, "ignored event", slog.String("eventId", job.TrimOrigin(ig.EventID)), slog.String("type", ig.Type), slog.String("reason", ig.Reason))
	}
	var rejErrs []error
	for _, rj := range batch.Rejected {
		log.ErrorContext(ctx, "rejected event", slog.Int("index", rj.Index), slog.String("eventId", rj.EventID), slog.String("error", rj.Err.Error()))
		sum.Rejected = append(sum.Rejected, rj.Err.Error())
		rejErrs = append(rejErrs, rj.Err)
	}
	if len(batch.Candidates) == 0 {
		if len(batch.Ignored) == 0 && len(rejErrs) > 0 {
			return sum, fault.Wrap("install.Handle", fault.Invalid, "", fmt.Errorf("no usable event in the payload: %w", errors.Join(rejErrs...)))
		}
		return sum, nil
	}

	now := h.Now()
	ready := map[string][]job.Instance{}
	later := map[string][]job.Instance{}
	for _, c := range batch.Candidates {
		in := job.Instance{
			ID:            c.InstanceID,
			JobID:         job.JobID(c.Source, c.EventID, c.InstanceID),
			OriginEventID: job.TrimOrigin(c.EventID),
			EventTime:     c.EventTime,
			FirstSeen:     now,
			ReadyBy:       now.Add(h.Policy.ReadinessTimeout),
		}
		h.Outcomes.Accepted(ctx, outcome.Acceptance{JobID: in.JobID, InstanceID: in.ID, Region: c.Region,
			OriginEventID: in.OriginEventID, Trigger: string(c.Trigger)})
		if c.Ready {
			ready[c.Region] = append(ready[c.Region], in)
		} else {
			later[c.Region] = append(later[c.Region], in)
		}
	}
	sum.Accepted = len(batch.Candidates)

	s := newSession(h.Cloud)
	svc := h.installService(s)
	var res install.Result
	for _, region := range keys(ready) {
		if d := h.Policy.CoalesceDelay; d > 0 {
			res.Merge(svc.Defer(region, ready[region], d))
			continue
		}
		res.Merge(h.installDirect(ctx, s, svc, region, ready[region]))
	}
	for _, region := range keys(later) {
		res.Merge(svc.Defer(region, later[region], h.Policy.Align(now, h.Policy.ReadinessWait(1))))
	}
	sum.Outcomes = countOutcomes(res.Outcomes)
	sent, err := h.deliver(ctx, s, res)
	sum.Queued = sent
	if err != nil {
		return sum, err
	}
	log.InfoContext(ctx, "install done", slog.Int("events", sum.Events), slog.Int("accepted", sum.Accepted),
		slog.Int("ignored", sum.Ignored), slog.Int("rejected", len(sum.Rejected)), slog.Int("queued", sent))
	return sum, nil
}

// installDirect installs in the install function itself
// (INSTALL_COALESCE_DELAY=0), ending with the binding step like the poller.
func (d *Deps) installDirect(ctx context.Context, s *session, svc *install.Service, region string, ins []job.Instance) install.Result {
	return d.pollService(s).Bind(ctx, svc.Install(ctx, region, ins, 0))
}

func keys(m map[string][]job.Instance) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func countOutcomes(rs []outcome.Record) map[string]int {
	if len(rs) == 0 {
		return nil
	}
	m := map[string]int{}
	for _, r := range rs {
		m[string(r.Outcome)]++
	}
	return m
}
