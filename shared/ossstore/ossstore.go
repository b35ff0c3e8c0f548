// Package ossstore is the instance ledger's store in Alibaba Cloud Object
// Storage Service (OSS): [Client] satisfies ledger.Store with one bucket,
// through the maintained Go SDK github.com/aliyun/alibabacloud-oss-go-sdk-v2
// (v1.6.1). SDK types do not leak out of it.
//
// What it relies on (read 2026; [DOC] an official help page, [CODE] the SDK
// source at v1.6.1):
//
//   - Create is PutObject with x-oss-forbid-overwrite: true
//     (PutObjectRequest.ForbidOverwrite). OSS refuses to overwrite an
//     existing object and answers 409 FileAlreadyExists
//     ([DOC] https://help.aliyun.com/en/oss/user-guide/0026-00000002). The
//     header has NO effect on a bucket whose versioning is Enabled or
//     Suspended: there PutObject overwrites ([CODE] the SDK's doc comment on
//     PutObjectRequest.ForbidOverwrite, oss/api_op_object.go, which carries
//     the PutObject API reference text; the help page above likewise points
//     to versioning to "keep both" objects).
//     The ledger's bucket must therefore never be versioned; nothing here
//     can detect it per request.
//   - Get is GetObject; a missing object is 404 NoSuchKey.
//   - List is ListObjectsV2 (prefix, start-after, max-keys; [DOC]
//     https://help.aliyun.com/en/oss/developer-reference/listobjectsv2),
//     keys in byte order. max-keys is capped at 1000 as for OSS's other
//     listings ([DOC] https://help.aliyun.com/document_detail/601085.html).
//   - Requests are signed with V4 (OSS4-HMAC-SHA256) for Config.Region; an
//     STS token travels in x-oss-security-token ([CODE] oss/signer/v4.go).
//   - Errors come back as an XML <Error> document whose Code the SDK puts in
//     ServiceError.Code ([DOC] https://www.alibabacloud.com/help/doc-detail/32005.htm;
//     [CODE] oss/client.go tryConvertServiceError). Throttling is HTTP 503
//     with TotalQpsLimitExceeded, MetaOperationQpsLimitExceeded,
//     ServiceUnavailable, ActiveRequestLimitExceeded, CpuLimitExceeded,
//     Upload/DownloadTrafficRateLimitExceeded
//     ([DOC] https://help.aliyun.com/zh/oss/support/http-status-code-503), or
//     HTTP 429 QpsLimitExceeded
//     ([DOC] https://help.aliyun.com/en/oss/user-guide/429-error).
//
// Every error returned is a *fault.Error whose Op is "oss.New",
// "oss.PutObject", "oss.GetObject" or "oss.ListObjectsV2" and whose Code is
// the OSS error code when the service sent one (read it with
// fault.CodeOf); service errors wrap an [*APIError]:
//
//   - fault.Invalid: bad configuration, credentials, key, prefix, page size
//     or body size; no request is sent.
//   - fault.Retryable: any HTTP status >= 500, HTTP 429, the throttling
//     codes above, transport failures (*url.Error / net.Error), and a
//     deadline (the ctx's or Config.Timeout) passing before or during the
//     call (the error also wraps context.DeadlineExceeded).
//   - fault.Permanent: everything else: FileAlreadyExists (which also
//     satisfies errors.Is(err, ledger.ErrExists)), NoSuchKey
//     (errors.Is(err, ledger.ErrNotFound)), NoSuchBucket, AccessDenied,
//     InvalidAccessKeyId, InvalidSecurityToken, SignatureDoesNotMatch,
//     RequestTimeTooSkewed, an object larger than MaxObjectBytes, an
//     unreadable response, and a cancelled ctx (wraps context.Canceled).
//
// # Retries
//
// The SDK's retry loop is set explicitly. Get and List make at most
// readAttempts attempts, retrying only what is classified Retryable above,
// with full-jitter backoff (at most 200 ms before the second attempt, 400 ms
// before the third); the SDK sleeps on the ctx, so no attempt starts after
// the ctx or Config.Timeout (which bounds a whole call, retries included)
// has ended. Create makes exactly one attempt: when a conditional create
// times out or gets a 5xx after OSS stored the object, a retry would get
// FileAlreadyExists for the caller's own write. The caller, which knows
// what it wrote, decides (e.g. reads the entry back and compares).
//
// The package never logs, and error texts never contain the access key
// secret or security token.
package ossstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
)

