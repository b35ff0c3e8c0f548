// Package openapi is the generic half of this project's adapters over
// Alibaba Cloud RPC-style OpenAPIs (HBR, ECS, …), called through the core Go
// SDK (requests.CommonRequest). It builds an SDK client from
// cloudauth.Credentials, resolves the endpoint (default
// "<product>.<region>.aliyuncs.com", a "{region}" template, or loopback http
// for the local emulators), sends each call POST with a per-call transport
// bound to the caller's ctx, recovers the SDK's panics, decodes the response
// envelope and classifies every failure once. Product adapters (shared/hbr,
// shared/ecs) add the actions and the decoding of their fields; SDK types do
// not leak out of this package.
//
// Every error returned is a *fault.Error whose Op is "<product>.New" or
// "<product>.<Action>" and whose Code is the service's error code when there
// is one (read it with fault.CodeOf); service errors wrap an [*APIError]
// carrying the HTTP status and RequestId:
//
//   - fault.Invalid: bad configuration; no request is sent.
//   - fault.Retryable: Code "Throttling", "Throttling.*", "Rejected.Throttling",
//     "ServiceUnavailable", "InternalError", "SDK.TimeoutError"; any HTTP
//     status >= 500; transport failures (*url.Error / net.Error); the ctx
//     deadline passing before or during the call (the error also wraps
//     context.DeadlineExceeded).
//   - fault.Permanent: everything else, including a cancelled ctx (wraps
//     context.Canceled), Success:false in a 200 response, an unreadable
//     response and any other service code, which callers may map themselves
//     through fault.CodeOf.
//
// The package never logs, and error texts never contain the access key
// secret or security token.
package openapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/responses"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
)

// DefaultTimeout bounds one request when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// captureLimit bounds how much of a response body is kept for error reports.
const captureLimit = 64 << 10

var (
	productRule = ident.Rule{Min: 1, Max: 32, First: "a-z", Rest: "a-z0-9-"}
	// hostnameRule and hostnameEnd: 1..253 letters, digits, '.' or '-',
	// starting and ending with a letter or digit.
	hostnameRule = ident.Rule{Min: 1, Max: 253, First: hostnameEnd, Rest: "A-Za-z0-9.-"}
)

const hostnameEnd ident.Charset = "A-Za-z0-9"

// validHostname reports whether name is a host name as hostnameRule and
// hostnameEnd say.
func validHostname(name string) bool {
	return hostnameRule.Valid(name) && hostnameEnd.Contains(name[len(name)-1])
}

// Config configures a Client.
type Config struct {
	// Product is the lower-case product code ("hbr", "ecs"): it names the
	// operations in errors ("ecs.DescribeInstances") and the default host.
	Product string
	// Version is the API version sent with every call, e.g. "2014-05-26".
	Version string
	// Region is the region called, e.g. "cn-hangzhou"; required,
	// ^[a-z0-9-]{1,64}$. It is sent as RegionId.
	Region string
	// Endpoint: "" → "<Product>.<Region>.aliyuncs.com"; a bare host
	// ("hbr-vpc.cn-hangzhou.aliyuncs.com"), a host containing the literal
	// "{region}" placeholder (replaced by Region), or a URL
	// "https://host[:port]". "http://" is accepted only for loopback hosts
	// (127.0.0.0/8, ::1, localhost): that is how the local emulators are
	// reached; anything else must be HTTPS.
	Endpoint string
	// Timeout bounds each request (default 10s); the ctx deadline caps it.
	Timeout time.Duration
	// Transport carries the requests; default http.DefaultTransport (TLS
	// verification on; HTTP(S)_PROXY/NO_PROXY with the standard library's
	// semantics, never for loopback hosts; the SDK's own proxy handling is
	// bypassed). Share one across clients to reuse connections.
	Transport http.RoundTripper
}

// Client calls one product's OpenAPI. It is safe for concurrent use: calls
// are serialised, because the underlying SDK client is not goroutine-safe.
// It is cheap to build; build one per invocation with that invocation's
// credentials.
type Client struct {
	cfg      Config
	scheme   string // "https", or "http" for a loopback endpoint
	domain   string // host[:port]
	sdk      *sdk.Client
	base     http.RoundTripper
	redactor cloudauth.Redactor // removes the secret and token from error texts
	slot     chan struct{}
}

