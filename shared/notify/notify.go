// Package notify publishes outcome notifications (an instance got its backup
// client, or could not) to an Alibaba Cloud MNS topic with
// aliyun-mns-go-sdk v1.0.11, so that subscribers (a queue, an HTTP endpoint,
// e-mail) hear about them.
//
// Bodies are base64-encoded (StdEncoding) before publishing, as the
// PublishMessage documentation advises; subscribers decode them. The SDK
// takes no context and panics on some inputs: this package validates first,
// recovers at the boundary and bounds every call by the context. The
// endpoint, loopback-redirect, credential and classification rules are those
// of shared/taskqueue (its plumbing is unexported and bound to queues, so the
// few pieces needed are repeated here rather than shared).
//
// Every error is a *fault.Error (Op "notify.New" or "mns.PublishMessage";
// Code = the MNS error code when the service sent one):
//   - fault.Invalid: bad configuration, an empty or oversized body, a bad
//     tag; no request was made.
//   - fault.Retryable: transport failures and timeouts, QpsLimitExceeded,
//     InternalError, any HTTP 5xx, unparsable responses.
//   - fault.Permanent: everything else (TopicNotExist, AccessDenied,
//     SignatureDoesNotMatch, InvalidArgument, …), a panic inside the SDK,
//     and a context that was cancelled or expired (fault.IsContext reports
//     those).
package notify

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	ali_mns "github.com/aliyun/aliyun-mns-go-sdk"
	"github.com/valyala/fasthttp"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

// Limits and defaults.
const (
	// MaxBodyBytes is the MNS limit on a message body as sent on the wire,
	// i.e. after base64 encoding (about 48 KiB of raw payload).
	MaxBodyBytes = 65536
	// MaxTagLen is the longest message tag accepted, in characters.
	// [UNVERIFIED] the MNS filter-tag limit; PublishMessage states none.
	MaxTagLen = 16
	// DefaultTimeout bounds one request when Config.Timeout is 0.
	DefaultTimeout = 10 * time.Second

	defaultAccountID = "1234567890"
	defaultRegion    = "cn-hangzhou"
	opNew            = "notify.New"
	opPublish        = "mns.PublishMessage"
)

