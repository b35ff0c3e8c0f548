// Package protect is the binding step of issue 11: once an instance's backup
// client is ACTIVATED, bind the instance to an HBR backup policy, so that it
// is backed up and not only installed.
//
// [Settings] say which policy an instance gets (a default, and rules from
// instance tags to policies). [Service.Protect] takes the instances that
// finished together, asks HBR once which of them are already bound
// (DescribePolicyBindings; an existing binding is reported, never replaced),
// and binds the rest with one CreatePolicyBindings call per policy. It
// returns one [Result] per instance and never an error: a failed call is a
// result (retry later, or BIND_FAILED). Each instance gets its own verdict:
// when a call for many fails for good, the step finds out which instances
// are bound already and which cannot be bound (see [Service.Protect]), and
// only the latter end BIND_FAILED. HBR's documented refusal of a repeated
// binding ([CodeAlreadyBound]) means ALREADY_PROTECTED, never BIND_FAILED.
//
// The package has no SDK or Function Compute imports: the HBR adapter is
// reached through the [Binder] interface declared here (shared/hbr's Client
// satisfies it). It does not log. Parse returns fault.Invalid errors.
package protect

import (
	"context"
	"errors"
	"fmt"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
)

// Binder lists and creates backup-policy bindings in one region
// (*hbr.Client satisfies it).
type Binder interface {
	// DescribePolicyBindings returns instance ID → bound policy ID for the
	// instances that have a binding (at most MaxBatch IDs per call).
	DescribePolicyBindings(ctx context.Context, instanceIDs []string) (map[string]string, error)
	// CreatePolicyBindings binds the instances (at most MaxBatch) to one
	// policy.
	CreatePolicyBindings(ctx context.Context, policyID string, instanceIDs []string) error
}

// MaxBatch is the most instance IDs sent in one HBR call; larger batches
// are split (hbr.MaxBindIDs and hbr.MaxBindingFilterIDs are both 100).
const MaxBatch = 100

// Codes of results decided here rather than by HBR.
const (
	// CodeTagsUnknown: tag rules are configured but the caller did not know
	// the instance's tags, so its policy cannot be decided.
	CodeTagsUnknown = "TagsUnknown"
	// CodeUnclassified: the HBR call failed without a service error code.
	CodeUnclassified = "BindError"
)

// HBR error codes the step reads (through fault.CodeOf).
const (
	// CodeAlreadyBound: CreatePolicyBindings refused an instance already
	// bound to the policy of the call; the instance is ALREADY_PROTECTED by
	// that policy. [DOC] the CreatePolicyBindings API reference (HTTP 400,
	// "This datasource has already been bound with the policy…"); the same
	// as hbr.CodeAlreadyBound. The error does not say which instance of a
	// longer list it is about.
	CodeAlreadyBound = "PolicyAlreadyBoundWithThisDataSource"
	// CodePolicyNotFound: CreatePolicyBindings refused the policy itself.
	// [UNVERIFIED] HBR does not document its code for an unknown policy;
	// this is the emulator's. It only saves calls: a failure with it is not
	// split up, since every instance would fail the same way. Were HBR's
	// code another, the split would reach the same verdicts with more calls.
	CodePolicyNotFound = "PolicyNotExists"
	// CodeForbidden: the role may not call CreatePolicyBindings at all.
	// [UNVERIFIED] for HBR: the API gateway's standard RAM denial code. Used
	// like CodePolicyNotFound, only to save calls.
	CodeForbidden = "Forbidden.RAM"
)

// Verdict is what the step decided for one instance.
type Verdict string

// Verdicts.
const (
	// Protected: bound now to Result.PolicyID.
	Protected Verdict = "PROTECTED"
	// AlreadyProtected: already bound to Result.PolicyID (the configured
	// policy or another); not rebound.
	AlreadyProtected Verdict = "ALREADY_PROTECTED"
	// BindFailed: binding failed for good; Result.Code says why. The client
	// is still ACTIVATED.
	BindFailed Verdict = "BIND_FAILED"
	// WouldProtect: audit mode; enforce mode would bind to Result.PolicyID.
	WouldProtect Verdict = "WOULD_PROTECT"
	// RetryLater: a transient failure (throttling, 5xx, network, deadline);
	// the caller tries again within the job's deadline, and records
	// BIND_FAILED with Result.Code if the deadline passes first.
	RetryLater Verdict = "RETRY_LATER"
	// NoPolicy: no rule matches and there is no default policy; the
	// instance stays INSTALLED.
	NoPolicy Verdict = "NO_POLICY"
)

