package handler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecsevent"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/poll"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/protect"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/queueevent"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/scope"
)

// Deps are what the handlers are built from.
type Deps struct {
	// Region is the function's region (FC_REGION).
	Region string
	// Policy holds the timing and retry rules.
	Policy install.Policy
	// Ledger locates the instance ledger's entries.
	Ledger LedgerConfig
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
	// Workers bounds the ledger calls made at once.
	Workers int
	// Source names the function in the dead letters it writes and the
	// final records (set by each handler's constructor).
	Source string
	// Function is the function's name (FC_FUNCTION_NAME), kept in the
	// ledger's final records.
	Function string
}

// LedgerConfig locates the instance ledger: the key prefix and the
// account (the bucket is the Cloud's).
type LedgerConfig struct {
	Prefix, Account string
}

// DepsFrom fills the configuration part of Deps from cfg.
func DepsFrom(cfg config.Config) Deps {
	return Deps{
		Region:    cfg.Region,
		Policy:    install.PolicyFrom(cfg),
		Ledger:    LedgerConfig{Prefix: cfg.LedgerPrefix, Account: cfg.AccountID},
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
	if d.Policy.StaleIntent <= 0 {
		d.Policy.StaleIntent = install.StaleIntent(10 * time.Second)
	}
}

// pollService is the poll step over the invocation's clients, with the
// binding step it ends with.
func (d *Deps) pollService(s *session, l install.Ledger) *poll.Service {
	return &poll.Service{Tasks: s.tasks, Parallel: hbrParallel, Install: d.installService(s, l), Now: d.Now,
		Protect: &protect.Service{HBR: s.binder, Settings: d.Protect, Audit: d.Audit}}
}

func (d *Deps) installService(s *session, l install.Ledger) *install.Service {
	return &install.Service{HBR: s.installer, ECS: s.inventory, Ledger: l, Scope: d.Scope, Audit: d.Audit,
		Policy: d.Policy, Now: d.Now, Jitter: d.Jitter, Reinstall: d.Reinstall, Started: d.queueNow(s), Workers: d.Workers,
		Chunks: hbrParallel}
}

// Install handles the install function's two triggers: EventBridge ECS
// events, and batches of install work from its install queue.
type Install struct {
	Deps
	// Group and Reserve bound a queue batch's work as Poller's do.
	Group   int
	Reserve time.Duration
}

// NewInstall returns the install handler.
func NewInstall(d Deps) *Install {
	d.Source = InstallDeadLetterSource
	d.defaults()
	return &Install{Deps: d, Group: DefaultPollGroup, Reserve: DefaultPollReserve}
}

// InstallSummary is the install function's response.
type InstallSummary struct {
	Events   int            `json:"events"`
	Accepted int            `json:"accepted"`
	Ignored  int            `json:"ignored"`
	Rejected []string       `json:"rejected,omitempty"`
	Joined   int            `json:"joined"`
	Outcomes map[string]int `json:"outcomes,omitempty"`
	Queued   int            `json:"queued"`
	// Messages counts the install-queue messages of a queue batch;
	// DeadLettered and PutBack are as in PollerSummary.
	Messages     int      `json:"messages,omitempty"`
	DeadLettered []string `json:"deadLettered,omitempty"`
	PutBack      int      `json:"putBack,omitempty"`
}

// Handle processes one invocation's payload, taken raw so that even a
// payload that is not JSON gets an error naming the problem. An install
// queue's batch goes to handleQueue; anything else is read as ECS events
// (a CloudEvent, or an array of them). For events it returns an Invalid
// error when nothing in the payload could be read (so the bad event lands
// in the trigger's dead-letter destination after the platform's bounded
// retries), and a Retryable one when the ledger could not be reached or a
// follow-up message could not be queued.
func (h *Install) Handle(ctx context.Context, payload []byte) (InstallSummary, error) {
	var sum InstallSummary
	var err error
	if queueevent.FromQueue(payload) {
		sum, err = h.handleQueue(ctx, payload)
	} else {
		sum, err = h.handleEvents(ctx, payload)
	}
	if err != nil && !fault.Is(err, fault.Invalid) {
		h.Logger.ErrorContext(ctx, "install failed", slog.String("error", err.Error()), slog.String("class", fault.KindOf(err).String()),
			slog.String("code", fault.CodeOf(err)))
	}
	return sum, err
}

// handleEvents processes ECS events (see Handle).
func (h *Install) handleEvents(ctx context.Context, payload []byte) (InstallSummary, error) {
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
			Trigger:       string(c.Trigger),
			Via:           job.TrimOrigin(c.EventID),
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
	l, err := h.ledger(ctx, s)
	if err != nil {
		return sum, err
	}
	svc := h.installService(s, l)
	var res install.Result
	for _, region := range slices.Sorted(maps.Keys(ready)) {
		res.Merge(svc.Announce(ctx, region, ready[region], true))
	}
	for _, region := range slices.Sorted(maps.Keys(later)) {
		res.Merge(svc.Announce(ctx, region, later[region], false))
	}
	res = h.pollService(s, l).Bind(ctx, res)
	sum.Joined = len(res.Joined)
	sum.Outcomes = countOutcomes(res.Outcomes)
	sent, err := h.deliver(ctx, s, res)
	sum.Queued = sent
	if err != nil {
		return sum, err
	}
	log.InfoContext(ctx, "install done", slog.Int("events", sum.Events), slog.Int("accepted", sum.Accepted),
		slog.Int("ignored", sum.Ignored), slog.Int("rejected", len(sum.Rejected)), slog.Int("joined", sum.Joined), slog.Int("queued", sent))
	return sum, nil
}

// handleQueue processes a batch of the install queue: install-retry
// messages (announcements a sweep found, readiness retries, reinstalls),
// Group messages at a time, their instances of one region sharing
// InstallBackupClients calls. What the batch holds of other kinds goes on
// to the job queue. Once less than Reserve of the invocation is left, the
// messages not handled yet go back on the queue.
func (h *Install) handleQueue(ctx context.Context, payload []byte) (InstallSummary, error) {
	log := h.Logger
	b := h.decodeBatch(ctx, h.Cloud, payload, job.ReaderVersion, h.Cloud.InstallQueue)
	sum := InstallSummary{Messages: len(b.msgs), DeadLettered: b.deadLettered, PutBack: b.deferred}
	failed := b.failed
	var res install.Result
	var work []job.Message
	for _, m := range b.msgs {
		if m.Kind != job.KindInstallRetry {
			res.Next = append(res.Next, install.Next{Message: m, Delay: time.Second})
			continue
		}
		work = append(work, m)
	}
	s := newSession(h.Cloud)
	l, err := h.ledger(ctx, s)
	if err != nil {
		return sum, err
	}
	svc := h.installService(s, l)
	short := timeShort(ctx, h.Reserve)
	for handled := 0; len(work) > 0; handled++ {
		if handled > 0 && short() {
			for _, m := range work {
				res.Next = append(res.Next, install.Next{Message: m, Delay: time.Second})
			}
			sum.PutBack += len(work)
			log.WarnContext(ctx, "time running out: messages put back", slog.Int("messages", len(work)))
			break
		}
		n := min(len(work), max(h.Group, 1))
		byRegion := map[string][]job.Instance{}
		retries := map[string]int{}
		for _, m := range work[:n] {
			byRegion[m.Region] = append(byRegion[m.Region], m.Instances...)
			retries[m.Region] = max(retries[m.Region], m.Retries)
		}
		for _, region := range slices.Sorted(maps.Keys(byRegion)) {
			res.Merge(svc.Install(ctx, region, byRegion[region], retries[region]))
		}
		work = work[n:]
	}
	res = h.pollService(s, l).Bind(ctx, res)
	sum.Joined = len(res.Joined)
	sum.Outcomes = countOutcomes(res.Outcomes)
	sent, err := h.deliver(ctx, s, res)
	sum.Queued = sent
	if err != nil {
		failed = append(failed, err)
	}
	log.InfoContext(ctx, "install done", slog.Int("messages", sum.Messages), slog.Int("deadLettered", len(sum.DeadLettered)),
		slog.Int("joined", sum.Joined), slog.Int("queued", sent), slog.Int("putBack", sum.PutBack))
	if len(failed) > 0 {
		return sum, fmt.Errorf("install: %d of its steps failed (the trigger will redeliver): %w", len(failed), errors.Join(failed...))
	}
	return sum, nil
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
