package provision

// The instance ledger's bucket, through the OSS SDK
// (github.com/aliyun/alibabacloud-oss-go-sdk-v2 v1.6.1, as shared/ossstore).
//
// What it relies on ([DOC] an official help page, [CODE] the SDK source,
// [UNVERIFIED] an assumption to confirm in the cloud):
//
//   - x-oss-forbid-overwrite, the ledger's conditional create, has no effect
//     on a bucket whose versioning is Enabled or Suspended ([CODE] the doc
//     comment of PutObjectRequest.ForbidOverwrite, oss/api_op_object.go); in
//     a suspended bucket a PutObject overwrites the "null" version ([DOC]
//     https://www.alibabacloud.com/help/en/oss/user-guide/manage-objects-in-a-versioning-suspended-bucket).
//     A bucket once versioned can be suspended but not made unversioned
//     again ([UNVERIFIED] for OSS; S3 documents it, and osssim plays it), so
//     a versioned bucket is reported, never "fixed": the ledger needs a new
//     bucket.
//   - GetBucketInfo returns the bucket's Location ("oss-<region>"), ACL
//     (AccessControlList/Grant) and Versioning in one call ([CODE]
//     BucketInfo, oss/api_op_bucket.go); a missing bucket is 404
//     NoSuchBucket; a bucket of another account answers 403 AccessDenied
//     ([UNVERIFIED]).
//   - PutBucket takes the ACL in x-oss-acl ([CODE] PutBucketRequest.Acl); a
//     name taken is 409 BucketAlreadyExists (bucket names are global).
//   - PutBucketLifecycle sets the bucket's whole lifecycle configuration
//     ([UNVERIFIED]: the API takes the full rule list, as S3's does), so the
//     rules already there are read and written back beside ours; rules whose
//     prefixes overlap for the same action are refused ([DOC]
//     https://www.alibabacloud.com/help/en/oss/support/0014-00000082); an
//     Expiration of Days deletes an object that many days after it was last
//     modified ([DOC] https://alibabacloud.com/help/en/doc-detail/31904.htm).
//     A bucket without a configuration answers GetBucketLifecycle with 404
//     NoSuchLifecycle.
//   - Throttling and server trouble: HTTP 5xx, 429, and the 503 codes listed
//     in shared/ossstore's package comment.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	osscred "github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/retry"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
)

// DefaultOSSEndpoint is the public OSS endpoint; {region} is replaced per
// bucket (OSS_ENDPOINT's default).
const DefaultOSSEndpoint = "oss-{region}.aliyuncs.com"

// LedgerRuleID is the ID of the lifecycle rule that expires ledger entries.
const LedgerRuleID = "hbr-autoinstall-ledger-expiry"

const (
	opGetBucketInfo      = "oss.GetBucketInfo"
	opPutBucket          = "oss.PutBucket"
	opGetBucketLifecycle = "oss.GetBucketLifecycle"
	opPutBucketLifecycle = "oss.PutBucketLifecycle"
	opCheckBucket        = "provision.LedgerBucket"
)

// Why an existing bucket cannot hold the ledger; wrapped by the Permanent
// errors EnsureLedger and CheckLedgerBucket return.
var (
	// ErrVersioned: versioning is Enabled or Suspended, so conditional
	// creates overwrite and two jobs could both own one instance.
	ErrVersioned = errors.New("the bucket is versioned")
	// ErrNotPrivate: anyone may read (or write) the bucket.
	ErrNotPrivate = errors.New("the bucket is not private")
	// ErrOtherRegion: the bucket is not in the region whose functions use it.
	ErrOtherRegion = errors.New("the bucket is in another region")
)

// BucketInfo is what GetBucketInfo says about a bucket.
type BucketInfo struct {
	Name string
	// Location is "oss-<region>".
	Location string
	// ACL is "private", "public-read" or "public-read-write".
	ACL string
	// Versioning is "" (never enabled), "Enabled" or "Suspended".
	Versioning string
}

