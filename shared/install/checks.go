package install

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fanout"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
)

// inScope describes the chunk's instances in ECS and applies the scope
// rules at install time (tags are often added after an instance is
// created). Out of scope: SKIPPED with the rule. Not listed: looked at again
// (GONE at the deadline). In audit mode a stopped instance waits too, since
// no install call will say it is not running.
func (s *Service) inScope(ctx context.Context, region string, c []job.Instance, retries int) ([]job.Instance, Result) {
	var res Result
	now := s.now()
	inv, err := s.inventory(ctx, region)
	var found []ecs.Instance
	if err == nil {
		found, err = inv.DescribeInstances(ctx, ids(c))
	}
	if err != nil {
		if fault.Is(err, fault.Retryable) || fault.IsContext(err) {
			return nil, s.transient(region, c, retries+1, fault.CodeOf(err), now)
		}
		for _, in := range c {
			r := record(region, in, outcome.Failed, orUnknown(fault.CodeOf(err)), "cannot evaluate the scope rules: ECS DescribeInstances failed", "")
			r.Detail = err.Error()
			res.Outcomes = append(res.Outcomes, r)
		}
		return nil, res
	}
	byID := map[string]ecs.Instance{}
	for _, e := range found {
		byID[e.ID] = e
	}
	var rest, missing, stopped []job.Instance
	for _, in := range c {
		e, ok := byID[in.ID]
		switch {
		case !ok:
			missing = append(missing, in)
			continue
		case s.Audit && !strings.EqualFold(e.Status, ecs.StatusRunning):
			stopped = append(stopped, in)
			continue
		}
		if inScope, rule := s.Scope.Decide(e); !inScope {
			res.Outcomes = append(res.Outcomes, record(region, in, outcome.Skipped, "OutOfScope", "excluded by "+rule, ""))
			continue
		}
		rest = append(rest, in)
	}
	if len(missing) > 0 {
		res.Merge(s.wait(region, missing, CodeInstanceNotFound, now))
	}
	if len(stopped) > 0 {
		res.Merge(s.wait(region, stopped, CodeInstanceNotRunning, now))
	}
	return rest, res
}

// wouldInstall is the audit mode's install: an instance whose Cloud
// Assistant is up would have been installed.
func (s *Service) wouldInstall(ctx context.Context, region string, c []job.Instance, retries int) Result {
	var res Result
	now := s.now()
	inv, err := s.inventory(ctx, region)
	var ready map[string]bool
	if err == nil {
		ready, err = inv.CloudAssistantReady(ctx, ids(c))
	}
	if err != nil {
		if fault.Is(err, fault.Retryable) || fault.IsContext(err) {
			return s.transient(region, c, retries+1, fault.CodeOf(err), now)
		}
		for _, in := range c {
			r := record(region, in, outcome.Failed, orUnknown(fault.CodeOf(err)), "cannot check Cloud Assistant: ECS DescribeCloudAssistantStatus failed", "")
			r.Detail = err.Error()
			res.Outcomes = append(res.Outcomes, r)
		}
		return res
	}
	var waiting []job.Instance
	for _, in := range c {
		if !ready[in.ID] {
			waiting = append(waiting, in)
			continue
		}
		res.Outcomes = append(res.Outcomes, record(region, in, outcome.WouldInstall, "",
			"audit mode: in scope, no backup client, Cloud Assistant ready", ""))
	}
	if len(waiting) > 0 {
		res.Merge(s.wait(region, waiting, CodeCloudAssistDown, now))
	}
	return res
}

func (s *Service) inventory(ctx context.Context, region string) (Inventory, error) {
	if s.ECS == nil {
		return nil, fault.Invalidf("install.inventory", "scope rules or audit mode need an ECS client, and none is configured")
	}
	return s.ECS(ctx, region)
}

// ready asks ECS whether each instance's Cloud Assistant is up before HBR
// is asked anything: an instance announced by RunInstances or by its Running
// state change usually is not yet, and InstallBackupClients would only
// refuse it. An instance ECS reports not ready waits for the readiness
// delay; one ECS does not answer for is left to HBR to judge. When the check
// fails transiently the chunk backs off; when it fails for good (say, no
// ecs:DescribeCloudAssistantStatus permission) the chunk goes on without it:
// the check only saves calls.
func (s *Service) ready(ctx context.Context, region string, c []job.Instance, retries int) ([]job.Instance, Result) {
	var res Result
	inv, err := s.ECS(ctx, region)
	var ready map[string]bool
	if err == nil {
		ready, err = inv.CloudAssistantReady(ctx, ids(c))
	}
	switch {
	case err == nil:
	case fault.Is(err, fault.Retryable) || fault.IsContext(err):
		return nil, s.transient(region, c, retries+1, fault.CodeOf(err), s.now())
	default:
		return c, res
	}
	var rest, waiting []job.Instance
	for _, in := range c {
		if up, answered := ready[in.ID]; answered && !up {
			waiting = append(waiting, in)
			continue
		}
		rest = append(rest, in)
	}
	if len(waiting) > 0 {
		res.Merge(s.wait(region, waiting, CodeCloudAssistDown, s.now()))
	}
	return rest, res
}

