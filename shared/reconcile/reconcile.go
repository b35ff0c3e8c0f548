// Package reconcile is the sweep behind the reconcile function: it lists the
// running ECS instances of a region, asks HBR which of them already have a
// backup client (and, with a backup policy, a binding), applies the same
// scope rules as the install step, reads the instance ledger for claims
// whose lease passed with no record, and turns the instances still missing
// a client (or a binding, or a record) into install-retry messages for the
// install function — announcements it claims like an event's — spread over
// time at a bounded rate. It also counts what it saw into a coverage
// [Report]: covered, installing, excluded (per rule), missing, unbound,
// unrecorded and stale claims. The same sweep is the backfill for instances
// that existed before the deployment, and a dry run only reports.
//
// A sweep covers a region of any size: it reads the ledger of the
// unrecorded instances, then lists the instances a page at a time and,
// when Stop says the invocation's time is running out, returns a
// continuation (a job.KindSweep message carrying the listing token, where
// the ledger pass stands and the running totals) that Continue picks up in
// the next invocation. The last part's Report covers the whole region.
//
// Like package install, the Service makes read-only cloud calls but sends
// and logs nothing: it returns the messages in an install.Result and the
// caller (package handler) delivers them. Each read call that fails
// transiently (fault.Retryable: throttling, 5xx, network trouble,
// timeouts) is made again a few times with a short jittered back-off
// (ReadAttempts, RetryBase); a call that still fails fails the part. Sweep
// returns the listing errors as the adapters classified them (shared/fault:
// Retryable for throttling, 5xx and network trouble, Permanent or Invalid
// otherwise), naming the call, and an Invalid error for a malformed region
// or sweep id; nothing is enqueued then.
package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fanout"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/protect"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/scope"
)

// Lister lists a region's instances by status, a page at a time
// (ecs.Client satisfies it).
type Lister interface {
	ListInstancesPage(ctx context.Context, status, token string) (ecs.Page, error)
}

// BindingLister says which backup policy each of up to MaxClientIDs
// instances is bound to (hbr.Client satisfies it).
type BindingLister interface {
	DescribePolicyBindings(ctx context.Context, instanceIDs []string) (map[string]string, error)
}

// ClientLister lists the backup clients of up to MaxClientIDs instances
// (hbr.Client satisfies it).
type ClientLister interface {
	DescribeBackupClients(ctx context.Context, instanceIDs []string) ([]hbr.BackupClient, error)
}

const (
	// MaxClientIDs is the most instance ids one DescribeBackupClients call
	// is given; Sweep chunks longer lists.
	MaxClientIDs = hbr.MaxDescribeIDs
	// MaxDelay is the longest delay MNS accepts on a message (7 days); the
	// spread of a very large sweep is capped there.
	MaxDelay = 7 * 24 * time.Hour
	// EventSource is the source the job ids of a sweep are derived from
	// (job.JobID), and OriginPrefix prefixes their origin event id.
	EventSource  = "reconcile"
	OriginPrefix = "reconcile:"
	// MaxSweepIDLen bounds a sweep id.
	MaxSweepIDLen = 64
	// SweepLifetime bounds a sweep: a continuation received later than
	// this after the sweep started ends it (the next daily sweep starts
	// afresh).
	SweepLifetime = 23 * time.Hour
)

// Client statuses the sweep acts on.
const (
	statusActivated  = "ACTIVATED"
	statusInstalling = "INSTALLING"
)

// ruleInvalidID is the Excluded key of listed instances whose id the job
// schema does not accept (job.ValidInstanceID), so they cannot be enqueued.
const ruleInvalidID = "instance id not accepted by the job schema"

var sweepIDRule = ident.Rule{Min: 1, Max: MaxSweepIDLen, First: "A-Za-z0-9", Rest: "A-Za-z0-9_.:+-"}

// ValidSweepID reports whether id may name a sweep: 1..64 letters, digits
// and "_.:+-", starting with a letter or digit (an RFC 3339 time or an FC
// request id fits).
func ValidSweepID(id string) bool { return sweepIDRule.Valid(id) }