// New validates cfg and cred and builds a Client. It sends nothing. Errors
// are fault.Invalid with Op "<Product>.New".
func New(cfg Config, cred cloudauth.Credentials) (*Client, error) {
	if !productRule.Valid(cfg.Product) {
		return nil, fault.Invalidf("openapi.New", "product %q must match %s", cfg.Product, productRule)
	}
	op := cfg.Product + ".New"
	if cfg.Version == "" {
		return nil, fault.Invalidf(op, "API version is empty")
	}
	if !ident.Region.Valid(cfg.Region) {
		return nil, fault.Invalidf(op, "region %q must match %s", cfg.Region, ident.Region)
	}
	if !cred.Valid() {
		return nil, fault.Invalidf(op, "credentials need an access key ID and secret")
	}
	switch {
	case cfg.Timeout < 0:
		return nil, fault.Invalidf(op, "timeout %v must not be negative", cfg.Timeout)
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	}
	scheme, domain, err := resolveEndpoint(cfg.Endpoint, cfg.Product, cfg.Region)
	if err != nil {
		return nil, fault.Wrap(op, fault.Invalid, "", err)
	}

	var provider auth.Credential = credentials.NewStaticAKCredentialsProvider(cred.AccessKeyID, cred.AccessKeySecret)
	if cred.SecurityToken != "" {
		provider = credentials.NewStaticSTSCredentialsProvider(cred.AccessKeyID, cred.AccessKeySecret, cred.SecurityToken)
	}
	conf := sdk.NewConfig()
	conf.AutoRetry = false
	conf.Scheme = strings.ToUpper(scheme)
	client, err := sdk.NewClientWithOptions(cfg.Region, conf, provider)
	if err != nil {
		return nil, fault.Wrap(op, fault.Invalid, "", fmt.Errorf("build SDK client: %w", err))
	}

	c := &Client{
		cfg:      cfg,
		scheme:   scheme,
		domain:   domain,
		sdk:      client,
		base:     cfg.Transport,
		slot:     make(chan struct{}, 1),
		redactor: cred.Redactor(),
	}
	if c.base == nil {
		c.base = http.DefaultTransport
	}
	return c, nil
}

// Endpoint returns the resolved scheme and host[:port] requests go to.
func (c *Client) Endpoint() (scheme, host string) { return c.scheme, c.domain }

// Op returns the operation name of action, "<Product>.<action>", as used in
// the Op of the errors Call returns.
func (c *Client) Op(action string) string { return c.cfg.Product + "." + action }

// resolveEndpoint turns Config.Endpoint into a scheme and host[:port].
func resolveEndpoint(endpoint, product, region string) (scheme, host string, err error) {
	ep := strings.TrimSpace(endpoint)
	if ep == "" {
		return "https", product + "." + region + ".aliyuncs.com", nil
	}
	ep = strings.ReplaceAll(ep, "{region}", region)
	scheme, host = "https", ep
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil {
			return "", "", fmt.Errorf("endpoint %q is not a valid URL", endpoint)
		}
		scheme = strings.ToLower(u.Scheme)
		if scheme != "https" && scheme != "http" {
			return "", "", fmt.Errorf("endpoint %q: scheme must be https (or http for a loopback host)", endpoint)
		}
		if u.User != nil || u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return "", "", fmt.Errorf("endpoint %q must be scheme://host[:port] with no path, query or user info", endpoint)
		}
		host = u.Host
	}
	hostname, err := checkHost(host)
	if err != nil {
		return "", "", fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	if scheme == "http" && !ident.Loopback(hostname) {
		return "", "", fmt.Errorf("endpoint %q: plain http is allowed only for loopback hosts; use https", endpoint)
	}
	return scheme, host, nil
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
	if net.ParseIP(name) == nil && !validHostname(name) {
		return "", fmt.Errorf("%q is not a valid host name", name)
	}
	return name, nil
}

// APIError is an error reported by the service (or an unreadable response).
// It is wrapped in a *fault.Error; reach it with errors.As.
type APIError struct {
	HTTPStatus int
	Code       string
	Message    string
	RequestID  string
}

