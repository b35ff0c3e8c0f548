package poll

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/protect"
)

// bind is the last step of a batch: every instance whose record says its
// client is ACTIVATED (INSTALLED, ALREADY_INSTALLED) is bound to its backup
// policy, all those of a region together (package protect batches the
// calls), and its record becomes PROTECTED, ALREADY_PROTECTED, BIND_FAILED
// or, in audit mode, WOULD_PROTECT — still one record per instance. With no
// policy for the instance the record stays as it was. A transient failure
// holds the record back and queues a bind message, retried with back-off
// until the job's deadline, then BIND_FAILED with the last code.
func (s *Service) bind(ctx context.Context, res install.Result, deadline map[string]time.Time) install.Result {
	if s.Protect == nil || !s.Protect.Settings.Enabled() {
		return res
	}
	var keep []outcome.Record
	byRegion := map[string][]job.Instance{}
	for _, r := range res.Outcomes {
		if r.Outcome != outcome.Installed && r.Outcome != outcome.AlreadyInstalled {
			keep = append(keep, r)
			continue
		}
		by := deadline[r.JobID+"/"+r.InstanceID]
		if by.IsZero() {
			by = s.now().Add(s.policy().TaskTimeout + s.policy().DeadlineMargin)
		}
		byRegion[r.Region] = append(byRegion[r.Region], job.Instance{ID: r.InstanceID, JobID: r.JobID,
			OriginEventID: r.OriginEventID, FirstSeen: r.FirstSeen, ReadyBy: by, Attempts: r.Attempts,
			Installed: string(r.Outcome), ClientID: r.ClientID, TaskID: r.TaskID})
	}
	res.Outcomes = keep
	regions := make([]string, 0, len(byRegion))
	for r := range byRegion {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, region := range regions {
		res.Merge(s.protect(ctx, region, byRegion[region], 0))
	}
	return res
}

// protect binds instances (all in region) and turns each verdict into a
// record or a bind message. retries counts the transient failures so far.
func (s *Service) protect(ctx context.Context, region string, ins []job.Instance, retries int) install.Result {
	var res install.Result
	now := s.now()
	tags, tagErr := s.tags(ctx, region, ins)
	targets := make([]protect.Target, len(ins))
	for i, in := range ins {
		// Installed by this job's own task just now: nothing can be bound
		// yet but what HBR's tag policies did, which a failed binding
		// reveals.
		fresh := in.Installed == string(outcome.Installed) && in.Attempts > 0
		targets[i] = protect.Target{InstanceID: in.ID, JobID: in.JobID, Tags: tags[in.ID], Fresh: fresh}
	}
	var later []job.Instance
	lastCode := ""
	for i, r := range s.Protect.Protect(ctx, region, targets) {
		in := ins[i]
		if r.Verdict == protect.BindFailed && r.Code == protect.CodeTagsUnknown && tagErr != nil && transient(tagErr) {
			r.Verdict, r.Code = protect.RetryLater, orDefault(fault.CodeOf(tagErr), "TransientError")
		}
		switch r.Verdict {
		case protect.NoPolicy:
			res.Outcomes = append(res.Outcomes, installedRecord(region, in))
		case protect.RetryLater:
			in.LastCode = orDefault(r.Code, "TransientError")
			lastCode = in.LastCode
			if !now.Before(in.ReadyBy) {
				rec := bindRecord(region, in, outcome.BindFailed, r.PolicyID, in.LastCode,
					fmt.Sprintf("binding to %s kept failing with transient errors (%s) until the job's deadline; the client is ACTIVATED", orDefault(r.PolicyID, "the policy"), in.LastCode))
				res.Outcomes = append(res.Outcomes, rec)
				continue
			}
			later = append(later, in)
		default:
			if r.Verdict == protect.AlreadyProtected && in.Installed == string(outcome.Installed) {
				// This launch installed the client, and the binding is the
				// one this system makes: a copy of this job (a duplicated
				// message) bound it a moment ago. Same decision as that
				// copy's record.
				if want, ok := s.Protect.Settings.PolicyFor(tags[in.ID]); ok && want == r.PolicyID && (tags != nil || !s.Protect.Settings.NeedsTags()) {
					r.Verdict = protect.Protected
				}
			}
			kind, _ := r.Verdict.Outcome()
			rec := bindRecord(region, in, kind, r.PolicyID, r.Code, bindReason(r))
			if r.Err != nil {
				rec.Detail = r.Err.Error()
			}
			res.Outcomes = append(res.Outcomes, rec)
		}
	}
	if len(later) > 0 {
		d := s.policy().Backoff(retries + 1)
		if s.Install.Jitter != nil {
			d = s.Install.Jitter(d)
		}
		for _, part := range job.Chunk(later, job.MaxInstances) {
			by := part[0].ReadyBy
			for _, in := range part {
				if in.ReadyBy.Before(by) {
					by = in.ReadyBy
				}
			}
			res.Next = append(res.Next, install.Next{Message: job.Message{Version: job.BindVersion, Kind: job.KindBind,
				Region: region, Retries: retries + 1, LastError: lastCode, Deadline: by,
				OriginEventID: part[0].OriginEventID, Instances: part, SentAt: now}, Delay: clampToDeadline(d, by, now)})
		}
	}
	return res
}

// tags returns the instances' tags when the policy depends on them: a map
// for every instance ECS lists (empty when it has none); an instance missing
// from the result has unknown tags.
func (s *Service) tags(ctx context.Context, region string, ins []job.Instance) (map[string]map[string]string, error) {
	if !s.Protect.Settings.NeedsTags() {
		return nil, nil
	}
	if s.Install.ECS == nil {
		return nil, fault.Invalidf("poll.tags", "tag rules for backup policies need an ECS client, and none is configured")
	}
	inv, err := s.Install.ECS(ctx, region)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(ins))
	for i, in := range ins {
		ids[i] = in.ID
	}
	found, err := inv.DescribeInstances(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]string, len(found))
	for _, e := range found {
		t := e.Tags
		if t == nil {
			t = map[string]string{}
		}
		out[e.ID] = t
	}
	return out, nil
}

func transient(err error) bool { return fault.Is(err, fault.Retryable) || fault.IsContext(err) }

func installedRecord(region string, in job.Instance) outcome.Record {
	kind := outcome.Kind(in.Installed)
	reason := "backup client activated"
	if kind == outcome.AlreadyInstalled {
		reason = "backup client was already active before the event"
	}
	return install.Record(region, in, kind, "", reason, in.TaskID, in.ClientID)
}

func bindRecord(region string, in job.Instance, kind outcome.Kind, policyID, code, reason string) outcome.Record {
	r := install.Record(region, in, kind, code, reason, in.TaskID, in.ClientID)
	r.PolicyID = policyID
	return r
}

func bindReason(r protect.Result) string {
	switch r.Verdict {
	case protect.Protected:
		return "backup client activated and bound to backup policy " + r.PolicyID
	case protect.AlreadyProtected:
		return "backup client active; the instance was already bound to backup policy " + r.PolicyID + " (not rebound)"
	case protect.WouldProtect:
		return "audit mode: the client is active; enforce mode would bind it to backup policy " + r.PolicyID
	}
	return fmt.Sprintf("binding to backup policy %s failed (%s); the client is ACTIVATED", orDefault(r.PolicyID, "(none)"), orDefault(r.Code, "unknown error"))
}
