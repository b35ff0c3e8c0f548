// Package provision creates what the functions need before they are
// deployed, idempotently: the RAM role Function Compute runs them as (trusted
// by fc.aliyuncs.com), a custom least-privilege policy rendered from
// scripts/ram/policy.json for every region deployed (plus one statement per
// optional feature turned on: PolicyParams.TagWriteback, Topic, Audit), the
// policy's attachment to the role, and in each region the MNS job queue,
// install queue and dead-letter queue and the instance ledger's OSS bucket
// (private, never versioned, entries expiring after Plan.LedgerExpiryDays).
//
// A second run with the same plan changes nothing: every step reads first
// (GetRole, GetPolicy, ListPoliciesForRole, queue attributes, GetBucketInfo,
// GetBucketLifecycle) and writes only what differs (CreateRole or
// UpdateRole, CreatePolicy or CreatePolicyVersion with SetAsDefault,
// AttachPolicyToRole, CreateQueue, PutBucket, PutBucketLifecycle). A bucket
// that exists but cannot hold the ledger (versioned, not private, in another
// region) is reported, never changed.
//
// RAM is called through the core SDK's CommonRequest ([RAMClient]); queues are
// created through an [EnsureQueueFunc], in production [TaskQueueEnsurer];
// ledger buckets through an [EnsureBucketFunc], in production
// [OSSBucketEnsurer] (the OSS SDK, [BucketClient]).
//
// Errors are *fault.Error values (shared/fault): Invalid for a bad plan or
// template, and the kinds the adapters classify for API failures — Retryable
// for throttling, 5xx and network trouble, Permanent otherwise (access
// denied, a conflicting existing queue, a bucket unfit for the ledger:
// [ErrVersioned], [ErrNotPrivate], [ErrOtherRegion], …). A missing RAM entity
// or bucket wraps [ErrNotFound].
package provision