// Service runs a sweep. The zero value is not usable: ECS and HBR are
// required.
type Service struct {
	// ECS returns the instance lister for a region.
	ECS func(ctx context.Context, region string) (Lister, error)
	// HBR returns the client lister for a region.
	HBR func(ctx context.Context, region string) (ClientLister, error)
	// Scope are the include/exclude rules (the install step applies the
	// same ones again when the job is run).
	Scope scope.Rules
	// Policy supplies ReadinessTimeout, the readiness window each enqueued
	// instance gets from the moment its message is delivered.
	Policy install.Policy
	// Rate is how many instances per minute the sweep hands to the install
	// function:
	// message k (of at most job.MaxInstances instances) is delayed by
	// k·MaxInstances·60s/Rate. Rate ≤ 0 means no spreading.
	Rate int
	// Max bounds the instances one sweep looks at, over all its parts (the
	// first Max running instances listed); Max ≤ 0 means no bound.
	Max int
	// Stop is asked after each page, and before each ledger read of the
	// ledger pass past its first Workers, whether the invocation must end
	// now (its time is running out); the sweep then returns a
	// continuation. It is asked by one goroutine at a time. Nil never
	// stops.
	Stop func() bool
	// Protect says which backup policy each instance is bound to. When it
	// names any, covered instances (ACTIVATED) that should be bound are
	// checked with Bindings, counted as Unbound when they are not, and
	// announced like missing ones (the install function finds the client
	// ACTIVATED and binds it).
	Protect protect.Settings
	// Bindings returns the binding lister for a region; needed with
	// Protect.
	Bindings func(ctx context.Context, region string) (BindingLister, error)
	// Ledger, when set, is read before the listing starts (the ledger
	// pass: in the sweep's first part, and in the next ones when Stop cut
	// it short) for claims whose lease passed without a final record (an
	// owner's chain died): they are queued like missing instances, and the
	// install function takes them over.
	Ledger Ledger
	// Workers bounds the ledger reads a sweep makes at once (the
	// unrecorded instances are read one by one); ≤ 0 means
	// fanout.DefaultWorkers.
	Workers int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Sleep pauses between the retries of a read call that failed
	// retryably (see ReadAttempts); nil means time.Sleep. Jitter spreads
	// each pause; nil means uniformly over [d/2, d].
	Sleep  func(time.Duration)
	Jitter func(time.Duration) time.Duration
}

// Report is a sweep's coverage report. Total = Covered + Installing +
// Excluded + Missing (each instance is counted once, in that order of
// precedence).
type Report struct {
	Region  string `json:"region"`
	SweepID string `json:"sweepId"`
	DryRun  bool   `json:"dryRun"`
	// Listed is how many running instances ECS listed; Total is how many
	// the sweep looked at (fewer when Truncated by Service.Max).
	Listed int `json:"listed"`
	Total  int `json:"total"`
	// Covered have an ACTIVATED backup client.
	Covered int `json:"covered"`
	// Installing have a client being installed (by another job, or outside
	// this system); they are not enqueued.
	Installing int `json:"installing"`
	// Missing have no usable client and are in scope; Failed counts those
	// of them whose client is in another state (INSTALL_FAILED,
	// DEACTIVATED, UNKNOWN, …): an earlier install did not work.
	Missing int `json:"missing"`
	Failed  int `json:"failed"`
	// Enqueued is how many missing instances were put in job messages (0 in
	// a dry run); Messages is how many messages.
	Enqueued int `json:"enqueued"`
	Messages int `json:"messages"`
	// Excluded counts the instances the scope rules leave out, per rule
	// (e.g. "exclude tag backup=off").
	Excluded map[string]int `json:"excluded"`
	// ClientStatus counts the clients found, per status (the client chosen
	// for each instance: ACTIVATED over INSTALLING over the rest).
	ClientStatus map[string]int `json:"clientStatus"`
	// Unbound counts the covered instances that have a backup policy due
	// (BACKUP_POLICY_ID or a BACKUP_POLICY_BY_TAG term) but no binding;
	// BindQueued how many of them were queued to be bound (0 in a dry run).
	Unbound    int `json:"unbound"`
	BindQueued int `json:"bindQueued"`
	// Unrecorded counts the ledger's instances whose latest generation has
	// no final record yet; StaleClaims those of them whose lease has passed
	// (their owner's chain died), queued to be taken over (not in a dry
	// run).
	Unrecorded  int `json:"unrecorded"`
	StaleClaims int `json:"staleClaims"`
	// Retries counts the read calls (listing pages, client and binding
	// lookups, ledger reads) made again after a transient failure
	// (throttling, 5xx, a timeout).
	Retries int `json:"retries"`
	// Truncated says that more running instances were listed than Max.
	Truncated bool `json:"truncated"`
	// SpreadSeconds is the delay of the last message: how long the poller
	// takes to receive every enqueued instance.
	SpreadSeconds float64 `json:"spreadSeconds"`
	// StartedAt is when the sweep's first part ran; Parts counts the
	// invocations so far; Complete says the listing reached its end (or
	// Max): the totals are the whole region's.
	StartedAt time.Time `json:"startedAt"`
	Parts     int       `json:"parts"`
	Complete  bool      `json:"complete"`
}