// Limits and defaults.
const (
	// DefaultTimeout bounds one call (retries included) when Config.Timeout
	// is zero.
	DefaultTimeout = 10 * time.Second
	// MaxObjectBytes is the largest body Create writes and Get reads. Ledger
	// entries are small JSON documents; anything bigger is not one of ours.
	MaxObjectBytes = 64 << 10
	// MaxKeyBytes is the longest key, prefix or startAfter OSS accepts
	// ("less than 1,024 bytes", [CODE] ListObjectsV2Request.StartAfter).
	MaxKeyBytes = 1023
	// MaxList is the largest page List returns (max-keys ≤ 1000).
	MaxList = 1000

	// readAttempts is how many attempts Get and List make.
	readAttempts = 3
	// backoffBase and backoffCap shape the full-jitter delay before attempt
	// n (n ≥ 2): uniform in [0, min(backoffBase<<n, backoffCap)).
	backoffBase = 50 * time.Millisecond
	backoffCap  = time.Second
	// snippetLimit bounds how much of a service message goes into an error.
	snippetLimit = 300
)

// Op names.
const (
	opNew    = "oss.New"
	opPut    = "oss.PutObject"
	opGet    = "oss.GetObject"
	opList   = "oss.ListObjectsV2"
	opDelete = "oss.DeleteObject"
	jsonType = "application/json"
)

// Config says which bucket to reach and how long a call may take.
type Config struct {
	// Endpoint: "" → "oss-<Region>.aliyuncs.com"; a bare host such as
	// "oss-cn-hangzhou.aliyuncs.com" or "oss-cn-hangzhou-internal.aliyuncs.com"
	// (HTTPS), or a URL "https://host[:port]". "http://host[:port]" is
	// accepted only for a loopback host (127.0.0.0/8, ::1, localhost): that
	// is how the local emulator is reached; any other http endpoint is
	// refused (the SDK itself would accept it). Buckets are addressed
	// virtual-hosted style (https://<bucket>.<host>/<key>), and path-style
	// (http://<host>/<bucket>/<key>) on a loopback host.
	Endpoint string
	// Region is the bucket's region, e.g. "cn-hangzhou": the V4 signature's
	// scope. Required, ^[a-z0-9-]{1,64}$.
	Region string
	// Bucket is the ledger's bucket: 3..63 lower-case letters, digits or
	// '-', not starting or ending with '-'. It must not be versioned (see
	// the package comment).
	Bucket string
	// Timeout bounds each call, retries included (default DefaultTimeout);
	// the ctx's deadline shortens it further.
	Timeout time.Duration
	// Transport carries the requests; default http.DefaultTransport (TLS
	// verification on; HTTP(S)_PROXY/NO_PROXY with the standard library's
	// semantics). Share one across clients to reuse connections: a Client is
	// built per invocation.
	Transport http.RoundTripper
}

// Client is the ledger's store in one OSS bucket. It is safe for concurrent
// use and cheap to build (no request, no new connection pool); build one
// per invocation with that invocation's credentials.
type Client struct {
	bucket  string
	timeout time.Duration
	scheme  string
	host    string
	sdk     calls
	redact  cloudauth.Redactor // removes the secret and token from error texts
}

// calls are the four SDK calls the ledger makes, as method values of one
// *oss.Client. Holding them, not the client, keeps the client's other
// methods (some thousand: every OSS API) out of the function binaries: a
// struct that reaches *oss.Client is reachable by reflection once it is
// stored in an interface, and the linker then keeps the whole method set.
type calls struct {
	put  func(context.Context, *oss.PutObjectRequest, ...func(*oss.Options)) (*oss.PutObjectResult, error)
	get  func(context.Context, *oss.GetObjectRequest, ...func(*oss.Options)) (*oss.GetObjectResult, error)
	list func(context.Context, *oss.ListObjectsV2Request, ...func(*oss.Options)) (*oss.ListObjectsV2Result, error)
	del  func(context.Context, *oss.DeleteObjectRequest, ...func(*oss.Options)) (*oss.DeleteObjectResult, error)
}

