package install

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
)

// inScope describes the chunk's instances in ECS and applies the scope
// rules at install time (tags are often added after an instance is
// created). Out of scope: SKIPPED with the rule. Not listed: looked at again
// (GONE at the deadline). In audit mode a stopped instance waits too, since
// no install call will say it is not running.
func (s *Service) inScope(ctx context.Context, region string, c chunk, retries int) (chunk, Result) {
	var res Result
	now := s.now()
	inv, err := s.inventory(ctx, region)
	var found []ecs.Instance
	if err == nil {
		found, err = inv.DescribeInstances(ctx, c.ids)
	}
	if err != nil {
		if fault.Is(err, fault.Retryable) || fault.IsContext(err) {
			return chunk{}, s.transient(region, c.all(), retries+1, fault.CodeOf(err), now)
		}
		for _, in := range c.all() {
			r := record(region, in, outcome.Failed, orUnknown(fault.CodeOf(err)), "cannot evaluate the scope rules: ECS DescribeInstances failed", "")
			r.Detail = err.Error()
			res.Outcomes = append(res.Outcomes, r)
		}
		return chunk{}, res
	}
	byID := map[string]ecs.Instance{}
	for _, e := range found {
		byID[e.ID] = e
	}
	rest := chunk{jobs: map[string][]job.Instance{}}
	var missing, stopped []job.Instance
	for _, id := range c.ids {
		e, ok := byID[id]
		switch {
		case !ok:
			missing = append(missing, c.jobs[id]...)
			continue
		case s.Audit && !strings.EqualFold(e.Status, ecs.StatusRunning):
			stopped = append(stopped, c.jobs[id]...)
			continue
		}
		if in, rule := s.Scope.Decide(e); !in {
			for _, j := range c.jobs[id] {
				res.Outcomes = append(res.Outcomes, record(region, j, outcome.Skipped, "OutOfScope", "excluded by "+rule, ""))
			}
			continue
		}
		rest.ids = append(rest.ids, id)
		rest.jobs[id] = c.jobs[id]
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
func (s *Service) wouldInstall(ctx context.Context, region string, c chunk, retries int) Result {
	var res Result
	now := s.now()
	inv, err := s.inventory(ctx, region)
	var ready map[string]bool
	if err == nil {
		ready, err = inv.CloudAssistantReady(ctx, c.ids)
	}
	if err != nil {
		if fault.Is(err, fault.Retryable) || fault.IsContext(err) {
			return s.transient(region, c.all(), retries+1, fault.CodeOf(err), now)
		}
		for _, in := range c.all() {
			r := record(region, in, outcome.Failed, orUnknown(fault.CodeOf(err)), "cannot check Cloud Assistant: ECS DescribeCloudAssistantStatus failed", "")
			r.Detail = err.Error()
			res.Outcomes = append(res.Outcomes, r)
		}
		return res
	}
	var waiting []job.Instance
	for _, id := range c.ids {
		for _, in := range c.jobs[id] {
			if !ready[id] {
				waiting = append(waiting, in)
				continue
			}
			res.Outcomes = append(res.Outcomes, record(region, in, outcome.WouldInstall, "",
				"audit mode: in scope, no backup client, Cloud Assistant ready", ""))
		}
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
func (s *Service) ready(ctx context.Context, region string, c chunk, retries int) (chunk, Result) {
	var res Result
	inv, err := s.ECS(ctx, region)
	var ready map[string]bool
	if err == nil {
		ready, err = inv.CloudAssistantReady(ctx, c.ids)
	}
	switch {
	case err == nil:
	case fault.Is(err, fault.Retryable) || fault.IsContext(err):
		return chunk{}, s.transient(region, c.all(), retries+1, fault.CodeOf(err), s.now())
	default:
		return c, res
	}
	rest := chunk{jobs: map[string][]job.Instance{}}
	var waiting []job.Instance
	for _, id := range c.ids {
		if up, answered := ready[id]; answered && !up {
			waiting = append(waiting, c.jobs[id]...)
			continue
		}
		rest.ids = append(rest.ids, id)
		rest.jobs[id] = c.jobs[id]
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
// the jobs that have not started an install yet (and those waiting for a
// client to settle), and decides with [ClientActions]:
//
//   - a client created at or after the job's own announcement (compared in
//     whole seconds, HBR's precision) was installed by another job for the
//     same launch (or this job's own attempt, delivered twice): the job
//     joins that install without a record of its own, and the owner records
//     the outcome;
//   - otherwise the status decides: ACTIVATED ends the job as
//     ALREADY_INSTALLED; INSTALLING, UPGRADING and REGISTERED are waited
//     for; STOPPED, DEACTIVATED, UNINSTALLING and UNINSTALL_FAILED end as
//     SKIPPED naming the status (an operator's choice) unless Reinstall
//     lists it; the rest are installed.
//
// When the check fails transiently the chunk is retried with back-off; when
// it fails for good the install goes ahead (the check only saves work).
func (s *Service) existing(ctx context.Context, cl Installer, region string, c chunk, retries int) (chunk, Result) {
	var res Result
	var ask []string
	for _, id := range c.ids {
		for _, in := range c.jobs[id] {
			if lookFirst(in) {
				ask = append(ask, id)
				break
			}
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
		// another job already started; a throttled check is retried like a
		// throttled install.
		return chunk{}, s.transient(region, c.all(), retries+1, fault.CodeOf(err), s.now())
	default:
		// Permanent (say, no hbr:DescribeBackupClients permission): the
		// check only saves work, so the install goes ahead.
		return c, res
	}
	byID := clientsByInstance(clients)
	now := s.now()
	rest := chunk{jobs: map[string][]job.Instance{}}
	waits := map[string][]job.Instance{}
	for _, id := range c.ids {
		bc, found := byID[id]
		var keep []job.Instance
		for _, in := range c.jobs[id] {
			if !lookFirst(in) || !found {
				keep = append(keep, in)
				continue
			}
			if in.Attempts == 0 && thisLaunch(bc, in) {
				res.Joined = append(res.Joined, outcome.Join{JobID: in.JobID, InstanceID: id, Region: region,
					OriginEventID: in.OriginEventID, ClientID: bc.ClientID,
					Owner:  fmt.Sprintf("the install that created client %s at %s (%s)", orUnknown(bc.ClientID), time.Unix(bc.CreatedTime, 0).UTC().Format(time.RFC3339), bc.Status),
					Reason: "the client was created after this job's event: another job for the same launch installed it"})
				continue
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
					keep = append(keep, in)
					continue
				}
				res.Outcomes = append(res.Outcomes, Record(region, in, outcome.Skipped, status,
					fmt.Sprintf("client %s: set by an operator, left as it is (REINSTALL_STATUSES overrides)", status), "", bc.ClientID))
			default:
				keep = append(keep, in)
			}
		}
		if len(keep) > 0 {
			rest.ids = append(rest.ids, id)
			rest.jobs[id] = keep
		}
	}
	for _, code := range slices.Sorted(maps.Keys(waits)) {
		res.Merge(s.wait(region, waits[code], code, now))
	}
	return rest, res
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

// LaunchWindow is how long before a job's own event a client may have been
// created and still belong to the same launch. A launch announces an
// instance two or three times within about three minutes (RunInstances,
// Running 20-90 s later, FirstHeartbeat 10-60 s after that), and the job
// of the last event can only know its own event's time; another service's
// clock may also run a little ahead. A client older than that predates the
// instance's first event: ALREADY_INSTALLED.
const LaunchWindow = 10 * time.Minute

// thisLaunch reports whether bc was created by the launch that announced
// in: at or after the job's event less LaunchWindow.
func thisLaunch(bc hbr.BackupClient, in job.Instance) bool {
	return createdSince(bc, announced(in).Add(-LaunchWindow))
}

// createdSince reports whether the client is known to have been created at
// or after t, at HBR's precision: CreatedTime is whole seconds, so t is
// truncated to the second (a client created in the same second as the event
// counts as after it). An unknown creation time (0) is not "since".
func createdSince(bc hbr.BackupClient, t time.Time) bool {
	return bc.CreatedTime > 0 && bc.CreatedTime >= t.Unix()
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

// alreadyThere is the outcome of a job that found an ACTIVATED client:
// ALREADY_INSTALLED when the client predates the instance's announcement
// (whole seconds), INSTALLED when it does not (this job's own install, seen
// again by a reinstall or a confirmation).
func (s *Service) alreadyThere(region string, in job.Instance, bc hbr.BackupClient) outcome.Record {
	if thisLaunch(bc, in) {
		return Record(region, in, outcome.Installed, "", "backup client activated", "", bc.ClientID)
	}
	return Record(region, in, outcome.AlreadyInstalled, "",
		"backup client was already active before the event", "", bc.ClientID)
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
// verdicts become final. At-least-once delivery can fork a job into two
// chains with their own install tasks; the instance's client is the state
// both share, so a verdict is turned into INSTALLED (or ALREADY_INSTALLED,
// by the same rule as the existing-client check) when the client is
// ACTIVATED after all. Verdicts whose client another task is installing
// right now are returned as busy, for the caller to look at again later; a
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
			// The verdict is corrected; the new record names it, in case a
			// copy of the job already wrote it.
			r := s.alreadyThere(region, v.Instance, bc)
			r.TaskID = v.Record.TaskID
			r.Supersedes = v.Record.JobID + "/" + string(v.Record.Outcome)
			final = append(final, r)
		case ClientInstalling:
			busy = append(busy, v)
		default:
			final = append(final, v.Record)
		}
	}
	return final, busy
}
