package smoke

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
)

// TestQueueReaderDepth reads GetQueueAttributes from the MNS emulator
// through the pinned SDK.
func TestQueueReaderDepth(t *testing.T) {
	t.Parallel()
	cred := cloudauth.Credentials{AccessKeyID: "LTAI5tSmokeTest", AccessKeySecret: "smoke-secret"}
	srv := mnssim.New(mnssim.Options{AccessKeyID: cred.AccessKeyID, AccessKeySecret: cred.AccessKeySecret})
	srv.CreateQueue("jobs")
	url, err := srv.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	for _, delay := range []time.Duration{0, 0, time.Hour} {
		_, err := srv.Send("jobs", "e30=", delay, 8)
		require.NoError(t, err)
	}

	qr, err := NewQueueReader(url, cred, 5*time.Second)
	require.NoError(t, err)
	ctx := context.Background()
	d, err := qr.Depth(ctx, "jobs")
	require.NoError(t, err)
	assert.Equal(t, Depth{Visible: 2, Delayed: 1}, d)
	assert.EqualValues(t, 3, d.Total())

	_, err = qr.Depth(ctx, "missing")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "read the depth of queue missing")

	bad, err := NewQueueReader(url, cloudauth.Credentials{AccessKeyID: "LTAI5tSmokeTest", AccessKeySecret: "wrong"}, 5*time.Second)
	require.NoError(t, err)
	_, err = bad.Depth(ctx, "jobs")
	require.Error(t, err)
}