func callsOf(c *oss.Client) calls {
	return calls{put: c.PutObject, get: c.GetObject, list: c.ListObjectsV2, del: c.DeleteObject}
}

var _ ledger.Store = (*Client)(nil)

// New validates cfg and cred and builds a Client. It sends nothing. Errors
// are fault.Invalid with Op "oss.New".
func New(cfg Config, cred cloudauth.Credentials) (*Client, error) {
	if !ident.Region.Valid(cfg.Region) {
		return nil, fault.Invalidf(opNew, "region %q must match %s", cfg.Region, ident.Region)
	}
	if !validBucket(cfg.Bucket) {
		return nil, fault.Invalidf(opNew, "bucket %q must be 3..63 lower-case letters, digits or '-', not starting or ending with '-'", cfg.Bucket)
	}
	if !cred.Valid() {
		return nil, fault.Invalidf(opNew, "credentials need an access key ID and secret")
	}
	switch {
	case cfg.Timeout < 0:
		return nil, fault.Invalidf(opNew, "timeout %v must not be negative", cfg.Timeout)
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	}
	scheme, host, loopback, err := resolveEndpoint(cfg.Endpoint, cfg.Region)
	if err != nil {
		return nil, fault.Wrap(opNew, fault.Invalid, "", err)
	}
	transport := cfg.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	conf := oss.NewConfig().
		WithRegion(cfg.Region).
		WithEndpoint(scheme + "://" + host).
		WithUsePathStyle(loopback).
		WithSignatureVersion(oss.SignatureVersionV4).
		WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			cred.AccessKeyID, cred.AccessKeySecret, cred.SecurityToken)).
		WithHttpClient(&http.Client{
			Transport: transport,
			// OSS does not redirect API calls; a redirect is not followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}).
		WithRetryer(retryer{attempts: readAttempts}).
		WithLogLevel(oss.LogOff).
		WithUserAgent("hbr-autoinstall")
	c := &Client{
		bucket:  cfg.Bucket,
		timeout: cfg.Timeout,
		scheme:  scheme,
		host:    host,
		sdk:     callsOf(oss.NewClient(conf)),
		redact:  cred.Redactor(),
	}
	return c, nil
}

// Endpoint returns the resolved scheme and host[:port] requests go to (the
// bucket is added in front of the host, or to the path on a loopback host).
func (c *Client) Endpoint() (scheme, host string) { return c.scheme, c.host }

// Bucket returns the bucket the Client reads and writes.
func (c *Client) Bucket() string { return c.bucket }

// Create writes body at key only if no object exists there (PutObject with
// x-oss-forbid-overwrite: true), in one attempt. An existing object yields
// a Permanent error with Code "FileAlreadyExists" that satisfies
// errors.Is(err, ledger.ErrExists). A Retryable error leaves it unknown
// whether the object was written. Other errors: see the package comment.
func (c *Client) Create(ctx context.Context, key string, body []byte) error {
	if err := checkKey(opPut, key); err != nil {
		return err
	}
	if len(body) > MaxObjectBytes {
		return fault.Invalidf(opPut, "body of %d bytes is larger than %d", len(body), MaxObjectBytes)
	}
	ctx, cancel, err := c.start(ctx, opPut)
	if err != nil {
		return err
	}
	defer cancel()
	_, err = c.sdk.put(ctx, &oss.PutObjectRequest{
		Bucket:          oss.Ptr(c.bucket),
		Key:             oss.Ptr(key),
		ForbidOverwrite: oss.Ptr("true"),
		ContentType:     oss.Ptr(jsonType),
		ContentLength:   oss.Ptr(int64(len(body))),
		Body:            bytes.NewReader(body),
	}, func(o *oss.Options) { o.RetryMaxAttempts = oss.Ptr(1) })
	if err != nil {
		return c.classify(opPut, "key "+quoteKey(key), ctx, err)
	}
	return nil
}

// Get returns the object at key, reading at most MaxObjectBytes (a larger
// object is a Permanent error). A missing object yields a Permanent error
// with Code "NoSuchKey" that satisfies errors.Is(err, ledger.ErrNotFound).
// Other errors: see the package comment.
func (c *Client) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(opGet, key); err != nil {
		return nil, err
	}
	ctx, cancel, err := c.start(ctx, opGet)
	if err != nil {
		return nil, err
	}
	defer cancel()
	res, err := c.sdk.get(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr(c.bucket), Key: oss.Ptr(key)})
	if err != nil {
		return nil, c.classify(opGet, "key "+quoteKey(key), ctx, err)
	}
	defer res.Body.Close()
	if res.ContentLength > MaxObjectBytes {
		return nil, fault.Wrap(opGet, fault.Permanent, "", fmt.Errorf(
			"object %s is %d bytes, larger than %d: not a ledger entry", quoteKey(key), res.ContentLength, MaxObjectBytes))
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, MaxObjectBytes+1))
	if err != nil {
		return nil, c.classify(opGet, "key "+quoteKey(key), ctx, fmt.Errorf("read body: %w", err))
	}
	if len(data) > MaxObjectBytes {
		return nil, fault.Wrap(opGet, fault.Permanent, "", fmt.Errorf(
			"object %s is larger than %d bytes: not a ledger entry", quoteKey(key), MaxObjectBytes))
	}
	return data, nil
}