// Versioned reports whether versioning is Enabled or Suspended.
func (b BucketInfo) Versioned() bool {
	v := strings.ToLower(b.Versioning)
	return v == "enabled" || v == "suspended"
}

// CheckLedgerBucket returns a Permanent error, wrapping ErrVersioned,
// ErrNotPrivate or ErrOtherRegion, that says why the bucket cannot hold
// region's instance ledger; nil when it can.
func CheckLedgerBucket(b BucketInfo, region string) error {
	switch {
	case b.Versioned():
		return fault.Wrap(opCheckBucket, fault.Permanent, "BucketVersioned", fmt.Errorf(
			"%w (versioning %s): OSS ignores x-oss-forbid-overwrite on a versioned bucket, so the ledger's create-once entries could be overwritten and two jobs could both own an instance; versioning cannot be turned off, so give the ledger a new bucket (-ledger-bucket, and LEDGER_BUCKET for the functions)",
			ErrVersioned, b.Versioning))
	case !strings.EqualFold(b.ACL, string(oss.BucketACLPrivate)):
		return fault.Wrap(opCheckBucket, fault.Permanent, "BucketNotPrivate", fmt.Errorf(
			"%w (ACL %q): ledger entries name every instance, job and outcome; make the bucket private (OSS console or ossutil) and run again",
			ErrNotPrivate, b.ACL))
	case b.Location != "" && b.Location != "oss-"+region:
		return fault.Wrap(opCheckBucket, fault.Permanent, "BucketInOtherRegion", fmt.Errorf(
			"%w (%s, not oss-%s): the functions of %s reach the ledger in their own region; give this region its own bucket (-ledger-bucket with {region})",
			ErrOtherRegion, b.Location, region, region))
	}
	return nil
}

// BucketClient manages buckets in one region with the OSS SDK. It makes one
// attempt per call (no SDK retries: a provisioning run is simply run again)
// and is safe for concurrent use.
type BucketClient struct {
	sdk     *oss.Client
	region  string
	timeout time.Duration
}

// NewBucketClient returns a client for region. endpoint is a host (default
// DefaultOSSEndpoint; {region} is replaced), an https URL, or an http URL
// on a loopback address (the emulator, addressed path-style). timeout bounds
// each call (default 15 s). Errors are Invalid (Op "oss.New").
func NewBucketClient(creds cloudauth.Credentials, endpoint, region string, timeout time.Duration) (*BucketClient, error) {
	const op = "oss.New"
	if !creds.Valid() {
		return nil, fault.Invalidf(op, "no credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET")
	}
	if !ident.Region.Valid(region) {
		return nil, fault.Invalidf(op, "region %q is not a region id", region)
	}
	if endpoint == "" {
		endpoint = DefaultOSSEndpoint
	}
	host, scheme, err := parseEndpoint(strings.ReplaceAll(endpoint, PatternRegion, region))
	if err != nil {
		return nil, fault.Wrap(op, fault.Invalid, "", err)
	}
	hostname := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		hostname = h
	}
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	cfg := oss.NewConfig().
		WithRegion(region).
		WithEndpoint(strings.ToLower(scheme) + "://" + host).
		WithUsePathStyle(ident.Loopback(hostname)).
		WithSignatureVersion(oss.SignatureVersionV4).
		WithCredentialsProvider(osscred.NewStaticCredentialsProvider(creds.AccessKeyID, creds.AccessKeySecret, creds.SecurityToken)).
		WithRetryer(retry.NopRetryer{}).
		WithLogLevel(oss.LogOff).
		WithUserAgent("hbr-autoinstall-provision")
	return &BucketClient{sdk: oss.NewClient(cfg), region: region, timeout: timeout}, nil
}

// Region returns the client's region.
func (c *BucketClient) Region() string { return c.region }

func (c *BucketClient) call(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return fn(ctx)
}