// Backup-client statuses DescribeBackupClients reports (HBR 2017-09-08).
const (
	ClientRegistered      = "REGISTERED"
	ClientActivated       = "ACTIVATED"
	ClientDeactivated     = "DEACTIVATED"
	ClientInstalling      = "INSTALLING"
	ClientInstallFailed   = "INSTALL_FAILED"
	ClientNotInstalled    = "NOT_INSTALLED"
	ClientUpgrading       = "UPGRADING"
	ClientUpgradeFailed   = "UPGRADE_FAILED"
	ClientUninstalling    = "UNINSTALLING"
	ClientUninstallFailed = "UNINSTALL_FAILED"
	ClientStopped         = "STOPPED"
	ClientUnknown         = "UNKNOWN"
)

// ClientAction is what the existing-client check does with a client found
// before this job installed anything.
type ClientAction string

const (
	// ActionDone: the client works; the job ends (ALREADY_INSTALLED).
	ActionDone ClientAction = "done"
	// ActionWait: the client is on its way somewhere; look again after the
	// readiness delay, for as long as an install task may run.
	ActionWait ClientAction = "wait"
	// ActionHold: an operator's choice; end as SKIPPED naming the status,
	// unless REINSTALL_STATUSES lists it.
	ActionHold ClientAction = "hold"
	// ActionInstall: no working client; install.
	ActionInstall ClientAction = "install"
)

// ClientActions is the decision for every status DescribeBackupClients can
// report (the README's table is this map). A status not listed is installed
// over, as before statuses were told apart.
var ClientActions = map[string]ClientAction{
	ClientActivated:       ActionDone,
	ClientInstalling:      ActionWait,
	ClientUpgrading:       ActionWait,
	ClientRegistered:      ActionWait,
	ClientStopped:         ActionHold,
	ClientDeactivated:     ActionHold,
	ClientUninstalling:    ActionHold,
	ClientUninstallFailed: ActionHold,
	ClientInstallFailed:   ActionInstall,
	ClientUpgradeFailed:   ActionInstall,
	ClientNotInstalled:    ActionInstall,
	ClientUnknown:         ActionInstall,
}

// existing asks HBR which instances of the chunk already have a client, for
// the instances whose chain has not started an install yet (and those
// waiting for a client to settle), and decides with [ClientActions]:
// ACTIVATED ends the job as ALREADY_INSTALLED; INSTALLING, UPGRADING and
// REGISTERED are waited for (as long as an install task may run) and
// decided by what they become; STOPPED, DEACTIVATED, UNINSTALLING and
// UNINSTALL_FAILED end as SKIPPED naming the status (an operator's choice)
// unless Reinstall lists it; the rest are installed over. A client of any
// status and any age is decided so: it never silences an instance.
//
// Before a client found for a chain that has installed nothing is taken
// for another installer's, the ledger is asked: when the owner's generation
// holds an attempt already, the client is this job's own install, started
// by another delivery of the chain, which carries the instance on.
//
// When the check fails transiently the chunk is retried with back-off; when
// it fails for good the install goes ahead (the check only saves work).
func (s *Service) existing(ctx context.Context, cl Installer, region string, c []job.Instance, retries int) ([]job.Instance, Result) {
	var res Result
	var ask []string
	for _, in := range c {
		if lookFirst(in) {
			ask = append(ask, in.ID)
		}
	}
	if len(ask) == 0 {
		return c, res
	}
	clients, err := cl.DescribeBackupClients(ctx, ask)
	switch {
	case err == nil:
	case fault.Is(err, fault.Retryable) || fault.IsContext(err):
		// Installing blind now could start a second install next to one
		// another installer already started; a throttled check is retried
		// like a throttled install.
		return nil, s.transient(region, c, retries+1, fault.CodeOf(err), s.now())
	default:
		// Permanent (say, no hbr:DescribeBackupClients permission): the
		// check only saves work, so the install goes ahead.
		return c, res
	}
	byID := clientsByInstance(clients)
	var found []job.Instance
	for _, in := range c {
		if _, ok := byID[in.ID]; ok && lookFirst(in) {
			found = append(found, in)
		}
	}
	if len(found) == 0 {
		return c, res
	}
	theirs, r := s.notOurs(ctx, region, found)
	res.Merge(r)
	decide := map[string]bool{}
	for _, in := range theirs {
		decide[in.ID] = true
	}
	now := s.now()
	waits := map[string][]job.Instance{}
	var rest []job.Instance
	for _, in := range c {
		bc, ok := byID[in.ID]
		switch {
		case !ok || !lookFirst(in):
			rest = append(rest, in)
			continue
		case !decide[in.ID]:
			continue // decided by the ledger (notOurs)
		}
		status := strings.ToUpper(bc.Status)
		switch ClientActions[status] {
		case ActionDone:
			res.Outcomes = append(res.Outcomes, s.alreadyThere(region, in, bc))
		case ActionWait:
			code := waitCode(status)
			waits[code] = append(waits[code], s.awaitOther(in, now))
		case ActionHold:
			if s.Reinstall[status] {
				rest = append(rest, in)
				continue
			}
			res.Outcomes = append(res.Outcomes, Record(region, in, outcome.Skipped, status,
				fmt.Sprintf("client %s: set by an operator, left as it is (REINSTALL_STATUSES overrides)", status), "", bc.ClientID))
		default:
			rest = append(rest, in)
		}
	}
	for _, code := range slices.Sorted(maps.Keys(waits)) {
		res.Merge(s.wait(region, waits[code], code, now))
	}
	return rest, res
}