// Error implements error.
func (e *APIError) Error() string {
	msg := fmt.Sprintf("HTTP %d", e.HTTPStatus)
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

// Request is one call: the action and its parameters. Both parameter sets
// are signed; Query goes in the URL, Form in the POST body.
type Request struct {
	Action string
	Query  map[string]string
	Form   map[string]string
}

// envelope is the part of every response the client checks.
type envelope struct {
	RequestID string `json:"RequestId"`
	Success   *bool  `json:"Success"`
	Code      String `json:"Code"`
	Message   string `json:"Message"`
}

// Call sends req (POST) and returns the body of a successful response and
// its RequestId. A response with "Success": false is an error. All errors are
// classified (see the package comment), with Op "<Product>.<Action>".
func (c *Client) Call(ctx context.Context, req Request) ([]byte, string, error) {
	op := c.Op(req.Action)
	if err := ctx.Err(); err != nil {
		return nil, "", contextError(op, err, "before the call", nil)
	}
	select {
	case c.slot <- struct{}{}:
	case <-ctx.Done():
		return nil, "", contextError(op, ctx.Err(), "waiting for the client", nil)
	}
	defer func() { <-c.slot }()

	timeout := c.cfg.Timeout
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, "", contextError(op, context.DeadlineExceeded, "before the call", nil)
		}
		timeout = min(timeout, left)
	}
	sreq := c.newRequest(req)
	sreq.SetReadTimeout(timeout)

	x := &exchange{ctx: ctx, base: c.base}
	c.sdk.SetTransport(x)
	resp, err := c.process(sreq)
	if err != nil {
		return nil, "", c.classify(op, ctx, x, err)
	}

	body := resp.GetHttpContentBytes()
	var env envelope
	if jerr := json.Unmarshal(body, &env); jerr != nil {
		return nil, "", fault.Wrap(op, fault.Permanent, "", &APIError{
			HTTPStatus: resp.GetHttpStatus(),
			Message:    "response is not a JSON object: " + c.snippet(string(body)),
		})
	}
	if env.Success != nil && !*env.Success {
		apiErr := &APIError{HTTPStatus: resp.GetHttpStatus(), Code: string(env.Code),
			Message: c.redact(env.Message), RequestID: env.RequestID}
		return nil, "", fault.Wrap(op, kindOf(apiErr.HTTPStatus, apiErr.Code), apiErr.Code,
			fmt.Errorf("service reported Success=false: %w", apiErr))
	}
	return body, env.RequestID, nil
}

// newRequest returns a fresh SDK request for req (the SDK rewrites Domain
// and Scheme on the request it is given, so requests are never reused).
func (c *Client) newRequest(req Request) *requests.CommonRequest {
	r := requests.NewCommonRequest()
	r.Method = requests.POST
	r.Scheme = c.scheme
	r.Product = c.cfg.Product
	r.Version = c.cfg.Version
	r.Domain = c.domain
	r.ApiName = req.Action
	maps.Copy(r.QueryParams, req.Query)
	maps.Copy(r.FormParams, req.Form)
	return r
}

// Decode unmarshals the body of a successful call into v; a body of the
// wrong shape is a Permanent error under op naming the RequestId.
func Decode(op, requestID string, body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fault.Wrap(op, fault.Permanent, "",
			fmt.Errorf("decode response (RequestId %s): %w", requestID, err))
	}
	return nil
}

// sdkPanic carries a panic recovered from the SDK.
type sdkPanic struct{ value any }

func (p *sdkPanic) Error() string { return fmt.Sprint(p.value) }

// process calls the SDK, turning its panics (it panics on a numeric Code in
// an error body) into a *sdkPanic error.
func (c *Client) process(req *requests.CommonRequest) (resp *responses.CommonResponse, err error) {
	defer func() {
		if v := recover(); v != nil {
			resp, err = nil, &sdkPanic{value: v}
		}
	}()
	return c.sdk.ProcessCommonRequest(req)
}

func (c *Client) panicError(op string, x *exchange, v any) error {
	apiErr := &APIError{HTTPStatus: x.status}
	var body struct {
		RequestID string `json:"RequestId"`
		Code      String `json:"Code"`
		Message   String `json:"Message"`
	}
	if json.Unmarshal(x.body.Bytes(), &body) == nil {
		apiErr.Code, apiErr.RequestID = string(body.Code), body.RequestID
		apiErr.Message = c.redact(string(body.Message))
	}
	kind := fault.Permanent
	if x.status >= 500 {
		kind = fault.Retryable
	}
	return fault.Wrap(op, kind, apiErr.Code, fmt.Errorf(
		"core SDK panicked handling the response (malformed error body, e.g. a non-string Code): %s: %w",
		c.redact(fmt.Sprint(v)), apiErr))
}

