package smoke

import (
	"context"
	"fmt"
	"time"

	ali_mns "github.com/aliyun/aliyun-mns-go-sdk"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/mnsconn"
)

// QueueReader reads queue depths with MNS GetQueueAttributes (the pinned
// MNS SDK, through shared/mnsconn).
type QueueReader struct {
	conn *mnsconn.Conn
}

// NewQueueReader returns a reader for the MNS endpoint
// (https://<account>.mns.<region>.aliyuncs.com, or a loopback URL for the
// emulator).
func NewQueueReader(endpoint string, cred cloudauth.Credentials, timeout time.Duration) (*QueueReader, error) {
	conn, err := mnsconn.New("smoke.NewQueueReader", mnsconn.Config{Endpoint: endpoint, Timeout: timeout}, cred)
	if err != nil {
		return nil, err
	}
	return &QueueReader{conn: conn}, nil
}

// Depth returns the queue's message counts.
func (r *QueueReader) Depth(ctx context.Context, queue string) (Depth, error) {
	var attr ali_mns.QueueAttribute
	err := r.conn.Do(ctx, "mns.GetQueueAttributes", "queue "+queue, func(c ali_mns.MNSClient) error {
		var err error
		attr, err = ali_mns.NewMNSQueueManager(c).GetQueueAttributes(queue)
		return err
	})
	if err != nil {
		return Depth{}, fmt.Errorf("read the depth of queue %s: %w", queue, err)
	}
	return Depth{Visible: attr.ActiveMessages, Delayed: attr.DelayMessages, InFlight: attr.InactiveMessages}, nil
}