// Outcome returns the outcome kind a final verdict is recorded as; ok is
// false for RetryLater and NoPolicy, which end nothing here.
func (v Verdict) Outcome() (kind outcome.Kind, ok bool) {
	switch v {
	case Protected:
		return outcome.Protected, true
	case AlreadyProtected:
		return outcome.AlreadyProtected, true
	case BindFailed:
		return outcome.BindFailed, true
	case WouldProtect:
		return outcome.WouldProtect, true
	}
	return "", false
}

// Target is an instance whose client is ACTIVATED.
type Target struct {
	// InstanceID is the ECS instance ID.
	InstanceID string
	// JobID is carried into the result untouched, for the caller's records.
	JobID string
	// Tags are the instance's tags; nil means unknown (an empty map means
	// "no tags"). With tag rules configured, an instance whose tags are
	// unknown ends as BIND_FAILED with CodeTagsUnknown.
	Tags map[string]string
	// Fresh says the client was installed by the caller's own task just
	// now: no binding can be there yet but one HBR's tag policies made, so
	// the instance is bound without asking first (DescribePolicyBindings is
	// called only if the binding fails), which halves the calls.
	Fresh bool
}

// Result is the verdict for one target.
type Result struct {
	Target  Target
	Verdict Verdict
	// PolicyID is the bound policy (Protected, AlreadyProtected), the one
	// that would be or could not be bound (WouldProtect, BindFailed,
	// RetryLater); "" for NoPolicy.
	PolicyID string
	// Code is the error code of BindFailed and RetryLater: the service's
	// (fault.CodeOf) or one of this package's.
	Code string
	// Err is the error behind BindFailed or RetryLater, for the log.
	Err error
}

// Service runs the binding step.
type Service struct {
	// HBR returns the binder for a region.
	HBR func(ctx context.Context, region string) (Binder, error)
	// Settings say which policy each instance gets.
	Settings Settings
	// Audit makes the step bind nothing: DescribePolicyBindings is still
	// asked, and unbound instances end as WOULD_PROTECT.
	Audit bool
}

