// Package taskqueue sends delayed job messages to an Alibaba Cloud MNS queue
// with aliyun-mns-go-sdk v1.0.11, and provisions queues for the deploy
// scripts (EnsureQueue).
//
// Bodies are base64-encoded (StdEncoding) before sending, as MNS requires and
// as the FC trigger expects with IsBase64Decode: true. The SDK takes no
// context and panics on some inputs; this package validates first, recovers
// at the boundary, and bounds every call by the context.
//
// Every error is a *fault.Error (Op "mns.SendMessage", "mns.BatchSendMessage"
// or "mns.CreateQueue"; Code = the MNS error code when the service sent one):
//   - fault.Invalid: bad configuration or message; no request was made.
//   - fault.Retryable: transport failures and timeouts, QpsLimitExceeded,
//     InternalError, any HTTP 5xx, unparsable responses.
//   - fault.Permanent: everything else (InvalidArgument, QueueNotExist,
//     AccessDenied, SignatureDoesNotMatch, MalformedXML, …), and a context
//     that was cancelled or expired (fault.IsContext reports those).
package taskqueue

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	ali_mns "github.com/aliyun/aliyun-mns-go-sdk"
	"github.com/valyala/fasthttp"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

// Limits and defaults.
const (
	// MaxBodyBytes is the MNS limit on a message body as sent on the wire,
	// i.e. after base64 encoding (about 48 KiB of raw payload). It is also
	// the limit on the total of one batch request.
	MaxBodyBytes = 65536
	// MaxBatch is the largest number of messages in one batch request.
	MaxBatch = 16
	// MaxDelay is the longest message delay MNS accepts (7 days).
	MaxDelay = 604800 * time.Second
	// DefaultPriority is used when Config.Priority is 0 (1 is most urgent).
	DefaultPriority = 8
	// DefaultTimeout bounds one MNS request when Config.Timeout is 0.
	DefaultTimeout = 10 * time.Second

	defaultAccountID = "1234567890"
	defaultRegion    = "cn-hangzhou"
	opNew            = "taskqueue.New"
	opSend           = "mns.SendMessage"
	opBatch          = "mns.BatchSendMessage"
	opCreateQueue    = "mns.CreateQueue"
)

// Config says where to send.
type Config struct {
	// Endpoint is "https://<accountId>.mns.<region>.aliyuncs.com" (or the
	// "-internal" region form), or for the local emulator
	// "http://127.0.0.1:PORT" / "http://localhost:PORT". Any http:// endpoint
	// must be a loopback host.
	Endpoint string
	// Queue is the queue name: 1..120 characters of [A-Za-z0-9-], starting
	// with a letter.
	Queue string
	// Priority of every message, 1 (most urgent) to 16; 0 means 8.
	Priority int
	// Timeout bounds one request (default 10 s); the context's deadline
	// shortens it further.
	Timeout time.Duration
	// AccountID and Region only build the MNS-shaped host name used with a
	// loopback endpoint (defaults "1234567890" and "cn-hangzhou").
	AccountID, Region string
}

// Message is one job message.
type Message struct {
	Body  []byte        // raw payload; sent base64-encoded
	Delay time.Duration // rounded up to whole seconds, clamped to 0..7 days
}

// Sender sends messages to one queue with one set of credentials. It is safe
// for concurrent use: each request builds its own SDK client and queue (the
// SDK's MNSQueue races in its QPS monitor). Build one per invocation, since
// Function Compute hands out fresh STS credentials with each.
type Sender struct {
	cfg         Config
	cred        cloudauth.Credentials
	sdkEndpoint string               // what the SDK is given (always 4 dots)
	loopback    *fasthttp.HostClient // non-nil: every request goes here
}