// ExcludedTotal sums Excluded.
func (r Report) ExcludedTotal() int {
	n := 0
	for _, v := range r.Excluded {
		n += v
	}
	return n
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Ledger is what a sweep reads of the instance ledger (*ledger.Ledger
// satisfies it).
type Ledger interface {
	Scan(ctx context.Context, region string, visit func(ledger.Summary) error) error
	Load(ctx context.Context, region, instance string) (ledger.State, error)
}

// stale is a part's ledger pass: it returns the instances of the region
// whose latest ledger generation has no final record and whose lease has
// passed. It scans the region's keys and reads the ledgers of the
// unrecorded instances that come after after in the scan's order ("" for
// all), Workers at a time. From the Workers-th read on it asks stop (nil:
// never), one read at a time, before each read; once stop says the
// invocation's time is running out it reads no more, and next is the last
// instance read: the pass continues after it in the next part. next is ""
// when the pass is done.
func (s *Service) stale(ctx context.Context, rep *Report, after string, stop func() bool) (ids []string, next string, err error) {
	if s.Ledger == nil {
		return nil, "", nil
	}
	var open []string
	n, err := s.retry(ctx, "scan the instance ledger of "+rep.Region, func() error {
		open = open[:0]
		return s.Ledger.Scan(ctx, rep.Region, func(sum ledger.Summary) error {
			if !sum.Final && (after == "" || scanOrder(sum.Instance, after) > 0) {
				open = append(open, sum.Instance)
			}
			return nil
		})
	})
	rep.Retries += n
	if err != nil {
		return nil, "", err
	}
	workers := s.Workers
	if workers <= 0 {
		workers = fanout.DefaultWorkers
	}
	states := make([]ledger.State, len(open))
	errs := make([]error, len(open))
	retries := make([]int, len(open))
	// Each read takes the next instance in order, so the instances read
	// are always the first done of open, whenever the pass stops.
	var mu sync.Mutex
	done, stopped := 0, false
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		// The first reads of a part are always made, so that a sweep
		// moves on however little time a part has.
		if !stopped && done >= workers && stop != nil {
			stopped = stop()
		}
		if stopped || done >= len(open) {
			return 0, false
		}
		done++
		return done - 1, true
	}
	var failed atomic.Bool
	fanout.Each(len(open), workers, func(int) {
		i, ok := take()
		if !ok || failed.Load() {
			return
		}
		retries[i], errs[i] = s.retry(ctx, "read the instance ledger of "+open[i], func() (err error) {
			states[i], err = s.Ledger.Load(ctx, rep.Region, open[i])
			return err
		})
		if errs[i] != nil {
			failed.Store(true) // the part fails anyway: no more reads
		}
	})
	for _, n := range retries {
		rep.Retries += n
	}
	for _, err := range errs {
		if err != nil {
			return nil, "", err
		}
	}
	if done < len(open) {
		next = open[done-1] // done ≥ 1: the first reads are always made
	}
	now := s.now()
	for i, st := range states[:done] {
		if st.Generation > 0 && st.Final == nil && now.After(st.LeaseUntil()) && job.ValidInstanceID(open[i]) {
			ids = append(ids, open[i])
		}
	}
	rep.Unrecorded += done
	rep.StaleClaims += len(ids)
	return ids, next, nil
}

// scanOrder compares two instance ids in the order ledger.Scan visits
// them, the order of their keys ("<instance>/g…"): "i-a-b" comes before
// "i-a", since '-' sorts before '/'.
func scanOrder(a, b string) int {
	return strings.Compare(a+"/", b+"/")
}

// Part is what one invocation of a sweep produced.
type Part struct {
	// Report holds the running totals; when Report.Complete they cover
	// the whole region.
	Report Report
	// Result holds this part's install-retry messages.
	Result install.Result
	// Next continues the sweep in another invocation (a job.KindSweep
	// message); nil when the sweep is complete.
	Next *job.Message
}

// Sweep starts a sweep of the running instances of region and, unless
// dryRun, builds install-retry messages for the missing ones. sweepID names
// the sweep: each instance's job id is job.JobID(EventSource, sweepID, id),
// so a sweep redelivered with the same id produces the same job ids. at is
// when the sweep was triggered; it is the job's event time, which decides
// whether a client found later predates the job (ALREADY_INSTALLED) or was
// installed by it (INSTALLED).
//
// Errors: Invalid for a malformed region or sweep id (no call); otherwise
// the listing errors as the adapters classified them. On error the report
// holds what was counted so far and nothing is to be enqueued.
func (s *Service) Sweep(ctx context.Context, region, sweepID string, at time.Time, dryRun bool) (Part, error) {
	const op = "reconcile.Sweep"
	rep := Report{Region: region, SweepID: sweepID, DryRun: dryRun, Excluded: map[string]int{}, ClientStatus: map[string]int{},
		StartedAt: s.now()}
	switch {
	case !ident.Region.Valid(region):
		return Part{Report: rep}, fault.Invalidf(op, "region %q is not a region id", region)
	case !ValidSweepID(sweepID):
		return Part{Report: rep}, fault.Invalidf(op, "sweep id %q: want 1..%d letters, digits or _.:+- starting with a letter or digit", sweepID, MaxSweepIDLen)
	}
	return s.run(ctx, rep, at, "", pass{pending: true})
}

// Continue runs the next part of the sweep that m (a job.KindSweep message
// made by an earlier part) continues. Errors: Invalid when m is not a sweep
// continuation, its report does not read, or the sweep is older than
// SweepLifetime or has run job.MaxSweepParts parts; otherwise as Sweep.
func (s *Service) Continue(ctx context.Context, m job.Message) (Part, error) {
	const op = "reconcile.Continue"
	if m.Kind != job.KindSweep || m.Sweep == nil {
		return Part{}, fault.Invalidf(op, "not a sweep continuation: %s", m.Describe())
	}
	st := m.Sweep
	var tot totals
	if len(st.Report) > 0 {
		if err := json.Unmarshal(st.Report, &tot); err != nil {
			return Part{}, fault.Invalidf(op, "sweep %s: running totals do not read: %v", st.ID, err)
		}
	}
	rep := tot.Report
	rep.Region, rep.SweepID, rep.DryRun, rep.Parts = m.Region, st.ID, st.DryRun, st.Part
	if rep.Excluded == nil {
		rep.Excluded = map[string]int{}
	}
	if rep.ClientStatus == nil {
		rep.ClientStatus = map[string]int{}
	}
	if rep.StartedAt.IsZero() {
		rep.StartedAt = st.At
	}
	switch {
	case !ident.Region.Valid(m.Region) || !ValidSweepID(st.ID):
		return Part{Report: rep}, fault.Invalidf(op, "sweep %q of region %q: malformed", st.ID, m.Region)
	case !s.now().Before(m.Deadline):
		return Part{Report: rep}, fault.Invalidf(op, "sweep %s started at %s is past its deadline %s: the next sweep starts afresh",
			st.ID, rep.StartedAt.Format(time.RFC3339), m.Deadline.Format(time.RFC3339))
	case st.Part >= job.MaxSweepParts-1:
		return Part{Report: rep}, fault.Invalidf(op, "sweep %s has run %d parts, the most allowed", st.ID, st.Part)
	case (tot.LedgerAfter != "") != (st.Token == startToken):
		return Part{Report: rep}, fault.Invalidf(op, "sweep %s: a continuation of the ledger pass needs both its token and where it stands", st.ID)
	}
	if tot.LedgerAfter != "" {
		return s.run(ctx, rep, st.At, "", pass{pending: true, after: tot.LedgerAfter})
	}
	return s.run(ctx, rep, st.At, st.Token, pass{})
}

// startToken is the listing token of a continuation whose listing has not
// started: its part continues the ledger pass (totals.LedgerAfter), then
// lists from the first page. A job.Sweep needs a token, and ECS's
// NextTokens are hex strings.
const startToken = "reconcile:ledger-pass"

// totals is what a continuation carries in job.Sweep.Report: the running
// Report and, while the ledger pass is not done, where it stands.
type totals struct {
	Report
	// LedgerAfter is the last instance the ledger pass read: the next part
	// reads on after it. Empty once the pass is done.
	LedgerAfter string `json:"ledgerAfter,omitempty"`
}

// pass is where a part stands in the ledger pass: pending until it is
// done, continuing after the instance after ("" from the start).
type pass struct {
	pending bool
	after   string
}

// run makes the ledger pass when it is pending, then, unless Stop ended
// the pass, lists pages from token on until the listing ends, Max is
// reached or Stop says to stop, and counts and enqueues what it finds.
func (s *Service) run(ctx context.Context, rep Report, at time.Time, token string, lp pass) (Part, error) {
	rep.Parts++
	cl, err := s.lister(ctx, rep.Region)
	if err != nil {
		return Part{Report: rep}, err
	}
	var missing, unbound []string
	if lp.pending {
		stale, after, err := s.stale(ctx, &rep, lp.after, s.Stop)
		if err != nil {
			return Part{Report: rep}, err
		}
		missing = append(missing, stale...)
		if after != "" {
			// The time is up: the pass goes on, and the listing starts,
			// in the next part.
			return s.end(rep, at, missing, nil, startToken, after)
		}
	}
	for pages := 0; ; pages++ {
		// At least one page per part, so a sweep always moves on.
		if pages > 0 && token != "" && s.Stop != nil && s.Stop() {
			break
		}
		var page ecs.Page
		n, err := s.retry(ctx, "list the running instances of "+rep.Region, func() (err error) {
			page, err = cl.ListInstancesPage(ctx, ecs.StatusRunning, token)
			return err
		})
		rep.Retries += n
		if err != nil {
			return Part{Report: rep}, err
		}
		instances := dedupe(page.Instances)
		rep.Listed += len(instances)
		if s.Max > 0 && rep.Total+len(instances) >= s.Max {
			rep.Truncated = rep.Total+len(instances) > s.Max || page.NextToken != ""
			instances = instances[:s.Max-rep.Total]
			page.NextToken = ""
		}
		rep.Total += len(instances)
		got, loose, err := s.count(ctx, &rep, instances)
		if err != nil {
			return Part{Report: rep}, err
		}
		missing = appendNew(missing, got...)
		unbound = append(unbound, loose...)
		if token = page.NextToken; token == "" {
			break
		}
	}
	return s.end(rep, at, missing, unbound, token, "")
}

// end builds a part's messages for the missing and unbound instances and,
// unless the listing is done (token ""), the continuation that goes on
// from token (and, while the ledger pass is not done, after ledgerAfter).
func (s *Service) end(rep Report, at time.Time, missing, unbound []string, token, ledgerAfter string) (Part, error) {
	part := Part{}
	if !rep.DryRun && len(missing) > 0 {
		part.Result = s.enqueue(rep.Region, rep.SweepID, at, missing, rep.Messages, rep.StartedAt)
		for _, n := range part.Result.Next {
			rep.Enqueued += len(n.Message.Instances)
			rep.SpreadSeconds = max(rep.SpreadSeconds, n.Delay.Seconds()+s.now().Sub(rep.StartedAt).Seconds())
		}
		rep.Messages += len(part.Result.Next)
	}
	if !rep.DryRun && len(unbound) > 0 {
		// Announced like missing instances: the install function finds the
		// client ACTIVATED and binds it.
		binds := s.enqueue(rep.Region, rep.SweepID, at, unbound, rep.Messages, rep.StartedAt)
		for _, n := range binds.Next {
			rep.BindQueued += len(n.Message.Instances)
		}
		rep.Messages += len(binds.Next)
		part.Result.Merge(binds)
	}
	if token == "" {
		rep.Complete = true
		part.Report = rep
		return part, nil
	}
	next, err := s.continuation(rep, at, token, ledgerAfter)
	if err != nil {
		return Part{Report: rep}, err
	}
	part.Report, part.Next = rep, &next
	return part, nil
}

// continuation is the message that carries the sweep to its next part.
func (s *Service) continuation(rep Report, at time.Time, token, ledgerAfter string) (job.Message, error) {
	body, err := json.Marshal(totals{Report: rep, LedgerAfter: ledgerAfter})
	if err != nil {
		return job.Message{}, fault.Wrap("reconcile.continuation", fault.Invalid, "", err)
	}
	now := s.now()
	return job.Message{
		Version: job.SweepVersion, Kind: job.KindSweep, Region: rep.Region,
		Deadline: rep.StartedAt.Add(SweepLifetime), OriginEventID: OriginPrefix + rep.SweepID, SentAt: now,
		Sweep: &job.Sweep{ID: rep.SweepID, At: at, DryRun: rep.DryRun, Token: token, Part: rep.Parts, Report: body},
	}, nil
}

func (s *Service) lister(ctx context.Context, region string) (Lister, error) {
	if s.ECS == nil {
		return nil, fault.Invalidf("reconcile.list", "no ECS client configured")
	}
	cl, err := s.ECS(ctx, region)
	if err != nil {
		return nil, fmt.Errorf("build the ECS client: %w", err)
	}
	return cl, nil
}

// dedupe drops instances without an id and repeats within a page.
func dedupe(in []ecs.Instance) []ecs.Instance {
	seen := make(map[string]bool, len(in))
	out := in[:0:0]
	for _, x := range in {
		if x.ID == "" || seen[x.ID] {
			continue
		}
		seen[x.ID] = true
		out = append(out, x)
	}
	return out
}

// count classifies instances into rep and returns the missing ones' ids and
// the covered ones that should be bound to a backup policy and are not.
func (s *Service) count(ctx context.Context, rep *Report, instances []ecs.Instance) (missing, unbound []string, err error) {
	clients, err := s.clients(ctx, rep, instances)
	if err != nil {
		return nil, nil, err
	}
	var due []string
	for _, in := range instances {
		bc, found := clients[in.ID]
		if found {
			rep.ClientStatus[bc.Status]++
		}
		switch {
		case found && bc.Status == statusActivated:
			rep.Covered++
			if _, ok := s.Protect.PolicyFor(in.Tags); ok && s.Protect.Enabled() {
				due = append(due, in.ID)
			}
			continue
		case found && bc.Status == statusInstalling:
			rep.Installing++
			continue
		}
		if ok, rule := s.Scope.Decide(in); !ok {
			rep.Excluded[rule]++
			continue
		}
		if !job.ValidInstanceID(in.ID) {
			rep.Excluded[ruleInvalidID]++
			continue
		}
		rep.Missing++
		if found {
			rep.Failed++
		}
		missing = append(missing, in.ID)
	}
	unbound, err = s.unbound(ctx, rep, due)
	if err != nil {
		return nil, nil, err
	}
	rep.Unbound += len(unbound)
	return missing, unbound, nil
}

// unbound returns the instances of ids that HBR lists no backup-policy
// binding for (MaxClientIDs a call, each retried when it fails
// transiently).
func (s *Service) unbound(ctx context.Context, rep *Report, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if s.Bindings == nil {
		return nil, fault.Invalidf("reconcile.unbound", "backup policies are configured but no binding lister is")
	}
	bl, err := s.Bindings(ctx, rep.Region)
	if err != nil {
		return nil, fmt.Errorf("build the HBR client: %w", err)
	}
	var out []string
	for chunk := range slices.Chunk(ids, MaxClientIDs) {
		var bound map[string]string
		n, err := s.retry(ctx, fmt.Sprintf("describe the policy bindings of %d instances", len(chunk)), func() (err error) {
			bound, err = bl.DescribePolicyBindings(ctx, chunk)
			return err
		})
		rep.Retries += n
		if err != nil {
			return nil, err
		}
		for _, id := range chunk {
			if bound[id] == "" {
				out = append(out, id)
			}
		}
	}
	return out, nil
}

// appendNew appends the ids not in list already.
func appendNew(list []string, ids ...string) []string {
	seen := make(map[string]bool, len(list))
	for _, id := range list {
		seen[id] = true
	}
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			list = append(list, id)
		}
	}
	return list
}