// Protect decides and binds the targets (all in region). results[i] is the
// verdict for targets[i]. It calls DescribePolicyBindings once per MaxBatch
// targets that have a policy and are not Fresh, then CreatePolicyBindings
// once per policy (and MaxBatch) for the unbound and the fresh ones, never
// once per instance; in audit mode only the former, for every target. With
// binding disabled every target is NoPolicy and nothing is called. Instance
// IDs are sent once per call even if listed twice.
//
// When a CreatePolicyBindings call fails, a transient failure is every
// instance's verdict (RetryLater). Otherwise one DescribePolicyBindings
// call says which are bound already (ALREADY_PROTECTED, with their policy);
// a failure that concerns the call as a whole (an unknown policy, a RAM
// denial) is the BIND_FAILED verdict of the others, and any other failure
// is pinned on the instances it belongs to by binding them again in halves
// down to single instances: a single instance refused with CodeAlreadyBound
// is ALREADY_PROTECTED by the policy, one refused otherwise is BIND_FAILED
// with the code. A chunk of n instances costs at most one
// DescribePolicyBindings and 2n-1 more CreatePolicyBindings calls, however
// many of them fail.
func (s *Service) Protect(ctx context.Context, region string, targets []Target) []Result {
	results := make([]Result, len(targets))
	var pending []int // indexes of targets that have a policy
	for i, t := range targets {
		results[i] = Result{Target: t}
		switch {
		case !s.Settings.Enabled():
			results[i].Verdict = NoPolicy
		case t.Tags == nil && s.Settings.NeedsTags():
			results[i].Verdict, results[i].Code = BindFailed, CodeTagsUnknown
			results[i].PolicyID = s.Settings.Default
			results[i].Err = errors.New("tag rules are configured but the instance's tags are unknown")
		default:
			policy, ok := s.Settings.PolicyFor(t.Tags)
			if !ok {
				results[i].Verdict = NoPolicy
				continue
			}
			results[i].PolicyID = policy
			pending = append(pending, i)
		}
	}
	if len(pending) == 0 {
		return results
	}

	fail := func(idx []int, err error) {
		for _, i := range idx {
			results[i].Verdict, results[i].Code, results[i].Err = verdictOf(err), codeOf(err), err
		}
	}
	binder, err := s.HBR(ctx, region)
	if err != nil {
		fail(pending, fmt.Errorf("HBR client for %s: %w", region, err))
		return results
	}

	// Which are bound already? One call per MaxBatch distinct instances,
	// for those that may be.
	var unbound, ask []int
	for _, i := range pending {
		if targets[i].Fresh && !s.Audit {
			unbound = append(unbound, i)
			continue
		}
		ask = append(ask, i)
	}
	for _, chunk := range chunks(ask, targets) {
		bound, err := binder.DescribePolicyBindings(ctx, ids(chunk, targets))
		if err != nil {
			fail(chunk, err)
			continue
		}
		for _, i := range chunk {
			if p, ok := bound[targets[i].InstanceID]; ok {
				results[i].Verdict, results[i].PolicyID = AlreadyProtected, p
				continue
			}
			unbound = append(unbound, i)
		}
	}
	if s.Audit {
		for _, i := range unbound {
			results[i].Verdict = WouldProtect
		}
		return results
	}

	// Bind the rest: one call per policy (and MaxBatch), in the order the
	// policies first appear.
	var order []string
	byPolicy := map[string][]int{}
	for _, i := range unbound {
		p := results[i].PolicyID
		if _, ok := byPolicy[p]; !ok {
			order = append(order, p)
		}
		byPolicy[p] = append(byPolicy[p], i)
	}
	for _, p := range order {
		for _, chunk := range chunks(byPolicy[p], targets) {
			b := binding{ctx: ctx, binder: binder, policy: p, targets: targets, results: results}
			if err := binder.CreatePolicyBindings(ctx, p, ids(chunk, targets)); err != nil {
				b.settle(groups(chunk, targets), err)
				continue
			}
			b.protected(chunk)
		}
	}
	return results
}

// binding finds out, after a CreatePolicyBindings call for one policy
// failed, which of its instances could not be bound, so that one bad
// instance does not fail the others.
type binding struct {
	ctx     context.Context
	binder  Binder
	policy  string
	targets []Target
	results []Result
}

// settle gives every instance of a chunk (its targets grouped by instance,
// at most MaxBatch groups) its own verdict after the call binding them all
// failed with err. A transient failure is every instance's verdict, and a
// single instance refused with CodeAlreadyBound is ALREADY_PROTECTED by
// this policy. Otherwise it asks once which are bound already
// (ALREADY_PROTECTED with their policy, whatever it is). A failure of the
// call as a whole (see callWide) is then the verdict of the others;
// any other failure is pinned on the instances it belongs to by binding
// them again in halves, then quarters, …, down to single instances (see
// split). Cost: at most one DescribePolicyBindings and 2n-1
// CreatePolicyBindings calls for n instances; every call is about fewer
// instances than the one before it, so it always ends.
func (b binding) settle(chunk [][]int, err error) {
	if verdictOf(err) == RetryLater || len(chunk) == 1 && fault.CodeOf(err) == CodeAlreadyBound {
		b.split(chunk, err)
		return
	}
	rest := chunk
	// If the listing fails, the halves are bound regardless: the documented
	// code still tells an instance bound to this policy, and other
	// refusals end BIND_FAILED with their own code.
	if bound, derr := b.binder.DescribePolicyBindings(b.ctx, ids(flatten(chunk), b.targets)); derr == nil {
		rest = nil
		for _, g := range chunk {
			if p, ok := bound[b.targets[g[0]].InstanceID]; ok {
				b.alreadyProtected(g, p)
				continue
			}
			rest = append(rest, g)
		}
	}
	switch {
	case len(rest) == 0:
	case len(rest) == len(chunk) || callWide(err):
		// The same call would fail the same way.
		b.split(rest, err)
	default:
		b.bind(rest)
	}
}

