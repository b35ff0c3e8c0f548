package poll

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/protect"
)

// pending is a record whose client is ACTIVATED, waiting for its binding,
// and the deadline of its binding retries.
type pending struct {
	rec outcome.Record
	by  time.Time
}

// bind is the last step before records are written: every record that
// says its client is ACTIVATED (INSTALLED, ALREADY_INSTALLED) is bound to
// its backup policy, all those of a region together (package protect
// batches the calls), and becomes PROTECTED, ALREADY_PROTECTED, BIND_FAILED
// or, in audit mode, WOULD_PROTECT. It stays the same record: its reason
// gains the binding's, and its detail, supersedes, generation and task are
// kept. With no policy for the instance the record stays as it was. A
// transient failure holds the record back and queues a bind message,
// retried with back-off until the job's deadline, then BIND_FAILED with
// the last code.
func (s *Service) bind(ctx context.Context, res install.Result, deadline map[string]time.Time) install.Result {
	if s.Protect == nil || !s.Protect.Settings.Enabled() {
		return res
	}
	var keep []outcome.Record
	byRegion := map[string][]pending{}
	var regions []string
	for _, r := range res.Outcomes {
		if r.Outcome != outcome.Installed && r.Outcome != outcome.AlreadyInstalled {
			keep = append(keep, r)
			continue
		}
		by := deadline[r.JobID+"/"+r.InstanceID]
		if by.IsZero() {
			by = s.now().Add(s.policy().TaskTimeout + s.policy().DeadlineMargin)
		}
		if byRegion[r.Region] == nil {
			regions = append(regions, r.Region)
		}
		byRegion[r.Region] = append(byRegion[r.Region], pending{rec: r, by: by})
	}
	res.Outcomes = keep
	for _, region := range regions {
		res.Merge(s.protect(ctx, region, byRegion[region], 0))
	}
	return res
}

// protect binds the pending records (all in region) and turns each verdict
// into a record or a bind message. retries counts the transient failures
// so far.
func (s *Service) protect(ctx context.Context, region string, ps []pending, retries int) install.Result {
	var res install.Result
	now := s.now()
	tags, tagErr := s.tags(ctx, region, ps)
	targets := make([]protect.Target, len(ps))
	for i, p := range ps {
		// Installed by this job's own task just now: nothing can be bound
		// yet but what HBR's tag policies did, which a failed binding
		// reveals.
		fresh := p.rec.Outcome == outcome.Installed && p.rec.Attempts > 0
		targets[i] = protect.Target{InstanceID: p.rec.InstanceID, JobID: p.rec.JobID, Tags: tags[p.rec.InstanceID], Fresh: fresh}
	}
	var later []pending
	lastCode := ""
	for i, r := range s.Protect.Protect(ctx, region, targets) {
		p := ps[i]
		if r.Verdict == protect.BindFailed && r.Code == protect.CodeTagsUnknown && tagErr != nil && transient(tagErr) {
			r.Verdict, r.Code = protect.RetryLater, orDefault(fault.CodeOf(tagErr), "TransientError")
		}
		switch r.Verdict {
		case protect.NoPolicy:
			res.Outcomes = append(res.Outcomes, p.rec)
		case protect.RetryLater:
			code := orDefault(r.Code, "TransientError")
			lastCode = code
			if !now.Before(p.by) {
				res.Outcomes = append(res.Outcomes, bound(p.rec, outcome.BindFailed, r.PolicyID, code,
					fmt.Sprintf("binding to %s kept failing with transient errors (%s) until the job's deadline; the client is ACTIVATED",
						orDefault(r.PolicyID, "the policy"), code), r.Err))
				continue
			}
			later = append(later, p)
		default:
			if r.Verdict == protect.AlreadyProtected && p.rec.Outcome == outcome.Installed {
				// This job installed the client, and the binding is the one
				// this system makes: a delivery of this job bound it a moment
				// ago and did not get to record it.
				if want, ok := s.Protect.Settings.PolicyFor(tags[p.rec.InstanceID]); ok && want == r.PolicyID && (tags != nil || !s.Protect.Settings.NeedsTags()) {
					r.Verdict = protect.Protected
				}
			}
			kind, _ := r.Verdict.Outcome()
			res.Outcomes = append(res.Outcomes, bound(p.rec, kind, r.PolicyID, r.Code, bindReason(r), r.Err))
		}
	}
	if len(later) > 0 {
		d := s.policy().Backoff(retries + 1)
		if s.Install.Jitter != nil {
			d = s.Install.Jitter(d)
		}
		for start := 0; start < len(later); start += job.MaxInstances {
			part := later[start:min(start+job.MaxInstances, len(later))]
			by := part[0].by
			ins := make([]job.Instance, len(part))
			for i, p := range part {
				if p.by.Before(by) {
					by = p.by
				}
				ins[i] = bindInstance(p)
			}
			res.Next = append(res.Next, install.Next{Message: job.Message{Version: job.Version, Kind: job.KindBind,
				Region: region, Retries: retries + 1, LastError: lastCode, Deadline: by,
				OriginEventID: ins[0].OriginEventID, Instances: ins, SentAt: now}, Delay: clampToDeadline(d, by, now)})
		}
	}
	return res
}