// notOurs keeps the instances whose client is not their own chain's
// install: those whose generation has no attempt in the ledger (or that
// have installed before, on a reinstall or a wait for a client to settle).
// For the others, another delivery of the job installed the client: it is
// followed when this delivery recorded the task, the chain ends when
// another follows it, and it waits while another is installing.
func (s *Service) notOurs(ctx context.Context, region string, found []job.Instance) ([]job.Instance, Result) {
	var res Result
	var check, keep []job.Instance
	for _, in := range found {
		if in.Attempts == 0 && in.Generation > 0 && !waitingOnClient(in.LastCode) {
			check = append(check, in)
		} else {
			keep = append(keep, in)
		}
	}
	states := make([]ledger.State, len(check))
	errs := make([]error, len(check))
	fanout.Each(len(check), s.Workers, func(i int) { states[i], errs[i] = s.Ledger.Load(ctx, region, check[i].ID) })
	now := s.now()
	var busy []job.Instance
	for i, in := range check {
		st, err := states[i], errs[i]
		switch {
		case err != nil && fault.Is(err, fault.Invalid):
			res.Invalid = append(res.Invalid, Rejected{Region: region, Instance: in, Err: err})
		case err != nil:
			res.Merge(s.transient(region, []job.Instance{in}, 1, orUnknown(fault.CodeOf(err)), now))
		case st.Generation != in.Generation || st.Final != nil:
			res.Dropped = append(res.Dropped, Drop{Region: region, Instance: in, Reason: "the ledger moved on: " + st.Describe()})
		case st.OwnTask() != nil && st.OwnTask().Via == in.Via:
			in.Attempts = st.Task.Attempt
			res.Next = append(res.Next, s.follow(region, in, *st.Task))
		case st.OwnTask() != nil:
			res.Dropped = append(res.Dropped, Drop{Region: region, Instance: in,
				Reason: fmt.Sprintf("another delivery of this job installed the client (task %s) and follows it", st.Task.TaskID)})
		case st.OwnIntent() != nil && now.Sub(st.Intent.At) < s.Policy.StaleIntent:
			busy = append(busy, in)
		default:
			keep = append(keep, in)
		}
	}
	if len(busy) > 0 {
		res.Merge(s.wait(region, busy, CodeAttemptInProgress, now))
	}
	return keep, res
}