// bind binds the grouped targets in one call, splitting on failure.
func (b binding) bind(gs [][]int) {
	if err := b.binder.CreatePolicyBindings(b.ctx, b.policy, ids(flatten(gs), b.targets)); err != nil {
		b.split(gs, err)
		return
	}
	b.protected(flatten(gs))
}

// split decides the grouped targets whose binding failed with err: a
// transient or call-wide failure is all of theirs; a single instance
// refused with CodeAlreadyBound is ALREADY_PROTECTED by this policy, and
// refused otherwise is BIND_FAILED with err; several are bound again in two
// halves.
func (b binding) split(gs [][]int, err error) {
	switch {
	case verdictOf(err) == RetryLater || callWide(err):
		b.failed(flatten(gs), err)
	case len(gs) == 1 && fault.CodeOf(err) == CodeAlreadyBound:
		b.alreadyProtected(gs[0], b.policy)
	case len(gs) == 1:
		b.failed(gs[0], err)
	default:
		half := len(gs) / 2
		b.bind(gs[:half])
		b.bind(gs[half:])
	}
}

func (b binding) protected(idx []int) {
	for _, i := range idx {
		b.results[i].Verdict = Protected
	}
}

func (b binding) failed(idx []int, err error) {
	for _, i := range idx {
		b.results[i].Verdict, b.results[i].Code, b.results[i].Err = verdictOf(err), codeOf(err), err
	}
}

// alreadyProtected records that the targets are bound to policy already.
func (b binding) alreadyProtected(idx []int, policy string) {
	for _, i := range idx {
		b.results[i].Verdict, b.results[i].PolicyID = AlreadyProtected, policy
	}
}

// callWide reports whether a failed CreatePolicyBindings call failed for
// a reason no instance in it can change, so that binding fewer instances
// at a time would only fail the same way.
func callWide(err error) bool {
	switch fault.CodeOf(err) {
	case CodePolicyNotFound, CodeForbidden:
		return true
	}
	return false
}

// verdictOf maps a failed call to RetryLater (fault.Retryable, or the
// invocation's ctx ending) or BindFailed (anything else: Permanent,
// Invalid, unclassified).
func verdictOf(err error) Verdict {
	if fault.Is(err, fault.Retryable) || fault.IsContext(err) {
		return RetryLater
	}
	return BindFailed
}

func codeOf(err error) string {
	if c := fault.CodeOf(err); c != "" {
		return c
	}
	return CodeUnclassified
}

// chunks splits target indexes into groups of at most MaxBatch distinct
// instance IDs; a repeated instance stays in its first occurrence's group.
func chunks(idx []int, targets []Target) [][]int {
	var out [][]int
	var cur []int
	inCur := map[string]bool{}
	where := map[string]int{}
	for _, i := range idx {
		id := targets[i].InstanceID
		if g, ok := where[id]; ok {
			if g == len(out) {
				cur = append(cur, i)
			} else {
				out[g] = append(out[g], i)
			}
			continue
		}
		if len(inCur) == MaxBatch {
			out, cur, inCur = append(out, cur), nil, map[string]bool{}
		}
		inCur[id] = true
		where[id] = len(out)
		cur = append(cur, i)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// groups groups target indexes by instance ID, in order of first
// appearance: one group per distinct instance.
func groups(idx []int, targets []Target) [][]int {
	var out [][]int
	where := map[string]int{}
	for _, i := range idx {
		id := targets[i].InstanceID
		g, ok := where[id]
		if !ok {
			g = len(out)
			where[id] = g
			out = append(out, nil)
		}
		out[g] = append(out[g], i)
	}
	return out
}

// flatten lists the indexes of groups.
func flatten(gs [][]int) []int {
	var out []int
	for _, g := range gs {
		out = append(out, g...)
	}
	return out
}

// ids returns the distinct instance IDs of the indexed targets, in order.
func ids(idx []int, targets []Target) []string {
	var out []string
	seen := map[string]bool{}
	for _, i := range idx {
		if id := targets[i].InstanceID; !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