var (
	topicNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,255}$`)
	labelRE     = regexp.MustCompile(`^[A-Za-z0-9-]+$`)
)

// Config says where to publish.
type Config struct {
	// Endpoint is "https://<accountId>.mns.<region>.aliyuncs.com" (or the
	// "-internal" region form), or for the local emulator
	// "http://127.0.0.1:PORT" / "http://localhost:PORT". Any http://
	// endpoint must be a loopback host.
	Endpoint string
	// Topic is the topic name: 1..256 characters of [A-Za-z0-9-], starting
	// with a letter.
	Topic string
	// Timeout bounds one request (default 10 s); the context's deadline
	// shortens it further.
	Timeout time.Duration
	// AccountID and Region only build the MNS-shaped host name used with a
	// loopback endpoint (defaults "1234567890" and "cn-hangzhou").
	AccountID, Region string
}

// Publisher publishes to one topic with one set of credentials. It is safe
// for concurrent use: each request builds its own SDK client and topic (the
// SDK's topic object races in its QPS monitor). Build one per invocation,
// since Function Compute hands out fresh STS credentials with each.
type Publisher struct {
	cfg         Config
	cred        cloudauth.Credentials
	sdkEndpoint string               // what the SDK is given (always 4 dots)
	loopback    *fasthttp.HostClient // non-nil: every request goes here
}

// New validates cfg and cred and returns a Publisher. It makes no request
// and never panics; every error is fault.Invalid.
func New(cfg Config, cred cloudauth.Credentials) (p *Publisher, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fault.Invalidf(opNew, "MNS SDK rejected the configuration: %v", r)
		}
	}()
	if !topicNameRE.MatchString(cfg.Topic) {
		return nil, fault.Invalidf(opNew,
			"topic name %q is invalid: want 1..256 characters of letters, digits and '-', starting with a letter", cfg.Topic)
	}
	switch {
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	case cfg.Timeout < 0:
		return nil, fault.Invalidf(opNew, "timeout %s is negative", cfg.Timeout)
	}
	if !cred.Valid() {
		return nil, fault.Invalidf(opNew, "credentials have no access key pair")
	}
	sdkEndpoint, loopAddr, err := resolveEndpoint(&cfg)
	if err != nil {
		return nil, err
	}
	p = &Publisher{cfg: cfg, cred: cred, sdkEndpoint: sdkEndpoint}
	if loopAddr != "" {
		p.loopback = &fasthttp.HostClient{Addr: loopAddr, MaxConns: ali_mns.DefaultMaxConnsPerHost, DialDualStack: true}
	}
	// Build a client once so that anything the SDK constructor dislikes
	// surfaces here (as a recovered panic) rather than on the first publish.
	p.client(1, &probe{})
	return p, nil
}

// resolveEndpoint checks cfg.Endpoint and returns the endpoint to give the
// SDK and, for a loopback endpoint, the address to redirect to (sdk-notes
// §3.2 option 1).
func resolveEndpoint(cfg *Config) (sdkEndpoint, loopAddr string, err error) {
	ep := strings.TrimRight(cfg.Endpoint, "/")
	if ep == "" {
		return "", "", fault.Invalidf(opNew, "endpoint is empty")
	}
	u, perr := url.Parse(ep)
	if perr != nil {
		return "", "", fault.Wrap(opNew, fault.Invalid, "", fmt.Errorf("endpoint %q: %w", ep, perr))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", "", fault.Invalidf(opNew, "endpoint %q: scheme must be https (or http for a loopback emulator)", ep)
	}
	if u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fault.Invalidf(opNew, "endpoint %q must be scheme://host[:port] with nothing after the host", ep)
	}
	host := u.Hostname()
	if isLoopback(host) {
		if u.Scheme != "http" {
			return "", "", fault.Invalidf(opNew, "endpoint %q: a loopback emulator is reached over http://", ep)
		}
		port := u.Port()
		if port == "" {
			port = "80"
		}
		if cfg.AccountID == "" {
			cfg.AccountID = defaultAccountID
		}
		if cfg.Region == "" {
			cfg.Region = defaultRegion
		}
		if !labelRE.MatchString(cfg.AccountID) || !labelRE.MatchString(cfg.Region) {
			return "", "", fault.Invalidf(opNew, "account ID %q and region %q may only hold letters, digits and '-'", cfg.AccountID, cfg.Region)
		}
		return "http://" + cfg.AccountID + ".mns." + cfg.Region + ".aliyuncs.com", net.JoinHostPort(host, port), nil
	}
	if u.Scheme == "http" {
		return "", "", fault.Invalidf(opNew,
			"endpoint %q: plain http is only allowed to a loopback emulator; use https://<accountId>.mns.<region>.aliyuncs.com", ep)
	}
	if strings.Count(ep, ".") != 4 {
		return "", "", fault.Invalidf(opNew,
			"endpoint %q is not shaped https://<accountId>.mns.<region>.aliyuncs.com (the MNS SDK needs exactly four dots)", ep)
	}
	return ep, "", nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// client builds an SDK client that sends through pr. It panics where the
// SDK does; callers recover.
func (p *Publisher) client(timeoutSecs int64, pr *probe) ali_mns.MNSClient {
	c := ali_mns.NewAliMNSClientWithConfig(ali_mns.AliMNSClientConfig{
		EndPoint:        p.sdkEndpoint,
		AccessKeyId:     p.cred.AccessKeyID,
		AccessKeySecret: p.cred.AccessKeySecret,
		Token:           p.cred.SecurityToken,
		TimeoutSecond:   timeoutSecs,
	})
	pr.loopback = p.loopback
	c.SetTransport(pr)
	return c
}

// checkTag reports why tag cannot be a message tag, or nil.
func checkTag(tag string) error {
	switch {
	case !utf8.ValidString(tag):
		return errors.New("tag is not valid UTF-8")
	case utf8.RuneCountInString(tag) > MaxTagLen:
		return fmt.Errorf("tag %q is %d characters, over %d", tag, utf8.RuneCountInString(tag), MaxTagLen)
	case strings.IndexFunc(tag, unicode.IsControl) >= 0:
		return fmt.Errorf("tag %q holds a control character", tag)
	}
	return nil
}

// Publish publishes body (base64-encoded on the wire) with an optional tag
// (0..16 characters, for subscription filters) and returns the MNS message
// ID. Errors are classified as the package comment says.
func (p *Publisher) Publish(ctx context.Context, body []byte, tag string) (string, error) {
	if len(body) == 0 {
		return "", fault.Invalidf(opPublish, "topic %s: message body is empty", p.cfg.Topic)
	}
	if n := base64.StdEncoding.EncodedLen(len(body)); n > MaxBodyBytes {
		return "", fault.Invalidf(opPublish, "topic %s: message body is %d bytes base64-encoded (%d raw), over the MNS limit of %d",
			p.cfg.Topic, n, len(body), MaxBodyBytes)
	}
	if err := checkTag(tag); err != nil {
		return "", fault.Wrap(opPublish, fault.Invalid, "", fmt.Errorf("topic %s: %w", p.cfg.Topic, err))
	}
	req := ali_mns.MessagePublishRequest{MessageBody: base64.StdEncoding.EncodeToString(body), MessageTag: tag}
	var resp ali_mns.MessageSendResponse
	err := p.do(ctx, func(c ali_mns.MNSClient) error {
		var perr error
		resp, perr = ali_mns.NewMNSTopic(p.cfg.Topic, c).PublishMessage(req)
		return perr
	})
	if err != nil {
		return "", err
	}
	return resp.MessageId, nil
}

// sdkPanic is a panic recovered from the SDK.
type sdkPanic struct{ value any }

func (e *sdkPanic) Error() string { return fmt.Sprintf("MNS SDK panicked: %v", e.value) }

// do runs call with a fresh SDK client, bounded by ctx: the SDK's own timeout
// is min(Timeout, time left before ctx's deadline), at least 1 s, and a
// cancelled ctx returns at once (the abandoned request ends by its timeout).
func (p *Publisher) do(ctx context.Context, call func(ali_mns.MNSClient) error) error {
	if err := ctx.Err(); err != nil {
		return fault.Wrap(opPublish, fault.Permanent, "", fmt.Errorf("topic %s: not published: %w", p.cfg.Topic, err))
	}
	timeout := p.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout = left
		}
	}
	timeout = max(timeout, time.Second)
	secs := int64((timeout + time.Second - 1) / time.Second)
	pr := &probe{timeout: timeout}
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- &sdkPanic{r}
			}
		}()
		done <- call(p.client(secs, pr))
	}()
	select {
	case <-ctx.Done():
		return fault.Wrap(opPublish, fault.Permanent, "", fmt.Errorf("topic %s: gave up waiting for MNS: %w", p.cfg.Topic, ctx.Err()))
	case err := <-done:
		return p.classify(err, pr)
	}
}

// classify turns an SDK error into a *fault.Error, using the SDK's error
// templates and the HTTP status the probe saw.
func (p *Publisher) classify(err error, pr *probe) error {
	if err == nil {
		return nil
	}
	var panicked *sdkPanic
	if errors.As(err, &panicked) {
		return fault.Wrap(opPublish, fault.Permanent, "", fmt.Errorf("topic %s: %w", p.cfg.Topic, err))
	}
	kind := fault.Permanent
	if retryable(err) || pr.status >= http.StatusInternalServerError {
		kind = fault.Retryable
	}
	code := pr.code
	if ali_mns.ERR_SEND_REQUEST_FAILED.IsEqual(err) {
		code = "" // no answer: nothing the service said
	}
	return fault.Wrap(opPublish, kind, code, fmt.Errorf("topic %s: %w", p.cfg.Topic, err))
}

// retryable reports the SDK errors a later attempt may cure.
func retryable(err error) bool {
	return ali_mns.ERR_SEND_REQUEST_FAILED.IsEqual(err) ||
		ali_mns.ERR_MNS_QPS_LIMIT_EXCEEDED.IsEqual(err) ||
		ali_mns.ERR_MNS_INTERNAL_ERROR.IsEqual(err) ||
		ali_mns.ERR_UNMARSHAL_ERROR_RESPONSE_FAILED.IsEqual(err) ||
		ali_mns.ERR_UNMARSHAL_RESPONSE_FAILED.IsEqual(err)
}

// probe is the fasthttp transport given to each SDK client. It forwards the
// request (to the loopback emulator when one is configured, else through
// fasthttp's default transport) and records the HTTP status and the <Code>
// of an error body, which the SDK's errors do not expose. One probe serves
// one SDK call, on that call's goroutine.
type probe struct {
	loopback *fasthttp.HostClient
	timeout  time.Duration
	status   int
	code     string
}

// RoundTrip implements fasthttp.RoundTripper.
func (pr *probe) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	var (
		retry bool
		err   error
	)
	if pr.loopback != nil {
		// The request keeps its MNS-shaped Host header; only the dialled
		// address changes. Never retried: PublishMessage is not idempotent.
		err = pr.loopback.DoTimeout(req, resp, pr.timeout)
	} else {
		// Each call has its own SDK client, so a kept-alive connection
		// would never be reused: close it with the response.
		req.SetConnectionClose()
		retry, err = fasthttp.DefaultTransport.RoundTrip(hc, req, resp)
	}
	if err == nil {
		pr.status = resp.StatusCode()
		pr.code = ""
		if pr.status >= http.StatusMultipleChoices {
			var body struct {
				Code string `xml:"Code"`
			}
			if xml.Unmarshal(resp.Body(), &body) == nil {
				pr.code = body.Code
			}
		}
	}
	return retry, err
}
