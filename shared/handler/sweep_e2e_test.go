package handler

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ecssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/osssim"
)

// Names of the emulated install queue and ledger bucket.
const (
	installQueue = "hbr-autoinstall-installs"
	ledgerBucket = "hbr-autoinstall-ledger-test"
)

// emulated is a region on the emulators, reached through the real SDK
// adapters (SDKCloud), as a deployed function reaches the cloud.
type emulated struct {
	ecs   *ecssim.Server
	hbr   *hbrsim.Server
	mns   *mnssim.Server
	oss   *osssim.Server
	cfg   config.Config
	cloud SDKCloud
}

func startEmulated(t *testing.T, env map[string]string) *emulated {
	t.Helper()
	cred := cloudauth.Credentials{AccessKeyID: simAK, AccessKeySecret: simSecret}
	e := &emulated{
		ecs: ecssim.New(ecssim.Options{AccessKeyID: cred.AccessKeyID, AccessKeySecret: cred.AccessKeySecret}),
		hbr: hbrsim.New(hbrsim.Options{AccessKeyID: cred.AccessKeyID, AccessKeySecret: cred.AccessKeySecret}),
		mns: mnssim.New(mnssim.Options{AccessKeyID: cred.AccessKeyID, AccessKeySecret: cred.AccessKeySecret}),
		oss: osssim.New(osssim.Options{Principals: callers.Set{{Name: "functions", Credentials: cred}}}),
	}
	ecsURL, err := e.ecs.Start()
	require.NoError(t, err)
	hbrURL, err := e.hbr.Start()
	require.NoError(t, err)
	mnsURL, err := e.mns.Start()
	require.NoError(t, err)
	ossURL, err := e.oss.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.ecs.Close(); _ = e.hbr.Close(); _ = e.mns.Close(); _ = e.oss.Close() })
	e.mns.CreateQueue(jobsQueue)
	e.mns.CreateQueue(installQueue)
	e.mns.CreateQueue(deadQueueName)
	e.oss.CreateBucket(ledgerBucket)
	vars := map[string]string{
		"FC_REGION": "cn-hangzhou", "FC_ACCOUNT_ID": "1234567890123456", "QUEUE_NAME": jobsQueue, "DLQ_NAME": deadQueueName,
		"MNS_ENDPOINT": mnsURL, "HBR_ENDPOINT": hbrURL, "ECS_ENDPOINT": ecsURL,
		"INSTALL_QUEUE_NAME": installQueue, "OSS_ENDPOINT": ossURL, "LEDGER_BUCKET": ledgerBucket,
		"ALIBABA_CLOUD_ACCESS_KEY_ID": cred.AccessKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": cred.AccessKeySecret,
	}
	for k, v := range env {
		vars[k] = v
	}
	getenv := func(k string) string { return vars[k] }
	e.cfg, err = config.Load(getenv)
	require.NoError(t, err)
	e.cloud = SDKCloud{Config: e.cfg, Getenv: getenv}
	return e
}

// take removes every visible message from the job queue and decodes it.
func (e *emulated) take(t *testing.T) []job.Message {
	t.Helper()
	var out []job.Message
	for {
		msgs, err := e.mns.Receive(context.Background(), jobsQueue, 16, time.Hour, 0)
		require.NoError(t, err)
		if len(msgs) == 0 {
			return out
		}
		for _, m := range msgs {
			body, err := base64.StdEncoding.DecodeString(m.Body)
			require.NoError(t, err)
			jm, err := job.Decode(body)
			require.NoError(t, err)
			out = append(out, jm)
			require.NoError(t, e.mns.Delete(jobsQueue, m.ReceiptHandle))
		}
	}
}

