package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
)

// ErrNotFound is wrapped by the errors the adapters return when the service
// says the entity does not exist (RAM's EntityNotExist.* codes).
var ErrNotFound = errors.New("entity does not exist")

// defaultTimeout bounds one API call when the options give none.
const defaultTimeout = 15 * time.Second

// rpcClient calls one RPC-style OpenAPI product (RAM, STS) through the core
// SDK's CommonRequest. A fresh SDK client is built for every call: the core
// client is not safe for concurrent use and rewrites requests in place.
type rpcClient struct {
	product  string // lower-case product code, used in operation names
	version  string
	endpoint string // host[:port]
	scheme   string // "HTTPS", or "HTTP" for a loopback emulator
	creds    cloudauth.Credentials
	timeout  time.Duration
}

// newRPCClient validates an endpoint ("host", "host:port" or a URL; plain
// http only for loopback hosts) and returns a client for product.
func newRPCClient(product, version, endpoint string, creds cloudauth.Credentials, timeout time.Duration) (*rpcClient, error) {
	op := product + ".New"
	if !creds.Valid() {
		return nil, fault.Invalidf(op, "no credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET")
	}
	host, scheme, err := parseEndpoint(endpoint)
	if err != nil {
		return nil, fault.Wrap(op, fault.Invalid, "", err)
	}
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	return &rpcClient{product: product, version: version, endpoint: host, scheme: scheme, creds: creds, timeout: timeout}, nil
}

// parseEndpoint turns "host", "host:port", "https://host[:port]" or
// "http://127.0.0.1:port" into a host and an SDK scheme.
func parseEndpoint(endpoint string) (host, scheme string, err error) {
	if endpoint == "" {
		return "", "", errors.New("empty endpoint")
	}
	if !strings.Contains(endpoint, "://") {
		if strings.ContainsAny(endpoint, "/?#@ ") {
			return "", "", fmt.Errorf("endpoint %q is not a host name", endpoint)
		}
		return endpoint, "HTTPS", nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", "", fmt.Errorf("endpoint %q is not a base URL", endpoint)
	}
	switch u.Scheme {
	case "https":
		return u.Host, "HTTPS", nil
	case "http":
		if !ident.Loopback(u.Hostname()) {
			return "", "", fmt.Errorf("endpoint %q: plain http is only allowed for a loopback emulator", endpoint)
		}
		return u.Host, "HTTP", nil
	default:
		return "", "", fmt.Errorf("endpoint %q: unsupported scheme %q", endpoint, u.Scheme)
	}
}

// call runs action with params (sent in the query string, as the official
// SDK does for these products) and decodes the JSON response into out. Every
// error is a *fault.Error with Op "<product>.<action>" and, when the service
// sent one, its error code.
func (c *rpcClient) call(ctx context.Context, action string, params map[string]string, out any) (err error) {
	op := c.product + "." + action
	if err := ctx.Err(); err != nil {
		return fault.Wrap(op, fault.Permanent, "", err)
	}
	// The SDK panics on some malformed responses (a numeric error Code, for
	// one); turn that into an error instead of crashing the program.
	defer func() {
		if r := recover(); r != nil {
			err = fault.Wrap(op, fault.Permanent, "", fmt.Errorf("SDK panic: %v", r))
		}
	}()

	timeout := c.timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout = left
		}
	}
	if timeout < time.Second {
		timeout = time.Second
	}

	var provider credentials.CredentialsProvider
	if c.creds.SecurityToken != "" {
		provider = credentials.NewStaticSTSCredentialsProvider(c.creds.AccessKeyID, c.creds.AccessKeySecret, c.creds.SecurityToken)
	} else {
		provider = credentials.NewStaticAKCredentialsProvider(c.creds.AccessKeyID, c.creds.AccessKeySecret)
	}
	client, err := sdk.NewClientWithOptions("cn-hangzhou", sdk.NewConfig().WithTimeout(timeout).WithScheme(c.scheme), provider)
	if err != nil {
		return fault.Wrap(op, fault.Invalid, "", fmt.Errorf("build SDK client: %w", err))
	}
	client.SetReadTimeout(timeout)
	client.SetConnectTimeout(min(timeout, 5*time.Second))

	req := requests.NewCommonRequest()
	req.Method = requests.POST
	req.Scheme = c.scheme
	req.Domain = c.endpoint
	req.Product = c.product
	req.Version = c.version
	req.ApiName = action
	for k, v := range params {
		req.QueryParams[k] = v
	}

	type result struct {
		body []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- result{err: fmt.Errorf("SDK panic: %v", r)}
			}
		}()
		resp, err := client.ProcessCommonRequest(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		done <- result{body: resp.GetHttpContentBytes()}
	}()

	var res result
	select {
	case <-ctx.Done():
		return fault.Wrap(op, fault.Permanent, "", ctx.Err())
	case res = <-done:
	}
	if res.err != nil {
		return classify(op, res.err)
	}
	if out != nil {
		if err := json.Unmarshal(res.body, out); err != nil {
			return fault.Wrap(op, fault.Permanent, "", fmt.Errorf("decode response: %w", err))
		}
	}
	return nil
}

// classify turns an SDK or transport error into a *fault.Error.
//
// Retryable: transport errors, HTTP ≥ 500, Throttling*, ServiceUnavailable,
// SDK.TimeoutError. Permanent with ErrNotFound: EntityNotExist.*. Permanent:
// everything else (access denied, bad parameters, signature errors).
func classify(op string, err error) error {
	var se *sdkerrors.ServerError
	if errors.As(err, &se) {
		code := se.ErrorCode()
		wrapped := fmt.Errorf("HTTP %d %s: %s", se.HttpStatus(), code, se.Message())
		switch {
		case strings.HasPrefix(code, "EntityNotExist"):
			return fault.Wrap(op, fault.Permanent, code, fmt.Errorf("%w: %w", ErrNotFound, wrapped))
		case code == "Throttling" || strings.HasPrefix(code, "Throttling.") || code == "ServiceUnavailable" || se.HttpStatus() >= 500:
			return fault.Wrap(op, fault.Retryable, code, wrapped)
		default:
			return fault.Wrap(op, fault.Permanent, code, wrapped)
		}
	}
	var ce *sdkerrors.ClientError
	if errors.As(err, &ce) {
		if ce.ErrorCode() == "SDK.TimeoutError" {
			return fault.Wrap(op, fault.Retryable, ce.ErrorCode(), err)
		}
		return fault.Wrap(op, fault.Permanent, ce.ErrorCode(), err)
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) {
		return fault.Wrap(op, fault.Retryable, "", err)
	}
	return fault.Wrap(op, fault.Permanent, "", err)
}

// boolParam formats a boolean request parameter.
func boolParam(b bool) string { return strconv.FormatBool(b) }
