package provision

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/taskqueue"
)

const (
	mnsAK     = "LTAI-test-key"
	mnsSecret = "test-secret"
)

var mnsCred = cloudauth.Credentials{AccessKeyID: mnsAK, AccessKeySecret: mnsSecret}

// assertMNSFault checks an error's classification: the Op of its outermost
// *fault.Error, its kind and its code.
func assertMNSFault(t *testing.T, err error, op string, kind fault.Kind, code string) {
	t.Helper()
	var fe *fault.Error
	require.ErrorAs(t, err, &fe)
	got := fault.Error{Op: fe.Op, Kind: fault.KindOf(err), Code: fault.CodeOf(err)}
	assert.Equal(t, fault.Error{Op: op, Kind: kind, Code: code}, got, "%v", err)
}

func TestEnsureQueue(t *testing.T) {
	t.Parallel()
	sim := mnssim.New(mnssim.Options{AccessKeyID: mnsAK, AccessKeySecret: mnsSecret})
	base, err := sim.Start()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, sim.Close()) })
	cfg := taskqueue.Config{Endpoint: base, Queue: "fresh-queue"}
	ctx := context.Background()
	attrs := QueueAttributes{VisibilityTimeout: 60, MessageRetentionPeriod: 86400}

	created, err := EnsureQueue(ctx, cfg, mnsCred, attrs)
	require.NoError(t, err)
	assert.True(t, created)
	got, err := sim.Attributes("fresh-queue")
	require.NoError(t, err)
	assert.Equal(t, mnssim.QueueAttributes{MaximumMessageSize: 65536, MessageRetentionPeriod: 86400, VisibilityTimeout: 60}, got)

	created, err = EnsureQueue(ctx, cfg, mnsCred, attrs)
	require.NoError(t, err)
	assert.False(t, created, "same attributes: nothing to do")

	_, err = EnsureQueue(ctx, cfg, mnsCred, QueueAttributes{VisibilityTimeout: 90})
	assertMNSFault(t, err, "mns.CreateQueue", fault.Permanent, "QueueAlreadyExist")

	_, err = EnsureQueue(ctx, cfg, mnsCred, QueueAttributes{PollingWaitSeconds: 31})
	assertMNSFault(t, err, "mns.CreateQueue", fault.Invalid, "")
	_, err = EnsureQueue(ctx, cfg, mnsCred, QueueAttributes{DelaySeconds: 604800})
	assertMNSFault(t, err, "mns.CreateQueue", fault.Invalid, "")

	_, err = EnsureQueue(ctx, cfg, cloudauth.Credentials{AccessKeyID: mnsAK, AccessKeySecret: "wrong"}, attrs)
	assertMNSFault(t, err, "mns.CreateQueue", fault.Permanent, "SignatureDoesNotMatch")

	assert.Equal(t, 4, sim.Calls()["mns.CreateQueue"])
	s, err := taskqueue.New(cfg, mnsCred)
	require.NoError(t, err)
	_, err = s.Send(ctx, taskqueue.Message{Body: []byte("x")})
	require.NoError(t, err)
	assert.Equal(t, 1, sim.Sent("fresh-queue"))
}