// waitCode is the LastCode of a job waiting for a client in status.
func waitCode(status string) string {
	if status == ClientInstalling {
		return CodeClientInstalling
	}
	var b strings.Builder
	b.WriteString("Client")
	for _, w := range strings.Split(strings.ToLower(status), "_") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

// waitingOnClient reports whether code marks a job waiting for a client to
// settle: the waitCode of a status ClientActions waits for. (LastCode also
// holds HBR's and ECS's own error codes, so a prefix would not do.)
func waitingOnClient(code string) bool {
	for status, a := range ClientActions {
		if a == ActionWait && waitCode(status) == code {
			return true
		}
	}
	return false
}

// clientsByInstance keeps one client per instance: an ACTIVATED one if any,
// else the most recently created.
func clientsByInstance(clients []hbr.BackupClient) map[string]hbr.BackupClient {
	byID := map[string]hbr.BackupClient{}
	for _, bc := range clients {
		prev, ok := byID[bc.InstanceID]
		switch {
		case !ok:
		case strings.EqualFold(prev.Status, ClientActivated):
			continue
		case !strings.EqualFold(bc.Status, ClientActivated) && bc.CreatedTime < prev.CreatedTime:
			continue
		}
		byID[bc.InstanceID] = bc
	}
	return byID
}

// alreadyThere is the outcome of a job that found an ACTIVATED client: when
// the job has installed nothing, ALREADY_INSTALLED naming the client;
// after an attempt of its own (a reinstall that waited for a client to
// settle), INSTALLED.
func (s *Service) alreadyThere(region string, in job.Instance, bc hbr.BackupClient) outcome.Record {
	if in.Attempts > 0 {
		return Record(region, in, outcome.Installed, "",
			fmt.Sprintf("backup client activated (found ACTIVATED after %d attempt(s))", in.Attempts), "", bc.ClientID)
	}
	if waitingOnClient(in.LastCode) {
		return Record(region, in, outcome.AlreadyInstalled, "",
			fmt.Sprintf("backup client %s, which another installer was installing (%s), is ACTIVATED", orUnknown(bc.ClientID), in.LastCode),
			"", bc.ClientID)
	}
	return Record(region, in, outcome.AlreadyInstalled, "",
		fmt.Sprintf("backup client %s was already active (created %s): installed by another installer or an earlier attempt",
			orUnknown(bc.ClientID), createdAt(bc)), "", bc.ClientID)
}

// createdAt formats a client's creation time (whole seconds at HBR).
func createdAt(bc hbr.BackupClient) string {
	if bc.CreatedTime <= 0 {
		return "at an unknown time"
	}
	return time.Unix(bc.CreatedTime, 0).UTC().Format(time.RFC3339)
}

// lookFirst reports whether the instance's client is looked at before an
// install: before a job's first attempt, and whenever the job is waiting
// for a client to settle (a reinstall that finds one must not start a
// second).
func lookFirst(in job.Instance) bool {
	return in.Attempts == 0 || waitingOnClient(in.LastCode)
}

// awaitOther prepares an instance to wait for a client to settle (another
// install, an upgrade, a registration): the wait may last as long as an
// install task can, not just the readiness window.
func (s *Service) awaitOther(in job.Instance, now time.Time) job.Instance {
	if !waitingOnClient(in.LastCode) {
		if until := now.Add(s.Policy.TaskTimeout + s.Policy.DeadlineMargin); until.After(in.ReadyBy) {
			in.ReadyBy = until
		}
	}
	return in
}

// Verdict is a non-success outcome a step is about to record, with the
// instance it is for.
type Verdict struct {
	Instance job.Instance
	Record   outcome.Record
}

// Confirm looks at the instances' backup clients before non-success
// verdicts become final: the client is what every task and installer
// share, so a verdict is turned into INSTALLED (when the job installed,
// say a task HBR expired whose client came up anyway) or ALREADY_INSTALLED
// (when it did not) if the client is ACTIVATED after all; the record says
// what the verdict was. Verdicts whose client a task is installing right
// now are returned as busy, for the caller to look at again later; a
// failed check leaves every verdict as it was.
func (s *Service) Confirm(ctx context.Context, region string, verdicts []Verdict) (final []outcome.Record, busy []Verdict) {
	if len(verdicts) == 0 {
		return nil, nil
	}
	var clients []hbr.BackupClient
	cl, err := s.HBR(ctx, region)
	if err == nil {
		ids := make([]string, 0, len(verdicts))
		seen := map[string]bool{}
		for _, v := range verdicts {
			if !seen[v.Instance.ID] {
				seen[v.Instance.ID] = true
				ids = append(ids, v.Instance.ID)
			}
		}
		clients, err = cl.DescribeBackupClients(ctx, ids)
	}
	if err != nil {
		for _, v := range verdicts {
			final = append(final, v.Record)
		}
		return final, nil
	}
	byID := clientsByInstance(clients)
	for _, v := range verdicts {
		bc := byID[v.Instance.ID]
		switch strings.ToUpper(bc.Status) {
		case ClientActivated:
			r := s.alreadyThere(region, v.Instance, bc)
			if v.Instance.Attempts > 0 {
				r.Reason = fmt.Sprintf("backup client activated (checked after %s: %s)", v.Record.Outcome, v.Record.Reason)
			}
			r.TaskID = v.Record.TaskID
			final = append(final, r)
		case ClientInstalling:
			busy = append(busy, v)
		default:
			final = append(final, v.Record)
		}
	}
	return final, busy
}

func ids(c []job.Instance) []string {
	out := make([]string, len(c))
	for i, in := range c {
		out[i] = in.ID
	}
	return out
}