// List returns up to max (1..MaxList) keys that start with prefix and sort
// after startAfter ("" for the first page), in byte order, and whether more
// keys follow (ListObjectsV2). Errors: see the package comment.
func (c *Client) List(ctx context.Context, prefix, startAfter string, max int) (keys []string, more bool, err error) {
	switch {
	case max < 1 || max > MaxList:
		return nil, false, fault.Invalidf(opList, "page size %d must be 1..%d", max, MaxList)
	case len(prefix) > MaxKeyBytes || !utf8.ValidString(prefix):
		return nil, false, fault.Invalidf(opList, "prefix %s must be at most %d bytes of UTF-8", quoteKey(prefix), MaxKeyBytes)
	case len(startAfter) > MaxKeyBytes || !utf8.ValidString(startAfter):
		return nil, false, fault.Invalidf(opList, "startAfter %s must be at most %d bytes of UTF-8", quoteKey(startAfter), MaxKeyBytes)
	}
	ctx, cancel, err := c.start(ctx, opList)
	if err != nil {
		return nil, false, err
	}
	defer cancel()
	req := &oss.ListObjectsV2Request{Bucket: oss.Ptr(c.bucket), MaxKeys: int32(max)}
	if prefix != "" {
		req.Prefix = oss.Ptr(prefix)
	}
	if startAfter != "" {
		req.StartAfter = oss.Ptr(startAfter)
	}
	res, err := c.sdk.list(ctx, req)
	if err != nil {
		return nil, false, c.classify(opList, "prefix "+quoteKey(prefix), ctx, err)
	}
	keys = make([]string, 0, len(res.Contents))
	for _, o := range res.Contents {
		if o.Key != nil {
			keys = append(keys, *o.Key)
		}
	}
	return keys, res.IsTruncated, nil
}

// Delete removes the object at key (DeleteObject); a missing object is
// not an error (OSS answers 204 either way). Errors: see the package
// comment.
func (c *Client) Delete(ctx context.Context, key string) error {
	if err := checkKey(opDelete, key); err != nil {
		return err
	}
	ctx, cancel, err := c.start(ctx, opDelete)
	if err != nil {
		return err
	}
	defer cancel()
	if _, err := c.sdk.del(ctx, &oss.DeleteObjectRequest{Bucket: oss.Ptr(c.bucket), Key: oss.Ptr(key)}); err != nil {
		return c.classify(opDelete, "key "+quoteKey(key), ctx, err)
	}
	return nil
}

