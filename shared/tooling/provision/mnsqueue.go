package provision

import (
	"context"
	"fmt"

	ali_mns "github.com/aliyun/aliyun-mns-go-sdk"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/mnsconn"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/taskqueue"
)

const opCreateQueue = "mns.CreateQueue"

// QueueAttributes are the settings EnsureQueue creates a queue with, in
// seconds and bytes. A zero value means the service default: MaxMessageSize
// 65536, MessageRetentionPeriod 345600 (4 days), VisibilityTimeout 30,
// DelaySeconds and PollingWaitSeconds 0.
type QueueAttributes struct {
	DelaySeconds           int32 // 0..60480 (the SDK's own cap; the service allows 604800)
	MaxMessageSize         int32 // 1024..65536
	MessageRetentionPeriod int32 // 60..604800
	VisibilityTimeout      int32 // 1..43200
	PollingWaitSeconds     int32 // 0..30
}

// sdkMaxQueueDelay is aliyun-mns-go-sdk v1.0.11's check on a queue's
// DelaySeconds (it refuses more, though the service allows 604800).
const sdkMaxQueueDelay = 60480

func (a QueueAttributes) withDefaults() (QueueAttributes, error) {
	if a.MaxMessageSize == 0 {
		a.MaxMessageSize = mnsconn.MaxBodyBytes
	}
	if a.MessageRetentionPeriod == 0 {
		a.MessageRetentionPeriod = 345600
	}
	if a.VisibilityTimeout == 0 {
		a.VisibilityTimeout = 30
	}
	switch {
	case a.DelaySeconds < 0 || a.DelaySeconds > sdkMaxQueueDelay:
		return a, fault.Invalidf(opCreateQueue, "queue DelaySeconds %d is out of range 0..%d", a.DelaySeconds, sdkMaxQueueDelay)
	case a.MaxMessageSize < 1024 || a.MaxMessageSize > mnsconn.MaxBodyBytes:
		return a, fault.Invalidf(opCreateQueue, "queue MaxMessageSize %d is out of range 1024..%d", a.MaxMessageSize, mnsconn.MaxBodyBytes)
	case a.MessageRetentionPeriod < 60 || a.MessageRetentionPeriod > 604800:
		return a, fault.Invalidf(opCreateQueue, "queue MessageRetentionPeriod %d is out of range 60..604800", a.MessageRetentionPeriod)
	case a.VisibilityTimeout < 1 || a.VisibilityTimeout > 43200:
		return a, fault.Invalidf(opCreateQueue, "queue VisibilityTimeout %d is out of range 1..43200", a.VisibilityTimeout)
	case a.PollingWaitSeconds < 0 || a.PollingWaitSeconds > 30:
		return a, fault.Invalidf(opCreateQueue, "queue PollingWaitSeconds %d is out of range 0..30", a.PollingWaitSeconds)
	}
	return a, nil
}

// conflictError: the queue exists with other attributes.
type conflictError struct {
	queue string
	err   error
}

func (e *conflictError) Error() string {
	return fmt.Sprintf("queue %s already exists with different attributes; change them in the console or delete the queue: %v", e.queue, e.err)
}

func (e *conflictError) Unwrap() error { return e.err }

// EnsureQueue creates cfg.Queue with attrs unless it already exists with the
// same attributes; it reports whether it created the queue. It is idempotent.
// It lives here, not in package taskqueue, so that the function binaries do
// not carry code only provisioning runs.
// An existing queue with other attributes is a Permanent error (code
// QueueAlreadyExist) naming the queue; EnsureQueue never changes an existing
// queue. Errors are classified as for Send, with Op "mns.CreateQueue".
func EnsureQueue(ctx context.Context, cfg taskqueue.Config, cred cloudauth.Credentials, attrs QueueAttributes) (created bool, err error) {
	if !ident.QueueName.Valid(cfg.Queue) {
		return false, fault.Invalidf(opCreateQueue,
			"queue name %q is invalid: want 1..120 characters of letters, digits and '-', starting with a letter", cfg.Queue)
	}
	conn, err := mnsconn.New(opCreateQueue, mnsconn.Config{
		Endpoint: cfg.Endpoint, Timeout: cfg.Timeout, AccountID: cfg.AccountID, Region: cfg.Region,
	}, cred)
	if err != nil {
		return false, err
	}
	a, err := attrs.withDefaults()
	if err != nil {
		return false, err
	}
	var made bool
	err = conn.Do(ctx, opCreateQueue, "queue "+cfg.Queue, func(c ali_mns.MNSClient) error {
		cerr := ali_mns.NewMNSQueueManager(c).CreateQueue(cfg.Queue,
			a.DelaySeconds, a.MaxMessageSize, a.MessageRetentionPeriod, a.VisibilityTimeout, a.PollingWaitSeconds, 2)
		switch {
		case cerr == nil:
			made = true
			return nil
		case ali_mns.ERR_MNS_QUEUE_ALREADY_EXIST_AND_HAVE_SAME_ATTR.IsEqual(cerr):
			return nil
		case ali_mns.ERR_MNS_QUEUE_ALREADY_EXIST.IsEqual(cerr):
			return &conflictError{queue: cfg.Queue, err: cerr}
		default:
			return cerr
		}
	})
	if err != nil {
		return false, err
	}
	return made, nil
}