// TestSweepOfFiftyThousandInstances sweeps a region of 50 000 running
// instances, a tenth of them with an ACTIVATED client, in audit mode, on
// the emulators: the reconcile function lists until its (shortened) time is
// up and queues a continuation; the poller runs each next part from the
// queue; the last part logs the whole region's coverage. Every missing
// instance gets exactly one install-retry job, sent with BatchSendMessage.
func TestSweepOfFiftyThousandInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("a 50 000 instance sweep")
	}
	const n = 50_000
	e := startEmulated(t, map[string]string{"MODE": "audit", "RECONCILE_RATE": "100000"})
	var ins []ecssim.Instance
	for i := range n {
		id := fmt.Sprintf("i-bp1sweep%011d", i)
		ins = append(ins, ecssim.Instance{ID: id})
		if i%10 == 0 {
			e.hbr.SetClient(id, "ACTIVATED", time.Now().Add(-time.Hour))
		}
	}
	e.ecs.SetInstances(ins...)

	d := DepsFrom(e.cfg)
	d.Cloud = e.cloud
	accepted := &recorder{}
	d.Outcomes = accepted
	var logs bytes.Buffer
	d.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	pagesPerPart := 0
	stop := func(context.Context) bool { pagesPerPart++; return pagesPerPart%150 == 0 }
	rec := NewReconcile(d, e.cfg.ReconcileRate, e.cfg.ReconcileMax)
	rec.Stop = stop
	poller := NewPoller(d)
	poller.Sweep = NewReconcile(d, e.cfg.ReconcileRate, e.cfg.ReconcileMax)
	poller.Sweep.Stop = stop

	started := time.Now()
	rep, err := rec.Handle(context.Background(), []byte(`{"sweepId":"big-1"}`))
	require.NoError(t, err)
	assert.False(t, rep.Complete)
	parts := 1
	for {
		// Continuations are sent without delay; the install jobs are
		// spread over time (RECONCILE_RATE), so most are not visible yet.
		var sweeps []job.Message
		for _, m := range e.take(t) {
			if m.Kind == job.KindSweep {
				sweeps = append(sweeps, m)
			}
		}
		if len(sweeps) == 0 {
			break
		}
		require.Len(t, sweeps, 1, "one continuation at a time")
		body, err := job.Encode(sweeps[0])
		require.NoError(t, err)
		payload, err := json.Marshal([]map[string]any{{"id": "ev", "data": map[string]any{"messageId": "m", "messageBody": string(body)}}})
		require.NoError(t, err)
		sum, err := poller.Handle(context.Background(), payload)
		require.NoError(t, err)
		require.Equal(t, 1, sum.Sweeps)
		parts++
	}
	elapsed := time.Since(started)

	cov := logLine(t, &logs, "coverage")
	assert.EqualValues(t, n, cov["total"])
	assert.EqualValues(t, n, cov["listed"])
	assert.EqualValues(t, n/10, cov["covered"])
	assert.EqualValues(t, n-n/10, cov["missing"])
	assert.EqualValues(t, n-n/10, cov["enqueued"])
	assert.Equal(t, true, cov["complete"])
	assert.EqualValues(t, parts, cov["parts"])
	assert.Equal(t, 4, parts, "500 pages at 150 a part")
	jobs := map[string]int{}
	for _, a := range accepted.accepted {
		jobs[a.InstanceID]++
	}
	assert.Equal(t, n-n/10, len(jobs), "every missing instance has a job")
	assert.Equal(t, n-n/10, len(accepted.accepted), "and only one")
	msgs := (n - n/10) / job.MaxInstances
	assert.Equal(t, msgs, e.mns.Sent(installQueue), "the install jobs reached the install queue")
	assert.Equal(t, parts-1, e.mns.Sent(jobsQueue), "the continuations reached the job queue")
	calls := e.mns.Calls()
	assert.Equal(t, parts-1, calls["mns.SendMessage"], "install jobs go in batches; only continuations are single sends")
	// A request takes 16 messages or 64 KiB of bodies, whichever comes
	// first: about 11 of these 20-instance messages.
	assert.Less(t, calls["mns.BatchSendMessage"], msgs/8, "install jobs are sent many to a request")
	t.Logf("50 000 instances: %d parts, %s, calls %v", parts, elapsed, calls)
	assert.Less(t, elapsed, 4*time.Minute, "within a function's timeout, all parts together")
}