var (
	queueNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,119}$`)
	labelRE     = regexp.MustCompile(`^[A-Za-z0-9-]+$`)
)

// New validates cfg and cred and returns a Sender. It makes no request and
// never panics; every error is fault.Invalid.
func New(cfg Config, cred cloudauth.Credentials) (s *Sender, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fault.Invalidf(opNew, "MNS SDK rejected the configuration: %v", r)
		}
	}()
	if !queueNameRE.MatchString(cfg.Queue) {
		return nil, fault.Invalidf(opNew,
			"queue name %q is invalid: want 1..120 characters of letters, digits and '-', starting with a letter", cfg.Queue)
	}
	switch {
	case cfg.Priority == 0:
		cfg.Priority = DefaultPriority
	case cfg.Priority < 1 || cfg.Priority > 16:
		return nil, fault.Invalidf(opNew, "priority %d is out of range 1..16", cfg.Priority)
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
	s = &Sender{cfg: cfg, cred: cred, sdkEndpoint: sdkEndpoint}
	if loopAddr != "" {
		s.loopback = &fasthttp.HostClient{Addr: loopAddr, MaxConns: ali_mns.DefaultMaxConnsPerHost, DialDualStack: true}
	}
	// Build a client once so that anything the SDK constructor dislikes
	// surfaces here (as a recovered panic) rather than on the first send.
	s.client(1, &probe{})
	return s, nil
}

// resolveEndpoint checks cfg.Endpoint and returns the endpoint to give the SDK
// and, for a loopback endpoint, the address to redirect to (sdk-notes §3.2
// option 1).
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

// client builds an SDK client that sends through p. It panics where the SDK
// does; callers recover.
func (s *Sender) client(timeoutSecs int64, p *probe) ali_mns.MNSClient {
	c := ali_mns.NewAliMNSClientWithConfig(ali_mns.AliMNSClientConfig{
		EndPoint:        s.sdkEndpoint,
		AccessKeyId:     s.cred.AccessKeyID,
		AccessKeySecret: s.cred.AccessKeySecret,
		Token:           s.cred.SecurityToken,
		TimeoutSecond:   timeoutSecs,
	})
	p.loopback = s.loopback
	c.SetTransport(p)
	return c
}

// encode turns a Message into the SDK's request: base64 body, delay in whole
// seconds rounded up and clamped, explicit priority. Its errors are bad
// input, for the caller to classify as Invalid.
func (s *Sender) encode(m Message) (ali_mns.MessageSendRequest, error) {
	if len(m.Body) == 0 {
		return ali_mns.MessageSendRequest{}, errors.New("message body is empty")
	}
	if n := base64.StdEncoding.EncodedLen(len(m.Body)); n > MaxBodyBytes {
		return ali_mns.MessageSendRequest{}, fmt.Errorf(
			"message body is %d bytes base64-encoded (%d raw), over the MNS limit of %d", n, len(m.Body), MaxBodyBytes)
	}
	return ali_mns.MessageSendRequest{
		MessageBody:  base64.StdEncoding.EncodeToString(m.Body),
		DelaySeconds: delaySeconds(m.Delay),
		Priority:     int64(s.cfg.Priority),
	}, nil
}

func delaySeconds(d time.Duration) int64 {
	switch {
	case d <= 0:
		return 0
	case d >= MaxDelay:
		return int64(MaxDelay / time.Second)
	}
	return int64((d + time.Second - 1) / time.Second)
}

// Send sends one message and returns its MNS message ID.
func (s *Sender) Send(ctx context.Context, m Message) (string, error) {
	req, err := s.encode(m)
	if err != nil {
		return "", fault.Wrap(opSend, fault.Invalid, "", fmt.Errorf("queue %s: %w", s.cfg.Queue, err))
	}
	var resp ali_mns.MessageSendResponse
	err = s.do(ctx, opSend, func(c ali_mns.MNSClient) error {
		var serr error
		resp, serr = ali_mns.NewMNSQueue(s.cfg.Queue, c).SendMessage(req)
		return serr
	})
	if err != nil {
		return "", err
	}
	return resp.MessageId, nil
}

// sdkPanic is a panic recovered from the SDK.
type sdkPanic struct{ value any }

func (p *sdkPanic) Error() string { return fmt.Sprintf("MNS SDK panicked: %v", p.value) }

// do runs call with a fresh SDK client, bounded by ctx: the SDK's own timeout
// is min(Timeout, time left before ctx's deadline), at least 1 s, and a
// cancelled ctx returns at once (the abandoned request ends by its timeout).
func (s *Sender) do(ctx context.Context, op string, call func(ali_mns.MNSClient) error) error {
	if err := ctx.Err(); err != nil {
		return fault.Wrap(op, fault.Permanent, "", fmt.Errorf("queue %s: not sent: %w", s.cfg.Queue, err))
	}
	timeout := s.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout = left
		}
	}
	if timeout < time.Second {
		timeout = time.Second
	}
	secs := int64((timeout + time.Second - 1) / time.Second)
	p := &probe{timeout: timeout}
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- &sdkPanic{r}
			}
		}()
		done <- call(s.client(secs, p))
	}()
	select {
	case <-ctx.Done():
		return fault.Wrap(op, fault.Permanent, "", fmt.Errorf("queue %s: gave up waiting for MNS: %w", s.cfg.Queue, ctx.Err()))
	case err := <-done:
		return s.classify(op, err, p)
	}
}