// clients asks HBR for the clients of instances, MaxClientIDs ids a call
// (each retried when it fails transiently), and keeps one per instance:
// ACTIVATED over INSTALLING over the rest.
func (s *Service) clients(ctx context.Context, rep *Report, instances []ecs.Instance) (map[string]hbr.BackupClient, error) {
	out := map[string]hbr.BackupClient{}
	if len(instances) == 0 {
		return out, nil
	}
	if s.HBR == nil {
		return nil, fault.Invalidf("reconcile.clients", "no HBR client configured")
	}
	cl, err := s.HBR(ctx, rep.Region)
	if err != nil {
		return nil, fmt.Errorf("build the HBR client: %w", err)
	}
	ids := make([]string, len(instances))
	for i, in := range instances {
		ids[i] = in.ID
	}
	for chunk := range slices.Chunk(ids, MaxClientIDs) {
		var got []hbr.BackupClient
		n, err := s.retry(ctx, fmt.Sprintf("describe the backup clients of %d instances", len(chunk)), func() (err error) {
			got, err = cl.DescribeBackupClients(ctx, chunk)
			return err
		})
		rep.Retries += n
		if err != nil {
			return nil, err
		}
		for _, bc := range got {
			if prev, ok := out[bc.InstanceID]; !ok || rank(bc.Status) < rank(prev.Status) {
				out[bc.InstanceID] = bc
			}
		}
	}
	return out, nil
}

