// Package mnsconn is the plumbing that shared/taskqueue (queues) and
// shared/notify (topics) use to reach Alibaba Cloud MNS through
// aliyun-mns-go-sdk v1.0.11: it checks and resolves the endpoint, builds SDK
// clients from cloudauth.Credentials, runs each SDK call bounded by a
// context, and classifies what the call returns with shared/fault.
//
// The SDK takes no context and panics on some inputs; a [Conn] validates
// first, recovers at the boundary, and gives every call a fresh SDK client
// (the SDK's queue and topic objects race in their QPS monitors), so one Conn
// is safe for concurrent use. An http:// endpoint must be a loopback emulator;
// requests to it keep an MNS-shaped Host header and only the dialled address
// changes (sdk-notes §3.2, redirect transport).
//
// Every error is a *fault.Error with the Op the caller names:
//   - fault.Invalid: from [New], bad configuration or credentials; no request
//     was made.
//   - fault.Retryable: from [Conn.Do], transport failures and timeouts,
//     QpsLimitExceeded, InternalError, any HTTP 5xx, unparsable responses.
//   - fault.Permanent: from [Conn.Do], everything else (InvalidArgument,
//     QueueNotExist, TopicNotExist, AccessDenied, SignatureDoesNotMatch, …),
//     a panic inside the SDK, and a context that was cancelled or expired
//     (fault.IsContext reports those).
//
// Code is the MNS error code when the service sent one.
package mnsconn

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

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
	// DefaultTimeout bounds one request when Config.Timeout is 0.
	DefaultTimeout = 10 * time.Second
)

// Config says which MNS endpoint to reach and how long a request may take.
type Config struct {
	// Endpoint is "https://<accountId>.mns.<region>.aliyuncs.com" (or the
	// "-internal" region form), or for the local emulator
	// "http://127.0.0.1:PORT" / "http://localhost:PORT". Any http://
	// endpoint must be a loopback host.
	Endpoint string
	// Timeout bounds one request (default DefaultTimeout); the context's
	// deadline shortens it further.
	Timeout time.Duration
	// AccountID and Region only build the MNS-shaped host name used with a
	// loopback endpoint (defaults "1234567890" and "cn-hangzhou").
	AccountID, Region string
}

// Conn reaches one MNS endpoint with one set of credentials. It is safe for
// concurrent use. Build one per invocation, since Function Compute hands out
// fresh STS credentials with each.
type Conn struct {
	cred        cloudauth.Credentials
	timeout     time.Duration
	sdkEndpoint string               // what the SDK is given (always 4 dots)
	loopback    *fasthttp.HostClient // non-nil: every request goes here
}

// New validates cfg and cred and returns a Conn. It makes no request and
// never panics; every error is fault.Invalid under op (the caller's
// constructor, e.g. "taskqueue.New").
func New(op string, cfg Config, cred cloudauth.Credentials) (c *Conn, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fault.Invalidf(op, "MNS SDK rejected the configuration: %v", r)
		}
	}()
	switch {
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	case cfg.Timeout < 0:
		return nil, fault.Invalidf(op, "timeout %s is negative", cfg.Timeout)
	}
	if !cred.Valid() {
		return nil, fault.Invalidf(op, "credentials have no access key pair")
	}
	ep, err := resolveEndpoint(cfg)
	if err != nil {
		return nil, fault.Wrap(op, fault.Invalid, "", err)
	}
	c = &Conn{cred: cred, timeout: cfg.Timeout, sdkEndpoint: ep.sdk}
	if ep.loopAddr != "" {
		c.loopback = &fasthttp.HostClient{Addr: ep.loopAddr, MaxConns: ali_mns.DefaultMaxConnsPerHost, DialDualStack: true}
	}
	// Build a client once so that anything the SDK constructor dislikes
	// surfaces here (as a recovered panic) rather than on the first call.
	c.client(1, &probe{})
	return c, nil
}

// client builds an SDK client that sends through p. It panics where the SDK
// does; callers recover.
func (c *Conn) client(timeoutSecs int64, p *probe) ali_mns.MNSClient {
	mc := ali_mns.NewAliMNSClientWithConfig(ali_mns.AliMNSClientConfig{
		EndPoint:        c.sdkEndpoint,
		AccessKeyId:     c.cred.AccessKeyID,
		AccessKeySecret: c.cred.AccessKeySecret,
		Token:           c.cred.SecurityToken,
		TimeoutSecond:   timeoutSecs,
	})
	p.loopback = c.loopback
	mc.SetTransport(p)
	return mc
}

// sdkPanic is a panic recovered from the SDK.
type sdkPanic struct{ value any }

func (p *sdkPanic) Error() string { return fmt.Sprintf("MNS SDK panicked: %v", p.value) }

// Do runs call with a fresh SDK client and returns its error classified under
// op, with subject (e.g. "queue hbr-jobs") leading the message; nil stays
// nil. The SDK's own timeout is min(Config.Timeout, time left before ctx's
// deadline), at least 1 s. A ctx that is already done makes no request; a ctx
// that ends while waiting returns at once, and the abandoned call ends by its
// timeout. That is the only case in which Do returns before call has
// finished, and its error then satisfies fault.IsContext: otherwise whatever
// call wrote is safe to read.
func (c *Conn) Do(ctx context.Context, op, subject string, call func(ali_mns.MNSClient) error) error {
	if err := ctx.Err(); err != nil {
		return fault.Wrap(op, fault.Permanent, "", fmt.Errorf("%s: not sent: %w", subject, err))
	}
	timeout := c.timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	timeout = max(timeout, time.Second)
	secs := int64((timeout + time.Second - 1) / time.Second)
	p := &probe{timeout: timeout}
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- &sdkPanic{r}
			}
		}()
		done <- call(c.client(secs, p))
	}()
	select {
	case <-ctx.Done():
		return fault.Wrap(op, fault.Permanent, "", fmt.Errorf("%s: gave up waiting for MNS: %w", subject, ctx.Err()))
	case err := <-done:
		return classify(op, subject, err, p)
	}
}

// EncodeBody returns body base64-encoded (StdEncoding), as MNS requires of
// binary bodies. Its errors (an empty body, or one over MaxBodyBytes once
// encoded) are bad input, for the caller to classify as fault.Invalid.
func EncodeBody(body []byte) (string, error) {
	if len(body) == 0 {
		return "", errors.New("message body is empty")
	}
	if n := base64.StdEncoding.EncodedLen(len(body)); n > MaxBodyBytes {
		return "", fmt.Errorf("message body is %d bytes base64-encoded (%d raw), over the MNS limit of %d", n, len(body), MaxBodyBytes)
	}
	return base64.StdEncoding.EncodeToString(body), nil
}