// bound is rec after its binding: the outcome, policy and code the binding
// decided, the binding's reason after the record's own, the binding error
// after its detail; supersedes, generation, task and client are kept.
func bound(rec outcome.Record, kind outcome.Kind, policyID, code, reason string, err error) outcome.Record {
	rec.Outcome, rec.PolicyID, rec.Code = kind, policyID, code
	rec.Reason = joinText(rec.Reason, reason)
	if err != nil {
		rec.Detail = joinText(rec.Detail, err.Error())
	}
	return rec
}

func joinText(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// bindInstance carries a pending record in a bind message.
func bindInstance(p pending) job.Instance {
	r := p.rec
	return job.Instance{ID: r.InstanceID, JobID: r.JobID, OriginEventID: r.OriginEventID, FirstSeen: r.FirstSeen,
		ReadyBy: p.by, Attempts: r.Attempts, Installed: string(r.Outcome), ClientID: r.ClientID, TaskID: r.TaskID,
		Reason: job.Clip(r.Reason, job.MaxReasonLen), Detail: job.Clip(r.Detail, job.MaxDetailLen),
		Supersedes: r.Supersedes, Generation: r.Generation, LeaseUntil: r.LeaseUntil, Via: r.Via}
}

// installedRecord is the record a bind message carries.
func installedRecord(region string, in job.Instance) outcome.Record {
	reason := in.Reason
	if reason == "" {
		reason = "backup client activated"
	}
	r := install.Record(region, in, outcome.Kind(in.Installed), "", reason, in.TaskID, in.ClientID)
	r.Detail = in.Detail
	return r
}

// tags returns the instances' tags when the policy depends on them: a map
// for every instance ECS lists (empty when it has none); an instance missing
// from the result has unknown tags.
func (s *Service) tags(ctx context.Context, region string, ps []pending) (map[string]map[string]string, error) {
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
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.rec.InstanceID
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

func bindReason(r protect.Result) string {
	switch r.Verdict {
	case protect.Protected:
		return "bound to backup policy " + r.PolicyID
	case protect.AlreadyProtected:
		return "the instance was already bound to backup policy " + r.PolicyID + " (not rebound)"
	case protect.WouldProtect:
		return "audit mode: enforce mode would bind it to backup policy " + r.PolicyID
	}
	return strings.TrimSpace(fmt.Sprintf("binding to backup policy %s failed (%s); the client is ACTIVATED", orDefault(r.PolicyID, "(none)"), orDefault(r.Code, "unknown error")))
}