func rank(status string) int {
	switch status {
	case statusActivated:
		return 0
	case statusInstalling:
		return 1
	}
	return 2
}

// enqueue builds one install-retry message per job.MaxInstances instances
// to announce to the install function (missing, unbound, or held by a
// stale claim), each marked as a sweep's announcement so that it reopens a
// generation recorded before the sweep. The sweep's messages are numbered from first on over all its
// parts, and message k is due Delay(k) after the sweep started, so the
// spread continues across parts at Rate. Each instance's readiness
// deadline counts from its message's delivery, so a long spread does not
// eat into its readiness window.
func (s *Service) enqueue(region, sweepID string, at time.Time, ids []string, first int, started time.Time) install.Result {
	now := s.now()
	installer := &install.Service{Policy: s.Policy, Now: func() time.Time { return now }}
	var res install.Result
	for k, chunk := range slices.Collect(slices.Chunk(ids, job.MaxInstances)) {
		delay := max(s.Delay(first+k)-now.Sub(started), time.Second)
		instances := make([]job.Instance, len(chunk))
		for i, id := range chunk {
			instances[i] = job.Instance{
				ID:            id,
				JobID:         job.JobID(EventSource, sweepID, id),
				OriginEventID: OriginPrefix + sweepID,
				EventTime:     at,
				FirstSeen:     now,
				ReadyBy:       now.Add(delay + s.Policy.ReadinessTimeout),
				Sweep:         true,
			}
		}
		res.Merge(installer.Defer(region, instances, delay))
	}
	return res
}

// Delay is the delay of the k-th message (k from 0) of a sweep:
// k·job.MaxInstances·60s/Rate, at least one second and at most MaxDelay.
func (s *Service) Delay(k int) time.Duration {
	d := time.Second
	if s.Rate > 0 && k > 0 {
		d = time.Duration(k) * job.MaxInstances * time.Minute / time.Duration(s.Rate)
	}
	return min(max(d, time.Second), MaxDelay)
}
