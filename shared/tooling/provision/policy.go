package provision

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

// Placeholders understood in the policy template (scripts/ram/policy.json).
// A Resource entry that contains PlaceholderRegion is repeated once per
// region, in place, so the policy covers every region deployed.
// PlaceholderLedgerBucket stands for each region's ledger bucket: it is
// written as the bucket pattern (PolicyParams.LedgerBucket) with
// ${ACCOUNT_ID} and ${REGION} in it, so an entry naming it is repeated per
// region like any other.
const (
	PlaceholderRegion       = "${REGION}"
	PlaceholderAccount      = "${ACCOUNT_ID}"
	PlaceholderQueue        = "${QUEUE}"
	PlaceholderInstallQueue = "${INSTALL_QUEUE}"
	PlaceholderDLQ          = "${DLQ}"
	PlaceholderLedgerBucket = "${LEDGER_BUCKET}"
	PlaceholderLedgerPrefix = "${LEDGER_PREFIX}"
)

// The ledger's two statements in the template use OSS's RAM syntax: the
// objects as acs:oss:*:<account>:<bucket>/<prefix>* (oss:PutObject,
// oss:GetObject, oss:DeleteObject), the bucket as acs:oss:*:<account>:<bucket>
// for oss:ListObjects, which ListObjectsV2 needs, allowed only with the
// condition {"StringLike": {"oss:Prefix": "<prefix>*"}}. Sources ([DOC]):
// resource forms and the Condition element,
// https://www.alibabacloud.com/help/en/oss/user-guide/authorization-syntax-and-elements;
// a StringLike oss:Prefix condition on oss:ListObjects with the bucket as
// resource, https://www.alibabacloud.com/help/doc-detail/142249.htm;
// ListObjectsV2 needs oss:ListObjects,
// https://www.alibabacloud.com/help/en/oss/developer-reference/listobjectsv2.

// Placeholders of a bucket pattern (PolicyParams.LedgerBucket,
// DefaultLedgerBucket), the same as in an endpoint pattern.
const (
	PatternAccount = "{account}"
	PatternRegion  = "{region}"
)

// Ledger defaults: the names shared/config derives when LEDGER_BUCKET and
// LEDGER_PREFIX are not set. One bucket per region: the functions reach
// the ledger in their own region.
const (
	DefaultLedgerBucket = "hbr-autoinstall-ledger-{account}-{region}"
	DefaultLedgerPrefix = "hbr-autoinstall/ledger/"
)

// MaxPolicyBytes is RAM's limit on a policy document.
const MaxPolicyBytes = 6144