// start checks ctx and bounds it by the Client's timeout.
func (c *Client) start(ctx context.Context, op string) (context.Context, context.CancelFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, contextError(op, err, "context done before the call", nil)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	return ctx, cancel, nil
}

// checkKey validates an object key: 1..MaxKeyBytes bytes of UTF-8, not
// starting with '/' or '\' (OSS's object naming rules).
func checkKey(op, key string) error {
	switch {
	case key == "":
		return fault.Invalidf(op, "key is empty")
	case len(key) > MaxKeyBytes:
		return fault.Invalidf(op, "key %s is %d bytes, longer than %d", quoteKey(key), len(key), MaxKeyBytes)
	case !utf8.ValidString(key):
		return fault.Invalidf(op, "key %s is not valid UTF-8", quoteKey(key))
	case key[0] == '/' || key[0] == '\\':
		return fault.Invalidf(op, "key %s must not start with '/' or '\\'", quoteKey(key))
	}
	return nil
}

// quoteKey quotes a key for an error message, cut to 100 bytes.
func quoteKey(key string) string {
	if len(key) > 100 {
		return strconv.Quote(key[:100]) + "…"
	}
	return strconv.Quote(key)
}

// validBucket reports whether name is a valid OSS bucket name.
func validBucket(name string) bool {
	if len(name) < 3 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ---- endpoints ----

// hostnameRule: 1..253 letters, digits, '.' or '-', starting and ending with
// a letter or digit.
var hostnameRule = ident.Rule{Min: 1, Max: 253, First: "A-Za-z0-9", Rest: "A-Za-z0-9.-"}

// resolveEndpoint turns Config.Endpoint into a scheme, host[:port] and
// whether the host is loopback.
func resolveEndpoint(endpoint, region string) (scheme, host string, loopback bool, err error) {
	ep := strings.TrimSpace(endpoint)
	if ep == "" {
		return "https", "oss-" + region + ".aliyuncs.com", false, nil
	}
	scheme, host = "https", ep
	if strings.Contains(ep, "://") {
		u, perr := url.Parse(ep)
		if perr != nil {
			return "", "", false, fmt.Errorf("endpoint %q is not a valid URL", endpoint)
		}
		scheme = strings.ToLower(u.Scheme)
		if scheme != "https" && scheme != "http" {
			return "", "", false, fmt.Errorf("endpoint %q: scheme must be https (or http for a loopback host)", endpoint)
		}
		if u.User != nil || u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return "", "", false, fmt.Errorf("endpoint %q must be scheme://host[:port] with no path, query or user info", endpoint)
		}
		host = u.Host
	}
	hostname, err := checkHost(host)
	if err != nil {
		return "", "", false, fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	loopback = ident.Loopback(hostname)
	if scheme == "http" && !loopback {
		return "", "", false, fmt.Errorf("endpoint %q: plain http is allowed only for loopback hosts; use https", endpoint)
	}
	return scheme, host, loopback, nil
}

// checkHost validates host[:port] and returns the host name.
func checkHost(hostport string) (string, error) {
	u, err := url.Parse("https://" + hostport)
	if err != nil || u.Host != hostport || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q is not a host[:port]", hostport)
	}
	name := u.Hostname()
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("port %q is out of range", port)
		}
	}
	if net.ParseIP(name) == nil && (!hostnameRule.Valid(name) || strings.HasSuffix(name, ".") || strings.HasSuffix(name, "-")) {
		return "", fmt.Errorf("%q is not a valid host name", name)
	}
	return name, nil
}

// ---- errors ----

// APIError is an error reported by OSS. It is wrapped in a *fault.Error;
// reach it with errors.As.
type APIError struct {
	// HTTPStatus is the response's status code.
	HTTPStatus int
	// Code is OSS's error code, e.g. "FileAlreadyExists".
	Code string
	// Message is OSS's message, redacted and cut to one short line.
	Message string
	// RequestID is the x-oss-request-id, for support tickets.
	RequestID string
	// EC is OSS's fine-grained error code, when sent (for support only).
	EC string
}

