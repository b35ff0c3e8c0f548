package provision

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/osssim"
)

func TestMNSEndpoint(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "https://123.mns.cn-shanghai.aliyuncs.com", MNSEndpoint(DefaultMNSEndpoint, "123", "cn-shanghai"))
	assert.Equal(t, "https://123.mns.cn-shanghai-internal.aliyuncs.com", MNSEndpoint("https://{account}.mns.{region}-internal.aliyuncs.com", "123", "cn-shanghai"))
}

// TestRunCreatesQueuesWithTheMNSSDK provisions two regions, each with its own
// MNS and OSS emulators reached through the real SDKs, twice: the second run
// creates nothing.
func TestRunCreatesQueuesWithTheMNSSDK(t *testing.T) {
	t.Parallel()
	plan := testPlan(t)
	sims := map[string]*mnssim.Server{}
	ensurers := map[string]EnsureQueueFunc{}
	osss := map[string]*osssim.Server{}
	ossURLs := map[string]string{}
	buckets := map[string]EnsureBucketFunc{}
	for _, region := range plan.Regions {
		sim := mnssim.New(mnssim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret})
		url, err := sim.Start()
		require.NoError(t, err)
		t.Cleanup(func() { _ = sim.Close() })
		sims[region] = sim
		ensurers[region] = TaskQueueEnsurer(testCreds, testAccount, url, 5*time.Second)
		oss, ossURL := newOSS(t, region)
		osss[region], ossURLs[region] = oss, ossURL
		buckets[region] = OSSBucketEnsurer(testCreds, ossURL, 5*time.Second)
	}
	ram := newRAMSim(t)
	client, err := NewRAMClient(testCreds, ram.url, 5*time.Second)
	require.NoError(t, err)
	var progress []string
	p := &Provisioner{
		RAM:          client,
		EnsureQueue:  func(ctx context.Context, q QueueSpec) (bool, error) { return ensurers[q.Region](ctx, q) },
		EnsureBucket: func(ctx context.Context, b BucketSpec) (BucketResult, error) { return buckets[b.Region](ctx, b) },
		Progress:     func(s Step) { progress = append(progress, s.String()) },
	}

	steps, err := p.Run(context.Background(), plan)
	require.NoError(t, err)
	assert.Equal(t, results(steps), progress)
	for _, s := range steps {
		assert.NotEqual(t, Unchanged, s.Result, s.String())
	}
	for region, sim := range sims {
		jobs, err := sim.Attributes(plan.Queue)
		require.NoError(t, err, region)
		assert.Equal(t, 345600, jobs.MessageRetentionPeriod, region)
		assert.Equal(t, 30, jobs.VisibilityTimeout, region)
		installs, err := sim.Attributes(plan.InstallQueue)
		require.NoError(t, err, region)
		assert.Equal(t, jobs, installs, region)
		dlq, err := sim.Attributes(plan.DLQ)
		require.NoError(t, err, region)
		assert.Equal(t, 604800, dlq.MessageRetentionPeriod, region)
		assert.Equal(t, 65536, dlq.MaximumMessageSize, region)
		c := bucketClient(t, ossURLs[region], region)
		info, err := c.Info(context.Background(), "hbr-autoinstall-ledger-"+testAccount+"-"+region)
		require.NoError(t, err, region)
		assert.Equal(t, BucketInfo{Name: "hbr-autoinstall-ledger-" + testAccount + "-" + region, Location: "oss-" + region, ACL: "private"}, info)
	}

	steps, err = p.Run(context.Background(), plan)
	require.NoError(t, err)
	for _, s := range steps {
		assert.Equal(t, Unchanged, s.Result, s.String())
	}
	for region, sim := range sims {
		assert.Equal(t, 6, sim.Calls()["mns.CreateQueue"], region)
	}
	for region, sim := range osss {
		calls := sim.Calls()
		assert.Equal(t, 1, calls["oss.PutBucket"], region)
		assert.Equal(t, 1, calls["oss.PutBucketLifecycle"], region)
		assert.Equal(t, 2, calls["oss.GetBucketLifecycle"], region)
	}
}

func TestTaskQueueEnsurerErrors(t *testing.T) {
	t.Parallel()
	sim := mnssim.New(mnssim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret})
	url, err := sim.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close() })
	q := QueueSpec{Region: "cn-hangzhou", Name: "jobs", MessageRetentionPeriod: 345600, MaxMessageSize: 65536, VisibilityTimeout: 30}

	// A queue that exists with other attributes is not changed.
	sim.CreateQueue("jobs")
	conflict := q
	conflict.MessageRetentionPeriod = 604800
	_, err = TaskQueueEnsurer(testCreds, testAccount, url, time.Second)(context.Background(), conflict)
	require.Error(t, err)
	assert.True(t, fault.Is(err, fault.Permanent), "%v", err)

	// Wrong credentials.
	bad := testCreds
	bad.AccessKeySecret = "wrong"
	_, err = TaskQueueEnsurer(bad, testAccount, url, time.Second)(context.Background(), q)
	require.Error(t, err)
	assert.True(t, fault.Is(err, fault.Permanent), "%v", err)

	// Nothing listening.
	require.NoError(t, sim.Close())
	_, err = TaskQueueEnsurer(testCreds, testAccount, url, time.Second)(context.Background(), q)
	require.Error(t, err)
	assert.True(t, fault.Is(err, fault.Retryable), "%v", err)
}
