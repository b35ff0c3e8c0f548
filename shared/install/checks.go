package install

import (
	"context"
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

// existing asks HBR which instances of the chunk already have a client, for
// the jobs that have not started an install yet. An ACTIVATED client ends
// the job: ALREADY_INSTALLED when the client predates the event that
// announced the instance, INSTALLED when it was created after it (by this
// job's own install, delivered twice, or another job's), so that duplicate
// deliveries reach the same decision. An INSTALLING client is checked again
// after the readiness delay rather than installed twice. When the check
// fails transiently the chunk is retried with back-off; when it fails for
// good the install goes ahead (the check only saves work).
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
		// Installing blind now could start a second install next to one a
		// duplicate delivery already started; a throttled check is retried
		// like a throttled install.
		return chunk{}, s.transient(region, c.all(), retries+1, fault.CodeOf(err), s.now())
	default:
		// Permanent (say, no hbr:DescribeBackupClients permission): the
		// check only saves work, so the install goes ahead.
		return c, res
	}
	byID := map[string]hbr.BackupClient{}
	for _, bc := range clients {
		if prev, ok := byID[bc.InstanceID]; !ok || prev.Status != clientActivated {
			byID[bc.InstanceID] = bc
		}
	}
	now := s.now()
	rest := chunk{jobs: map[string][]job.Instance{}}
	var installing []job.Instance
	for _, id := range c.ids {
		bc, found := byID[id]
		var keep []job.Instance
		for _, in := range c.jobs[id] {
			switch {
			case !lookFirst(in) || !found:
				keep = append(keep, in)
			case bc.Status == clientActivated:
				res.Outcomes = append(res.Outcomes, s.alreadyThere(region, in, bc))
			case bc.Status == clientInstalling:
				installing = append(installing, s.awaitOther(in, now))
			default:
				keep = append(keep, in)
			}
		}
		if len(keep) > 0 {
			rest.ids = append(rest.ids, id)
			rest.jobs[id] = keep
		}
	}
	if len(installing) > 0 {
		res.Merge(s.wait(region, installing, CodeClientInstalling, now))
	}
	return rest, res
}

// alreadyThere is the outcome of a job that found an ACTIVATED client.
func (s *Service) alreadyThere(region string, in job.Instance, bc hbr.BackupClient) outcome.Record {
	since := in.EventTime
	if since.IsZero() {
		since = in.FirstSeen
	}
	created := time.Unix(bc.CreatedTime, 0)
	if bc.CreatedTime > 0 && !created.Before(since) {
		return Record(region, in, outcome.Installed, "", "backup client activated", "", bc.ClientID)
	}
	return Record(region, in, outcome.AlreadyInstalled, "",
		"backup client was already active before the event", "", bc.ClientID)
}

// lookFirst reports whether the instance's client is looked at before an
// install: before a job's first attempt, and whenever the job is waiting
// for another task's install (a reinstall that finds one must not start a
// second).
func lookFirst(in job.Instance) bool {
	return in.Attempts == 0 || in.LastCode == CodeClientInstalling
}

// awaitOther prepares an instance to wait for another task that is
// installing its client (a duplicate delivery's twin, or another job): the
// wait may last as long as that task can, not just the readiness window.
func (s *Service) awaitOther(in job.Instance, now time.Time) job.Instance {
	if in.LastCode != CodeClientInstalling {
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
	byID := map[string]hbr.BackupClient{}
	for _, bc := range clients {
		if prev, ok := byID[bc.InstanceID]; !ok || prev.Status != clientActivated {
			byID[bc.InstanceID] = bc
		}
	}
	for _, v := range verdicts {
		bc := byID[v.Instance.ID]
		switch bc.Status {
		case clientActivated:
			r := s.alreadyThere(region, v.Instance, bc)
			r.TaskID = v.Record.TaskID
			final = append(final, r)
		case clientInstalling:
			busy = append(busy, v)
		default:
			final = append(final, v.Record)
		}
	}
	return final, busy
}