// Error implements error.
func (e *APIError) Error() string {
	msg := "HTTP " + strconv.Itoa(e.HTTPStatus)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RequestID != "" {
		msg += " (RequestId " + e.RequestID + ")"
	}
	return msg
}

// retryableCodes are the OSS codes that mean "slow down" or "try again"
// whatever the status (see the package comment for their sources).
var retryableCodes = map[string]bool{
	"TotalQpsLimitExceeded":            true,
	"MetaOperationQpsLimitExceeded":    true,
	"QpsLimitExceeded":                 true,
	"ActiveRequestLimitExceeded":       true,
	"CpuLimitExceeded":                 true,
	"UploadTrafficRateLimitExceeded":   true,
	"DownloadTrafficRateLimitExceeded": true,
	"ServiceUnavailable":               true,
	"InternalError":                    true,
}

// kindOf classifies a service error by HTTP status and code.
func kindOf(status int, code string) fault.Kind {
	if status >= 500 || status == http.StatusTooManyRequests || retryableCodes[code] {
		return fault.Retryable
	}
	return fault.Permanent
}

// retryableCause reports whether one attempt's error is worth another
// attempt; it mirrors classify's Retryable, minus ctx errors (the SDK stops
// on those itself).
func retryableCause(err error) bool {
	var se *oss.ServiceError
	if errors.As(err, &se) {
		return kindOf(se.StatusCode, se.Code) == fault.Retryable
	}
	if fault.IsContext(err) {
		return false
	}
	var urlErr *url.Error
	var netErr net.Error
	return errors.As(err, &urlErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// retryer is the SDK retry policy: attempts attempts, only for Retryable
// errors, full-jitter backoff.
type retryer struct{ attempts int }

func (r retryer) MaxAttempts() int              { return r.attempts }
func (retryer) IsErrorRetryable(err error) bool { return retryableCause(err) }

// RetryDelay is called with attempt ≥ 2, the attempt about to be made.
func (retryer) RetryDelay(attempt int, _ error) (time.Duration, error) {
	ceiling := backoffCap
	if attempt < 16 {
		ceiling = min(backoffBase<<attempt, backoffCap)
	}
	return rand.N(ceiling), nil
}

// classify turns an SDK or transport error into a classified error whose
// text starts with subject (what the call was about).
func (c *Client) classify(op, subject string, ctx context.Context, err error) error {
	var se *oss.ServiceError
	if errors.As(err, &se) {
		apiErr := &APIError{
			HTTPStatus: se.StatusCode,
			Code:       se.Code,
			Message:    c.redact.Snippet(se.Message, snippetLimit),
			RequestID:  se.RequestID,
			EC:         se.EC,
		}
		var cause error = apiErr
		switch se.Code {
		case "FileAlreadyExists":
			cause = fmt.Errorf("%w: %w", ledger.ErrExists, apiErr)
		case "NoSuchKey":
			cause = fmt.Errorf("%w: %w", ledger.ErrNotFound, apiErr)
		}
		return fault.Wrap(op, kindOf(se.StatusCode, se.Code), se.Code, fmt.Errorf("%s: %w", subject, cause))
	}
	clean := c.redact.Error(err)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return contextError(op, ctxErr, subject+": context done during the call", clean)
	}
	var urlErr *url.Error
	var netErr net.Error
	if errors.As(err, &urlErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fault.Wrap(op, fault.Retryable, "", fmt.Errorf("%s: transport: %w", subject, clean))
	}
	return fault.Wrap(op, fault.Permanent, "", fmt.Errorf("%s: SDK: %w", subject, clean))
}

// contextError reports ctx trouble: a passed deadline is Retryable (the work
// itself may succeed later), a cancellation is Permanent (the caller gave up).
func contextError(op string, ctxErr error, what string, cause error) error {
	kind := fault.Permanent
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		kind = fault.Retryable
	}
	if cause != nil {
		return fault.Wrap(op, kind, "", fmt.Errorf("%s: %w (%w)", what, ctxErr, cause))
	}
	return fault.Wrap(op, kind, "", fmt.Errorf("%s: %w", what, ctxErr))
}