// classify turns an SDK or transport error into a classified error.
func (c *Client) classify(op string, ctx context.Context, x *exchange, err error) error {
	var p *sdkPanic
	if errors.As(err, &p) {
		return c.panicError(op, x, p.value)
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		// The URL carries the signed query (AccessKeyId, SecurityToken): drop it.
		clean := &url.Error{Op: urlErr.Op, URL: c.scheme + "://" + c.domain + "/", Err: c.redactor.Error(urlErr.Err)}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return contextError(op, ctxErr, "during the call", clean)
		}
		return fault.Wrap(op, fault.Retryable, "", fmt.Errorf("transport: %w", clean))
	}
	var sdkErr sdkerrors.Error
	if errors.As(err, &sdkErr) {
		apiErr := &APIError{HTTPStatus: sdkErr.HttpStatus(), Code: sdkErr.ErrorCode(), Message: c.snippet(sdkErr.Message())}
		var serverErr *sdkerrors.ServerError
		if errors.As(err, &serverErr) {
			apiErr.RequestID = serverErr.RequestId()
		} else {
			// A client-side SDK error: its HttpStatus is a constant 400.
			apiErr.HTTPStatus = x.status
			if origin := sdkErr.OriginError(); origin != nil {
				apiErr.Message += ": " + c.snippet(origin.Error())
			}
		}
		return fault.Wrap(op, kindOf(apiErr.HTTPStatus, apiErr.Code), apiErr.Code, apiErr)
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return fault.Wrap(op, fault.Retryable, "", fmt.Errorf("transport: %s", c.redact(err.Error())))
	}
	return fault.Wrap(op, fault.Permanent, "", fmt.Errorf("SDK: %s", c.redact(err.Error())))
}

// kindOf classifies a service error by HTTP status and code.
func kindOf(status int, code string) fault.Kind {
	switch {
	case status >= 500,
		code == "Throttling", strings.HasPrefix(code, "Throttling."), code == "Rejected.Throttling",
		code == "ServiceUnavailable", code == "InternalError", code == sdkerrors.TimeoutErrorCode:
		return fault.Retryable
	}
	return fault.Permanent
}

// contextError reports ctx trouble: a passed deadline is Retryable (the work
// itself may succeed later), a cancellation is Permanent (the caller gave up).
func contextError(op string, ctxErr error, when string, cause error) error {
	kind := fault.Permanent
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		kind = fault.Retryable
	}
	if cause != nil {
		return fault.Wrap(op, kind, "", fmt.Errorf("context done %s: %w (%w)", when, ctxErr, cause))
	}
	return fault.Wrap(op, kind, "", fmt.Errorf("context done %s: %w", when, ctxErr))
}

// redact removes the secret and token from s and cuts the gateway's echo of
// its string to sign.
func (c *Client) redact(s string) string {
	if i := strings.Index(s, "server string to sign is:"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return c.redactor.Text(s)
}

// snippet redacts s and shortens it to one line of at most 300 bytes (an
// HTML error page becomes a readable hint).
func (c *Client) snippet(s string) string { return c.redactor.Snippet(c.redact(s), 300) }

// exchange is the per-call transport: it ties the request to the caller's
// ctx (the SDK builds requests without one) and keeps the status and the
// start of the body for reports when the SDK panics.
type exchange struct {
	ctx    context.Context
	base   http.RoundTripper
	status int
	body   bytes.Buffer
}

// RoundTrip implements http.RoundTripper.
func (x *exchange) RoundTrip(req *http.Request) (*http.Response, error) {
	rctx, cancel := context.WithCancelCause(req.Context())
	stop := context.AfterFunc(x.ctx, func() { cancel(context.Cause(x.ctx)) })
	resp, err := x.base.RoundTrip(req.WithContext(rctx))
	if err != nil {
		stop()
		cancel(nil)
		return nil, err
	}
	x.status = resp.StatusCode
	resp.Body = &captureBody{ReadCloser: resp.Body, x: x, release: func() { stop(); cancel(nil) }}
	return resp, nil
}

type captureBody struct {
	io.ReadCloser
	x       *exchange
	release func()
}

func (b *captureBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if room := captureLimit - b.x.body.Len(); room > 0 && n > 0 {
		b.x.body.Write(p[:min(n, room)])
	}
	return n, err
}

func (b *captureBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}
