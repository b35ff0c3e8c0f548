// Package notify publishes outcome notifications (an instance got its backup
// client, or could not) to an Alibaba Cloud MNS topic with
// aliyun-mns-go-sdk v1.0.11, so that subscribers (a queue, an HTTP endpoint,
// e-mail) hear about them.
//
// Bodies are base64-encoded (StdEncoding) before publishing, as the
// PublishMessage documentation advises; subscribers decode them. The
// endpoint, loopback-redirect, credential, context and classification rules
// are shared/mnsconn's, as for shared/taskqueue; this package adds what is
// particular to topics: names and message tags.
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
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	ali_mns "github.com/aliyun/aliyun-mns-go-sdk"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/mnsconn"
)

// Limits and defaults.
const (
	// MaxTagLen is the longest message tag accepted, in characters.
	// [UNVERIFIED] the MNS filter-tag limit; PublishMessage states none.
	MaxTagLen = 16
	// MaxBodyBytes is the MNS limit on a message body as sent on the wire,
	// i.e. after base64 encoding (about 48 KiB of raw payload).
	MaxBodyBytes = mnsconn.MaxBodyBytes
	// DefaultTimeout bounds one request when Config.Timeout is 0.
	DefaultTimeout = mnsconn.DefaultTimeout

	opNew     = "notify.New"
	opPublish = "mns.PublishMessage"
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
	topic string
	conn  *mnsconn.Conn
}

// New validates cfg and cred and returns a Publisher. It makes no request
// and never panics; every error is fault.Invalid.
func New(cfg Config, cred cloudauth.Credentials) (*Publisher, error) {
	if !ident.TopicName.Valid(cfg.Topic) {
		return nil, fault.Invalidf(opNew,
			"topic name %q is invalid: want 1..256 characters of letters, digits and '-', starting with a letter", cfg.Topic)
	}
	conn, err := mnsconn.New(opNew, mnsconn.Config{
		Endpoint: cfg.Endpoint, Timeout: cfg.Timeout, AccountID: cfg.AccountID, Region: cfg.Region,
	}, cred)
	if err != nil {
		return nil, err
	}
	return &Publisher{topic: cfg.Topic, conn: conn}, nil
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
	encoded, err := mnsconn.EncodeBody(body)
	if err == nil {
		err = checkTag(tag)
	}
	if err != nil {
		return "", fault.Wrap(opPublish, fault.Invalid, "", fmt.Errorf("topic %s: %w", p.topic, err))
	}
	req := ali_mns.MessagePublishRequest{MessageBody: encoded, MessageTag: tag}
	var resp ali_mns.MessageSendResponse
	err = p.conn.Do(ctx, opPublish, "topic "+p.topic, func(c ali_mns.MNSClient) error {
		var perr error
		resp, perr = ali_mns.NewMNSTopic(p.topic, c).PublishMessage(req)
		return perr
	})
	if err != nil {
		return "", err
	}
	return resp.MessageId, nil
}
