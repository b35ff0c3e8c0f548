package provision

import (
	"context"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/taskqueue"
)

// DefaultMNSEndpoint is the public MNS endpoint; {account} and {region} are
// replaced per queue.
const DefaultMNSEndpoint = "https://{account}.mns.{region}.aliyuncs.com"

// MNSEndpoint fills an endpoint pattern such as DefaultMNSEndpoint.
func MNSEndpoint(pattern, account, region string) string {
	return strings.NewReplacer("{account}", account, "{region}", region).Replace(pattern)
}

// TaskQueueEnsurer returns an EnsureQueueFunc that creates queues with
// EnsureQueue (the MNS SDK), at the endpoint pattern filled for
// each queue's region. Its errors are taskqueue's classified errors.
func TaskQueueEnsurer(creds cloudauth.Credentials, account, endpointPattern string, timeout time.Duration) EnsureQueueFunc {
	if endpointPattern == "" {
		endpointPattern = DefaultMNSEndpoint
	}
	return func(ctx context.Context, q QueueSpec) (bool, error) {
		cfg := taskqueue.Config{
			Endpoint:  MNSEndpoint(endpointPattern, account, q.Region),
			Queue:     q.Name,
			Timeout:   timeout,
			AccountID: account,
			Region:    q.Region,
		}
		return EnsureQueue(ctx, cfg, creds, QueueAttributes{
			MaxMessageSize:         q.MaxMessageSize,
			MessageRetentionPeriod: q.MessageRetentionPeriod,
			VisibilityTimeout:      q.VisibilityTimeout,
		})
	}
}