// Info reads a bucket with GetBucketInfo. A missing bucket is an error
// wrapping ErrNotFound (code NoSuchBucket).
func (c *BucketClient) Info(ctx context.Context, bucket string) (BucketInfo, error) {
	var res *oss.GetBucketInfoResult
	err := c.call(ctx, func(ctx context.Context) (err error) {
		res, err = c.sdk.GetBucketInfo(ctx, &oss.GetBucketInfoRequest{Bucket: oss.Ptr(bucket)})
		return err
	})
	if err != nil {
		return BucketInfo{}, classifyOSS(opGetBucketInfo, "bucket "+bucket, ctx, err)
	}
	b := res.BucketInfo
	return BucketInfo{Name: oss.ToString(b.Name), Location: oss.ToString(b.Location), ACL: oss.ToString(b.ACL),
		Versioning: oss.ToString(b.Versioning)}, nil
}

// Create creates a private, Standard bucket in the client's region (never
// versioned: versioning is off until someone turns it on).
func (c *BucketClient) Create(ctx context.Context, bucket string) error {
	err := c.call(ctx, func(ctx context.Context) error {
		_, err := c.sdk.PutBucket(ctx, &oss.PutBucketRequest{
			Bucket:                    oss.Ptr(bucket),
			Acl:                       oss.BucketACLPrivate,
			CreateBucketConfiguration: &oss.CreateBucketConfiguration{StorageClass: oss.StorageClassStandard},
		})
		return err
	})
	if err != nil {
		err = classifyOSS(opPutBucket, "bucket "+bucket, ctx, err)
		if fault.CodeOf(err) == "BucketAlreadyExists" {
			return fmt.Errorf("the name is taken by another account (bucket names are global): choose another with -ledger-bucket and set LEDGER_BUCKET to it: %w", err)
		}
		return err
	}
	return nil
}

// EnsureLedger creates b's bucket unless it exists, checks an existing one
// with CheckLedgerBucket (and changes nothing when it fails), and makes
// sure its lifecycle has the rule LedgerRuleID: entries under b.Prefix
// expire b.ExpiryDays after they were written. The other lifecycle rules of
// the bucket are kept as they are.
func (c *BucketClient) EnsureLedger(ctx context.Context, b BucketSpec) (BucketResult, error) {
	var res BucketResult
	info, err := c.Info(ctx, b.Name)
	switch {
	case errors.Is(err, ErrNotFound):
		if err := c.Create(ctx, b.Name); err != nil {
			return res, err
		}
		res.Bucket = Created
	case err != nil:
		return res, err
	default:
		if err := CheckLedgerBucket(info, b.Region); err != nil {
			return res, err
		}
		res.Bucket = Unchanged
	}
	res.Lifecycle, err = c.ensureExpiry(ctx, b)
	return res, err
}

// expiryRule is the lifecycle rule EnsureLedger keeps on the ledger prefix.
func expiryRule(b BucketSpec) oss.LifecycleRule {
	return oss.LifecycleRule{
		ID:         oss.Ptr(LedgerRuleID),
		Prefix:     oss.Ptr(b.Prefix),
		Status:     oss.Ptr("Enabled"),
		Expiration: &oss.LifecycleRuleExpiration{Days: oss.Ptr(int32(b.ExpiryDays))},
	}
}

// sameExpiry reports whether r does exactly what want does: enabled, on
// the same prefix, expiring after the same days, and nothing else.
func sameExpiry(r, want oss.LifecycleRule) bool {
	e := r.Expiration
	return oss.ToString(r.Status) == oss.ToString(want.Status) &&
		oss.ToString(r.Prefix) == oss.ToString(want.Prefix) &&
		e != nil && e.Days != nil && *e.Days == *want.Expiration.Days && e.CreatedBeforeDate == nil && e.Date == nil &&
		len(r.Transitions) == 0 && len(r.Tags) == 0 && r.Filter == nil &&
		r.NoncurrentVersionExpiration == nil && len(r.NoncurrentVersionTransitions) == 0
}