import (
	"context"
	"errors"
	"fmt"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

// Descriptions given to the resources this package creates.
const (
	roleDescription   = "Execution role of the hbr-autoinstall functions (Function Compute)."
	policyDescription = "hbr-autoinstall: list instances, install HBR clients, poll their tasks, send job messages."
)

// Queue attributes: the job queue keeps MNS's defaults; the dead-letter
// queue keeps messages for the maximum of 7 days so someone can look at them.
const (
	jobRetentionSeconds = 345600
	dlqRetentionSeconds = 604800
	maxMessageBytes     = 65536
	visibilitySeconds   = 30
)

// Plan says what to provision.
type Plan struct {
	PolicyParams
	// RoleName is the RAM role the functions run as (s.yaml's role).
	RoleName string
	// PolicyName is the custom policy attached to the role.
	PolicyName string
	// PolicyTemplate is the policy with placeholders (scripts/ram/policy.json).
	PolicyTemplate []byte
	// TrustPolicy is the role's trust policy (scripts/ram/trust-policy.json).
	TrustPolicy []byte
	// LedgerExpiryDays is how long a ledger entry is kept after it was
	// written (MinLedgerExpiryDays..MaxLedgerExpiryDays): a lifecycle rule
	// on LedgerPrefix deletes older ones.
	LedgerExpiryDays int
}

// Bounds of Plan.LedgerExpiryDays. Old entries may go: an instance whose
// entries expired is simply claimed afresh by its next announcement (a
// restart, a reconcile sweep), which finds its client installed and records
// ALREADY_INSTALLED. A day is far longer than any chain holds a claim (the
// lease is under an hour), so expiry never frees an instance in flight.
const (
	MinLedgerExpiryDays     = 1
	MaxLedgerExpiryDays     = 3650
	DefaultLedgerExpiryDays = 90
)

// Validate reports every malformed field of the plan as one Invalid error.
func (p Plan) Validate() error {
	var errs []error
	if err := p.PolicyParams.Validate(); err != nil {
		errs = append(errs, err)
	}
	if !roleRe.MatchString(p.RoleName) {
		errs = append(errs, fmt.Errorf("role name %q: 1-64 letters, digits, '.' or '-'", p.RoleName))
	}
	if !policyRe.MatchString(p.PolicyName) {
		errs = append(errs, fmt.Errorf("policy name %q: 1-128 letters, digits or '-'", p.PolicyName))
	}
	if _, err := decodePolicy(p.TrustPolicy); err != nil {
		errs = append(errs, fmt.Errorf("trust policy: %w", err))
	}
	if p.LedgerExpiryDays < MinLedgerExpiryDays || p.LedgerExpiryDays > MaxLedgerExpiryDays {
		errs = append(errs, fmt.Errorf("ledger expiry of %d days: want %d..%d", p.LedgerExpiryDays, MinLedgerExpiryDays, MaxLedgerExpiryDays))
	}
	if len(errs) > 0 {
		return fault.Wrap("provision.Plan", fault.Invalid, "", errors.Join(errs...))
	}
	return nil
}

// QueueSpec is one MNS queue to ensure.
type QueueSpec struct {
	Region string
	Name   string
	// MessageRetentionPeriod is how long an unconsumed message is kept, in
	// seconds (60..604800).
	MessageRetentionPeriod int32
	// MaxMessageSize is the largest message body, in bytes (1024..65536).
	MaxMessageSize int32
	// VisibilityTimeout is how long a received message stays invisible, in
	// seconds (1..43200).
	VisibilityTimeout int32
}

// Queues lists the queues of the plan: the job queue, the install queue
// (the same attributes: it carries the same kind of short-lived work) and
// the dead-letter queue, in every region, in region order.
func (p Plan) Queues() []QueueSpec {
	var qs []QueueSpec
	for _, r := range p.Regions {
		qs = append(qs,
			QueueSpec{Region: r, Name: p.Queue, MessageRetentionPeriod: jobRetentionSeconds, MaxMessageSize: maxMessageBytes, VisibilityTimeout: visibilitySeconds},
			QueueSpec{Region: r, Name: p.InstallQueue, MessageRetentionPeriod: jobRetentionSeconds, MaxMessageSize: maxMessageBytes, VisibilityTimeout: visibilitySeconds},
			QueueSpec{Region: r, Name: p.DLQ, MessageRetentionPeriod: dlqRetentionSeconds, MaxMessageSize: maxMessageBytes, VisibilityTimeout: visibilitySeconds},
		)
	}
	return qs
}

// EnsureQueueFunc creates a queue unless it already exists with the same
// attributes, reporting whether it created one. It returns an error for a
// queue that exists with other attributes.
type EnsureQueueFunc func(ctx context.Context, q QueueSpec) (created bool, err error)

// BucketSpec is one region's ledger bucket to ensure.
type BucketSpec struct {
	Region string
	Name   string
	// Prefix is the ledger's key prefix, which the lifecycle rule covers.
	Prefix string
	// ExpiryDays is how many days after it was written an entry is
	// deleted.
	ExpiryDays int
}

// Buckets lists the ledger bucket of every region, in region order.
func (p Plan) Buckets() []BucketSpec {
	bs := make([]BucketSpec, 0, len(p.Regions))
	for _, r := range p.Regions {
		bs = append(bs, BucketSpec{Region: r, Name: LedgerBucketName(p.LedgerBucket, p.AccountID, r),
			Prefix: p.LedgerPrefix, ExpiryDays: p.LedgerExpiryDays})
	}
	return bs
}

// BucketResult says what ensuring a bucket did to the bucket and to its
// lifecycle rule.
type BucketResult struct {
	Bucket, Lifecycle Result
}

// EnsureBucketFunc creates a ledger bucket unless it exists, checks that an
// existing one can hold the ledger (an error if not; it is never changed),
// and sets its lifecycle rule unless it is set already.
type EnsureBucketFunc func(ctx context.Context, b BucketSpec) (BucketResult, error)

// Result says what a step did.
type Result string

// Step results.
const (
	Created   Result = "created"
	Updated   Result = "updated"
	Attached  Result = "attached"
	Unchanged Result = "unchanged"
)

// Step is one resource the run looked at.
type Step struct {
	// Resource is "role", "policy", "attachment", "queue", "bucket" or
	// "lifecycle".
	Resource string
	// Name names the resource ("hbr-autoinstall-fc", "policy→role", …).
	Name string
	// Region is set for regional resources (queues, buckets).
	Region string
	Result Result
}

// String renders a step for a log line.
func (s Step) String() string {
	if s.Region != "" {
		return fmt.Sprintf("%s %s (%s): %s", s.Resource, s.Name, s.Region, s.Result)
	}
	return fmt.Sprintf("%s %s: %s", s.Resource, s.Name, s.Result)
}

// Provisioner applies plans.
type Provisioner struct {
	// RAM is the RAM API.
	RAM *RAMClient
	// EnsureQueue creates MNS queues.
	EnsureQueue EnsureQueueFunc
	// EnsureBucket creates the ledger buckets.
	EnsureBucket EnsureBucketFunc
	// Progress, if set, is called after each step.
	Progress func(Step)
}

// Run applies the plan: role, policy, attachment, then the queues of every
// region, then the ledger bucket of every region. It stops at the first
// error and returns the steps done so far.
func (p *Provisioner) Run(ctx context.Context, plan Plan) ([]Step, error) {
	const op = "provision.Run"
	if p.RAM == nil || p.EnsureQueue == nil || p.EnsureBucket == nil {
		return nil, fault.Invalidf(op, "provisioner needs a RAM client, a queue ensurer and a bucket ensurer")
	}
	if err := plan.Validate(); err != nil {
		return nil, err
	}
	policy, err := RenderPolicy(plan.PolicyTemplate, plan.PolicyParams)
	if err != nil {
		return nil, err
	}

	var steps []Step
	record := func(s Step) {
		steps = append(steps, s)
		if p.Progress != nil {
			p.Progress(s)
		}
	}

	result, err := p.ensureRole(ctx, plan.RoleName, string(plan.TrustPolicy))
	if err != nil {
		return steps, fmt.Errorf("role %s: %w", plan.RoleName, err)
	}
	record(Step{Resource: "role", Name: plan.RoleName, Result: result})

	result, err = p.ensurePolicy(ctx, plan.PolicyName, string(policy))
	if err != nil {
		return steps, fmt.Errorf("policy %s: %w", plan.PolicyName, err)
	}
	record(Step{Resource: "policy", Name: plan.PolicyName, Result: result})

	result, err = p.ensureAttached(ctx, plan.PolicyName, plan.RoleName)
	if err != nil {
		return steps, fmt.Errorf("attach policy %s to role %s: %w", plan.PolicyName, plan.RoleName, err)
	}
	record(Step{Resource: "attachment", Name: plan.PolicyName + "→" + plan.RoleName, Result: result})

	for _, q := range plan.Queues() {
		created, err := p.EnsureQueue(ctx, q)
		if err != nil {
			return steps, fmt.Errorf("queue %s in %s: %w", q.Name, q.Region, err)
		}
		result := Unchanged
		if created {
			result = Created
		}
		record(Step{Resource: "queue", Name: q.Name, Region: q.Region, Result: result})
	}
	for _, b := range plan.Buckets() {
		res, err := p.EnsureBucket(ctx, b)
		if res.Bucket != "" {
			record(Step{Resource: "bucket", Name: b.Name, Region: b.Region, Result: res.Bucket})
		}
		if err != nil {
			return steps, fmt.Errorf("ledger bucket %s in %s: %w", b.Name, b.Region, err)
		}
		record(Step{Resource: "lifecycle", Name: b.LifecycleName(), Region: b.Region, Result: res.Lifecycle})
	}
	return steps, nil
}

// LifecycleName names the bucket's lifecycle rule in steps and plans:
// "<bucket>/<prefix>* expires after N days".
func (b BucketSpec) LifecycleName() string {
	return fmt.Sprintf("%s/%s* expires after %d days", b.Name, b.Prefix, b.ExpiryDays)
}

// ensureRole creates the role, or replaces its trust policy when it differs.
func (p *Provisioner) ensureRole(ctx context.Context, name, trust string) (Result, error) {
	role, err := p.RAM.GetRole(ctx, name)
	switch {
	case errors.Is(err, ErrNotFound):
		if _, err := p.RAM.CreateRole(ctx, name, trust, roleDescription); err != nil {
			return "", err
		}
		return Created, nil
	case err != nil:
		return "", err
	}
	same, err := SameDocument(role.AssumeRolePolicyDocument, trust)
	if err != nil {
		// An unreadable trust policy on the service side is replaced.
		same = false
	}
	if same {
		return Unchanged, nil
	}
	if err := p.RAM.UpdateRoleTrust(ctx, name, trust); err != nil {
		return "", err
	}
	return Updated, nil
}

// ensurePolicy creates the policy, or adds a default version when the
// current default differs from doc.
func (p *Provisioner) ensurePolicy(ctx context.Context, name, doc string) (Result, error) {
	current, err := p.RAM.GetPolicy(ctx, name)
	switch {
	case errors.Is(err, ErrNotFound):
		if err := p.RAM.CreatePolicy(ctx, name, doc, policyDescription); err != nil {
			return "", err
		}
		return Created, nil
	case err != nil:
		return "", err
	}
	same, err := SameDocument(current.Document, doc)
	if err == nil && same {
		return Unchanged, nil
	}
	if err := p.RAM.CreatePolicyVersion(ctx, name, doc); err != nil {
		return "", err
	}
	return Updated, nil
}

// ensureAttached attaches the custom policy to the role unless it already is.
func (p *Provisioner) ensureAttached(ctx context.Context, policy, role string) (Result, error) {
	attached, err := p.RAM.ListPoliciesForRole(ctx, role)
	if err != nil {
		return "", err
	}
	for _, a := range attached {
		if a.PolicyName == policy && a.PolicyType == policyTypeCustom {
			return Unchanged, nil
		}
	}
	if err := p.RAM.AttachPolicyToRole(ctx, policy, role); err != nil {
		return "", err
	}
	return Attached, nil
}