var (
	regionRe  = regexp.MustCompile(`^[a-z]{2}(-[a-z0-9]+)+$`)
	accountRe = regexp.MustCompile(`^[0-9]{1,32}$`)
	queueRe   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,119}$`)
	// prefixRe is LEDGER_PREFIX's rule in shared/config: 2-200 letters,
	// digits or "/_.-", not starting with '/', ending with '/' (no RAM
	// wildcard, '*' or '?', can slip into the policy through it).
	prefixRe    = regexp.MustCompile(`^[A-Za-z0-9_.-][A-Za-z0-9/_.-]{0,198}/$`)
	roleRe      = regexp.MustCompile(`^[A-Za-z0-9.-]{1,64}$`)
	policyRe    = regexp.MustCompile(`^[A-Za-z0-9-]{1,128}$`)
	leftoverRe  = regexp.MustCompile(`\$\{[^}]*\}`)
	errNoRegion = errors.New("no regions")
)

// PolicyParams are the values rendered into the policy template, and the
// optional features whose permissions are added to it.
type PolicyParams struct {
	AccountID string
	Regions   []string
	// Queue is the job queue, InstallQueue the install function's queue
	// (INSTALL_QUEUE_NAME), DLQ the dead-letter queue.
	Queue        string
	InstallQueue string
	DLQ          string
	// LedgerBucket is the pattern of each region's ledger bucket:
	// {account} and {region} are replaced (DefaultLedgerBucket). A name
	// without {region} is allowed for one region only: a bucket lives in
	// one region and the functions reach the ledger in theirs.
	LedgerBucket string
	// LedgerPrefix starts every ledger key (LEDGER_PREFIX): the functions
	// get the object actions on it only.
	LedgerPrefix string
	// TagWriteback adds ecs:TagResources on the account's instances in
	// every region (OUTCOME_TAG_KEY).
	TagWriteback bool
	// Topic, when set, adds mns:PublishMessage on that topic in every
	// region (OUTCOME_TOPIC).
	Topic string
	// Bind adds hbr:CreatePolicyBindings and hbr:DescribePolicyBindings
	// (BACKUP_POLICY_ID or BACKUP_POLICY_BY_TAG binds instances to backup
	// policies). Neither action has resource-level permissions (HBR API
	// reference, RAM authorization tables), hence Resource "*".
	Bind bool
}

// OptionalStatements returns the statements the optional features add to
// the template, in a fixed order (tag write-back, topic, bind), with the
// same placeholders as the template (${REGION}, ${ACCOUNT_ID}) and the
// topic's name written in.
func (p PolicyParams) OptionalStatements() []map[string]any {
	var out []map[string]any
	if p.TagWriteback {
		out = append(out, map[string]any{"Effect": "Allow", "Action": "ecs:TagResources",
			"Resource": "acs:ecs:" + PlaceholderRegion + ":" + PlaceholderAccount + ":instance/*"})
	}
	if p.Topic != "" {
		out = append(out, map[string]any{"Effect": "Allow", "Action": "mns:PublishMessage",
			"Resource": "acs:mns:" + PlaceholderRegion + ":" + PlaceholderAccount + ":/topics/" + p.Topic + "/messages"})
	}
	if p.Bind {
		out = append(out, map[string]any{"Effect": "Allow",
			"Action": []any{"hbr:CreatePolicyBindings", "hbr:DescribePolicyBindings"}, "Resource": "*"})
	}
	return out
}

// Validate reports every malformed value in p as one Invalid error.
func (p PolicyParams) Validate() error {
	var errs []error
	if !accountRe.MatchString(p.AccountID) {
		errs = append(errs, fmt.Errorf("account id %q is not a number", p.AccountID))
	}
	if len(p.Regions) == 0 {
		errs = append(errs, errNoRegion)
	}
	seen := map[string]bool{}
	for _, r := range p.Regions {
		if !regionRe.MatchString(r) {
			errs = append(errs, fmt.Errorf("region %q is not a region id", r))
		}
		if seen[r] {
			errs = append(errs, fmt.Errorf("region %q is listed twice", r))
		}
		seen[r] = true
	}
	queues := []struct{ what, name string }{{"queue", p.Queue}, {"install queue", p.InstallQueue}, {"dead-letter queue", p.DLQ}}
	for i, q := range queues {
		if !queueRe.MatchString(q.name) {
			errs = append(errs, fmt.Errorf("%s name %q: an MNS queue name is 1-120 letters, digits or '-', starting with a letter", q.what, q.name))
		}
		for _, o := range queues[:i] {
			if q.name != "" && q.name == o.name {
				errs = append(errs, fmt.Errorf("the %s and the %s are both %q", o.what, q.what, q.name))
			}
		}
	}
	if err := p.validLedger(); err != nil {
		errs = append(errs, err)
	}
	if p.Topic != "" && !queueRe.MatchString(p.Topic) {
		errs = append(errs, fmt.Errorf("topic name %q: an MNS topic name is 1-120 letters, digits or '-', starting with a letter", p.Topic))
	}
	if len(errs) > 0 {
		return fault.Wrap("provision.PolicyParams", fault.Invalid, "", errors.Join(errs...))
	}
	return nil
}

// validLedger checks the ledger bucket pattern and prefix.
func (p PolicyParams) validLedger() error {
	var errs []error
	if !prefixRe.MatchString(p.LedgerPrefix) || strings.Contains(p.LedgerPrefix, "//") {
		errs = append(errs, fmt.Errorf("ledger prefix %q: 2-200 letters, digits or \"/_.-\", not starting with /, ending with / (as LEDGER_PREFIX)", p.LedgerPrefix))
	}
	if len(p.Regions) > 1 && !strings.Contains(p.LedgerBucket, PatternRegion) {
		errs = append(errs, fmt.Errorf("ledger bucket %q names one bucket for %d regions: a bucket lives in one region, so the name needs %s (e.g. %s)",
			p.LedgerBucket, len(p.Regions), PatternRegion, DefaultLedgerBucket))
	}
	for _, r := range p.Regions {
		if name := LedgerBucketName(p.LedgerBucket, p.AccountID, r); !config.ValidBucket(name) {
			errs = append(errs, fmt.Errorf("ledger bucket %q (from %q): an OSS bucket name is 3-63 lower-case letters, digits or '-', starting and ending with a letter or digit", name, p.LedgerBucket))
			break
		}
	}
	return errors.Join(errs...)
}

// LedgerBucketName is the ledger bucket of one region: pattern with
// {account} and {region} replaced.
func LedgerBucketName(pattern, account, region string) string {
	return strings.NewReplacer(PatternAccount, account, PatternRegion, region).Replace(pattern)
}

// RenderPolicy renders a policy template: the optional statements of p
// (OptionalStatements) are appended, ${LEDGER_BUCKET} is written as the
// bucket pattern with ${ACCOUNT_ID} and ${REGION}, every Resource entry
// containing ${REGION} is repeated once per region (in the order given),
// and ${REGION}, ${ACCOUNT_ID}, ${QUEUE}, ${INSTALL_QUEUE}, ${DLQ} and
// ${LEDGER_PREFIX} are replaced. The result is compact JSON
// with sorted keys. It returns an Invalid error for bad parameters, a
// template that is not a JSON policy, an unknown placeholder, or a result
// larger than MaxPolicyBytes.
func RenderPolicy(template []byte, p PolicyParams) ([]byte, error) {
	const op = "provision.RenderPolicy"
	if err := p.Validate(); err != nil {
		return nil, err
	}
	doc, err := decodePolicy(template)
	if err != nil {
		return nil, fault.Wrap(op, fault.Invalid, "", fmt.Errorf("policy template: %w", err))
	}
	fixed := strings.NewReplacer(PlaceholderAccount, p.AccountID, PlaceholderQueue, p.Queue,
		PlaceholderInstallQueue, p.InstallQueue, PlaceholderDLQ, p.DLQ, PlaceholderLedgerPrefix, p.LedgerPrefix)
	for _, st := range p.OptionalStatements() {
		doc["Statement"] = append(doc["Statement"].([]any), st)
	}
	bucket := strings.NewReplacer(PlaceholderLedgerBucket,
		strings.NewReplacer(PatternAccount, PlaceholderAccount, PatternRegion, PlaceholderRegion).Replace(p.LedgerBucket))
	doc = substitute(doc, bucket, nil).(map[string]any)
	for _, st := range doc["Statement"].([]any) {
		st := st.(map[string]any)
		if res, ok := st["Resource"]; ok {
			st["Resource"] = expandRegions(res, p.Regions)
		}
	}
	out, err := json.Marshal(substitute(doc, fixed, p.Regions))
	if err != nil {
		return nil, fault.Wrap(op, fault.Invalid, "", fmt.Errorf("encode policy: %w", err))
	}
	if m := leftoverRe.Find(out); m != nil {
		return nil, fault.Invalidf(op, "policy template uses unknown placeholder %s", m)
	}
	if len(out) > MaxPolicyBytes {
		return nil, fault.Invalidf(op, "rendered policy is %d bytes, over RAM's limit of %d: deploy to fewer regions per role", len(out), MaxPolicyBytes)
	}
	return out, nil
}

// decodePolicy decodes a policy document and checks its outline: a Version
// and a non-empty Statement list of objects.
func decodePolicy(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON object")
	}
	if _, ok := doc["Version"].(string); !ok {
		return nil, errors.New(`missing "Version"`)
	}
	sts, ok := doc["Statement"].([]any)
	if !ok || len(sts) == 0 {
		return nil, errors.New(`missing "Statement" list`)
	}
	for i, st := range sts {
		if _, ok := st.(map[string]any); !ok {
			return nil, fmt.Errorf("statement %d is not an object", i)
		}
	}
	return doc, nil
}

// expandRegions repeats every resource string that contains ${REGION} once
// per region, keeping the order of the template.
func expandRegions(res any, regions []string) any {
	var in []any
	switch v := res.(type) {
	case string:
		if !strings.Contains(v, PlaceholderRegion) {
			return v
		}
		in = []any{v}
	case []any:
		in = v
	default:
		return res
	}
	out := make([]any, 0, len(in)*len(regions))
	for _, r := range in {
		s, ok := r.(string)
		if !ok || !strings.Contains(s, PlaceholderRegion) {
			out = append(out, r)
			continue
		}
		for _, region := range regions {
			out = append(out, strings.ReplaceAll(s, PlaceholderRegion, region))
		}
	}
	if len(out) == 1 {
		return out[0]
	}
	return out
}

// substitute replaces the fixed placeholders in every string of v. A
// ${REGION} left outside Resource is replaced by the only region, or left in
// place (and reported) when there are several.
func substitute(v any, r *strings.Replacer, regions []string) any {
	switch t := v.(type) {
	case string:
		s := r.Replace(t)
		if len(regions) == 1 {
			s = strings.ReplaceAll(s, PlaceholderRegion, regions[0])
		}
		return s
	case []any:
		for i := range t {
			t[i] = substitute(t[i], r, regions)
		}
		return t
	case map[string]any:
		for k := range t {
			t[k] = substitute(t[k], r, regions)
		}
		return t
	default:
		return v
	}
}

// SameDocument reports whether two policy documents grant the same thing:
// equal as JSON values once lists of strings are sorted and one-element lists
// are compared as their element (RAM treats "Action": "x" and ["x"] alike).
// It returns an error if either is not JSON.
func SameDocument(a, b string) (bool, error) {
	ca, err := canonical(a)
	if err != nil {
		return false, fmt.Errorf("first document: %w", err)
	}
	cb, err := canonical(b)
	if err != nil {
		return false, fmt.Errorf("second document: %w", err)
	}
	return reflect.DeepEqual(ca, cb), nil
}

func canonical(doc string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return normalize(v), nil
}

func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k := range t {
			t[k] = normalize(t[k])
		}
		return t
	case []any:
		strs := make([]string, 0, len(t))
		for i := range t {
			t[i] = normalize(t[i])
			if s, ok := t[i].(string); ok {
				strs = append(strs, s)
			}
		}
		if len(strs) == len(t) {
			sort.Strings(strs)
			for i, s := range strs {
				t[i] = s
			}
		}
		if len(t) == 1 {
			return t[0]
		}
		return t
	default:
		return v
	}
}