func (c *BucketClient) ensureExpiry(ctx context.Context, b BucketSpec) (Result, error) {
	want := expiryRule(b)
	var cur *oss.GetBucketLifecycleResult
	err := c.call(ctx, func(ctx context.Context) (err error) {
		cur, err = c.sdk.GetBucketLifecycle(ctx, &oss.GetBucketLifecycleRequest{Bucket: oss.Ptr(b.Name)})
		return err
	})
	var rules []oss.LifecycleRule
	switch err = classifyOSS(opGetBucketLifecycle, "bucket "+b.Name, ctx, err); {
	case fault.CodeOf(err) == "NoSuchLifecycle":
	case err != nil:
		return "", err
	case cur.LifecycleConfiguration != nil:
		rules = cur.LifecycleConfiguration.Rules
	}
	result := Created
	out := make([]oss.LifecycleRule, 0, len(rules)+1)
	for _, r := range rules {
		if oss.ToString(r.ID) != LedgerRuleID {
			out = append(out, r)
			continue
		}
		if sameExpiry(r, want) {
			return Unchanged, nil
		}
		result = Updated
	}
	out = append(out, want)
	err = c.call(ctx, func(ctx context.Context) error {
		_, err := c.sdk.PutBucketLifecycle(ctx, &oss.PutBucketLifecycleRequest{
			Bucket: oss.Ptr(b.Name), LifecycleConfiguration: &oss.LifecycleConfiguration{Rules: out}})
		return err
	})
	if err != nil {
		return "", classifyOSS(opPutBucketLifecycle, "bucket "+b.Name, ctx, err)
	}
	return result, nil
}

// OSSBucketEnsurer returns an EnsureBucketFunc that ensures each bucket
// with a BucketClient at the endpoint pattern ({region} replaced) of the
// bucket's region.
func OSSBucketEnsurer(creds cloudauth.Credentials, endpointPattern string, timeout time.Duration) EnsureBucketFunc {
	return func(ctx context.Context, b BucketSpec) (BucketResult, error) {
		c, err := NewBucketClient(creds, endpointPattern, b.Region, timeout)
		if err != nil {
			return BucketResult{}, err
		}
		return c.EnsureLedger(ctx, b)
	}
}

// ossRetryableCodes mean "slow down" or "try again" whatever the status
// (shared/ossstore lists their sources).
var ossRetryableCodes = map[string]bool{
	"TotalQpsLimitExceeded": true, "MetaOperationQpsLimitExceeded": true, "QpsLimitExceeded": true,
	"ActiveRequestLimitExceeded": true, "CpuLimitExceeded": true, "ServiceUnavailable": true, "InternalError": true,
}

// classifyOSS turns an OSS SDK error into a *fault.Error (nil for nil):
// Retryable for HTTP ≥ 500, 429, the throttling codes, transport trouble
// and a passed deadline; Permanent otherwise (a cancelled ctx too). A
// missing bucket also wraps ErrNotFound.
func classifyOSS(op, subject string, ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var se *oss.ServiceError
	if errors.As(err, &se) {
		e := fmt.Errorf("%s: HTTP %d %s: %s (RequestId %s)", subject, se.StatusCode, se.Code, se.Message, se.RequestID)
		if se.Code == "NoSuchBucket" {
			e = fmt.Errorf("%w: %w", ErrNotFound, e)
		}
		if se.Code == "AccessDenied" && op == opGetBucketInfo {
			e = fmt.Errorf("%w (the bucket belongs to another account, or these credentials lack oss:GetBucketInfo)", e)
		}
		kind := fault.Permanent
		if se.StatusCode >= 500 || se.StatusCode == http.StatusTooManyRequests || ossRetryableCodes[se.Code] {
			kind = fault.Retryable
		}
		return fault.Wrap(op, kind, se.Code, e)
	}
	if ctxErr := ctx.Err(); ctxErr != nil || fault.IsContext(err) {
		kind := fault.Retryable
		if errors.Is(err, context.Canceled) || errors.Is(ctxErr, context.Canceled) {
			kind = fault.Permanent
		}
		return fault.Wrap(op, kind, "", fmt.Errorf("%s: %w", subject, err))
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) {
		return fault.Wrap(op, fault.Retryable, "", fmt.Errorf("%s: transport: %w", subject, err))
	}
	return fault.Wrap(op, fault.Permanent, "", fmt.Errorf("%s: %w", subject, err))
}
