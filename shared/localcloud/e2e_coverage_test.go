package localcloud

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ecssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/fcsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/reconcile"
)

// longAgo is well before any event of a test (their times derive from the
// test's own clock): a client created then
// predates every event of these tests.
var longAgo = time.Now().Add(-30 * 24 * time.Hour)

// tagKey is the outcome tag the tests configure.
const tagKey = "hbr-autoinstall"

// settle waits, inside a run's setup, for the system to settle and then for
// cond: for the effects the functions have after they log an outcome (a tag
// written, a notice published), which Wait does not cover.
func settle(t *testing.T, c *Cloud, cond func() bool, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.True(t, c.Wait(ctx), "the system settles before %s", what)
	require.Eventually(t, cond, 10*time.Second, 50*time.Millisecond, what)
}

// sweep invokes the reconcile function directly, as `s invoke` or the timer
// would, and returns its report.
func sweep(t *testing.T, c *Cloud, payload string) reconcile.Report {
	t.Helper()
	res, err := c.Function("reconcile").Invoke(context.Background(), []byte(payload), fcsim.InvokeOptions{})
	require.NoError(t, err)
	require.Nil(t, res.Err, "reconcile failed")
	var rep reconcile.Report
	require.NoError(t, json.Unmarshal(res.Body, &rep), "report: %s", res.Body)
	return rep
}

func TestE2EExcludedInstancesAreSkipped(t *testing.T) {
	t.Parallel()
	var cloud *Cloud
	r := run(t, Options{Env: map[string]string{"EXCLUDE_TAGS": "backup=off"}}, 60*time.Second, func(c *Cloud) {
		cloud = c
		c.ECS.SetInstances(
			ecssim.Instance{ID: "i-skip0001", Tags: map[string]string{"backup": "off"}},
			ecssim.Instance{ID: "i-keep0001", Tags: map[string]string{"backup": "on"}},
		)
		publish(t, c, runningEvent("i-skip0001"), runningEvent("i-keep0001"))
	})
	assert.Equal(t, "SKIPPED", r.Outcomes["i-skip0001"].Outcome)
	assert.Equal(t, "OutOfScope", r.Outcomes["i-skip0001"].Code)
	assert.Contains(t, r.Outcomes["i-skip0001"].Reason, "exclude tag backup=off")
	assert.Equal(t, "INSTALLED", r.Outcomes["i-keep0001"].Outcome)
	assert.Zero(t, cloud.HBR.Installs("i-skip0001"), "no install call for the excluded instance")
	assert.Equal(t, 1, cloud.HBR.Installs("i-keep0001"))
	assert.Positive(t, cloud.ECS.Calls()["ecs.DescribeInstances"], "scope is decided from ECS at install time")
}

func TestE2EAuditModeInstallsNothing(t *testing.T) {
	t.Parallel()
	var cloud *Cloud
	r := run(t, Options{Env: map[string]string{"MODE": "audit", "OUTCOME_TAG_KEY": tagKey}}, 60*time.Second, func(c *Cloud) {
		cloud = c
		c.ECS.SetInstances(ecssim.Instance{ID: "i-audit001"}, ecssim.Instance{ID: "i-audit002"}, ecssim.Instance{ID: "i-audit003"})
		c.HBR.SetClient("i-audit003", "ACTIVATED", longAgo)
		publish(t, c, runningEvent("i-audit001"), runningEvent("i-audit002"), runningEvent("i-audit003"))
	})
	assert.Equal(t, "WOULD_INSTALL", r.Outcomes["i-audit001"].Outcome)
	assert.Equal(t, "WOULD_INSTALL", r.Outcomes["i-audit002"].Outcome)
	assert.Equal(t, "ALREADY_INSTALLED", r.Outcomes["i-audit003"].Outcome)
	assert.Zero(t, r.Calls["hbr.InstallBackupClients"], "audit mode installs nothing")
	assert.Zero(t, cloud.ECS.Calls()["ecs.TagResources"], "audit mode writes no tag")
	for _, id := range []string{"i-audit001", "i-audit002", "i-audit003"} {
		assert.NotContains(t, cloud.ECS.Tags(id), tagKey, id)
	}
}

func TestE2EOutcomeTagIsWritten(t *testing.T) {
	t.Parallel()
	var cloud *Cloud
	r := run(t, Options{
		Env:       map[string]string{"OUTCOME_TAG_KEY": tagKey},
		Instances: map[string]hbrsim.Behavior{"i-tagbad01": {FailInstalls: 5, InstallDuration: time.Second}},
	}, 60*time.Second, func(c *Cloud) {
		cloud = c
		c.ECS.SetInstances(ecssim.Instance{ID: "i-tagok001"}, ecssim.Instance{ID: "i-tagbad01"})
		publish(t, c, runningEvent("i-tagok001"), runningEvent("i-tagbad01"))
		settle(t, c, func() bool {
			return c.ECS.Tags("i-tagok001")[tagKey] != "" && c.ECS.Tags("i-tagbad01")[tagKey] != ""
		}, "both instances carry their outcome tag")
	})
	assert.Equal(t, "INSTALLED", r.Outcomes["i-tagok001"].Outcome)
	require.Equal(t, "FAILED", r.Outcomes["i-tagbad01"].Outcome)
	assert.NotEmpty(t, r.Outcomes["i-tagbad01"].Code)
	assert.Equal(t, "installed", cloud.ECS.Tags("i-tagok001")[tagKey])
	assert.Equal(t, "failed:"+r.Outcomes["i-tagbad01"].Code, cloud.ECS.Tags("i-tagbad01")[tagKey])
}

// Another installer (HBR's tag policy, the console) started a client 20 s
// before the instance's Running event: the install function sees it
// INSTALLING, waits on the install queue instead of installing a second
// time, and records what it became.
func TestE2EClientBeingInstalledIsNotInstalledTwice(t *testing.T) {
	t.Parallel()
	var cloud *Cloud
	var mu sync.Mutex
	var waited []job.Instance
	r := run(t, Options{}, 60*time.Second, func(c *Cloud) {
		cloud = c
		c.MNS.OnSend(func(m mnssim.Message) {
			if m.Queue != InstallQueueName {
				return
			}
			if body, err := decodeBase64(m.Body); err == nil {
				if jm, err := job.Decode(body); err == nil {
					mu.Lock()
					waited = append(waited, jm.Instances...)
					mu.Unlock()
				}
			}
		})
		c.HBR.SetClientTransition("i-inst0001", "INSTALLING", time.Now().Add(-20*time.Second), "ACTIVATED", 3*time.Second)
		publish(t, c, runningEvent("i-inst0001"))
	})
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, waited, "the install function saw the client INSTALLING and queued another look")
	assert.Equal(t, install.CodeClientInstalling, waited[0].LastCode)
	assert.Equal(t, "ALREADY_INSTALLED", r.Outcomes["i-inst0001"].Outcome, "what the other install became")
	assert.Zero(t, r.Calls["hbr.InstallBackupClients"], "no install call of its own")
	assert.Zero(t, cloud.HBR.Installs("i-inst0001"))
}

func TestE2EProblemsArePublishedToTheTopic(t *testing.T) {
	t.Parallel()
	var cloud *Cloud
	r := run(t, Options{
		Env:       map[string]string{"OUTCOME_TOPIC": TopicName},
		Instances: map[string]hbrsim.Behavior{"i-note0001": {FailInstalls: 5, InstallDuration: time.Second}},
	}, 60*time.Second, func(c *Cloud) {
		cloud = c
		publish(t, c, runningEvent("i-note0001"), runningEvent("i-fine0001"))
		settle(t, c, func() bool { return len(c.MNS.Published(TopicName)) >= 1 }, "the failure is published")
	})
	assert.Equal(t, "FAILED", r.Outcomes["i-note0001"].Outcome)
	assert.Equal(t, "INSTALLED", r.Outcomes["i-fine0001"].Outcome)

	published := cloud.MNS.Published(TopicName)
	require.Len(t, published, 1, "only the problem is published (NOTIFY=problems)")
	assert.Equal(t, "failed", published[0].Tag, "the message tag is the outcome slug, for subscription filters")
	body, err := base64.StdEncoding.DecodeString(published[0].Body)
	require.NoError(t, err)
	var notice map[string]any
	require.NoError(t, json.Unmarshal(body, &notice))
	assert.Equal(t, "i-note0001", notice["instanceId"])
	assert.Equal(t, "FAILED", notice["outcome"])
	assert.Equal(t, r.Outcomes["i-note0001"].Code, notice["code"])
	assert.NotEmpty(t, notice["jobId"])
}

func TestE2EReconcileSweepFindsTheMissingOnes(t *testing.T) {
	t.Parallel()
	all := ids("recon", 10)
	covered, excluded, missing := all[:4], all[4:6], all[6:]
	// The timer's trigger time, in whole seconds as FC sends it; clients
	// the sweep installs are created after it.
	timer := fmt.Sprintf(`{"triggerTime":%q,"triggerName":"daily","payload":"{}"}`,
		time.Now().UTC().Truncate(time.Second).Format(time.RFC3339))
	var (
		cloud      *Cloud
		dry, swept reconcile.Report
	)
	r := run(t, Options{Env: map[string]string{"EXCLUDE_TAGS": "backup=off"}}, 60*time.Second, func(c *Cloud) {
		cloud = c
		for _, id := range all {
			in := ecssim.Instance{ID: id}
			for _, e := range excluded {
				if id == e {
					in.Tags = map[string]string{"backup": "off"}
				}
			}
			c.ECS.SetInstance(in)
		}
		c.ECS.SetInstance(ecssim.Instance{ID: "i-stopped01", Status: ecssim.StatusStopped})
		for _, id := range covered {
			c.HBR.SetClient(id, "ACTIVATED", longAgo)
		}

		dry = sweep(t, c, `{"dryRun":true}`)
		assert.Zero(t, c.MNS.Sent(QueueName), "a dry run enqueues nothing")

		swept = sweep(t, c, timer)
		// The timer fires again with the same trigger time (a redelivery):
		// the same job ids, so nothing new is accepted.
		sweep(t, c, timer)
	})

	for _, rep := range []reconcile.Report{dry, swept} {
		assert.Equal(t, "cn-hangzhou", rep.Region)
		assert.Equal(t, 10, rep.Total, "only running instances are swept")
		assert.Equal(t, 4, rep.Covered)
		assert.Equal(t, map[string]int{"exclude tag backup=off": 2}, rep.Excluded)
		assert.Equal(t, 4, rep.Missing)
		assert.Zero(t, rep.Installing)
		assert.False(t, rep.Truncated)
	}
	assert.True(t, dry.DryRun)
	assert.Zero(t, dry.Enqueued)
	assert.False(t, swept.DryRun)
	assert.Equal(t, 4, swept.Enqueued)

	assert.Equal(t, 4, r.Accepted, "one job per missing instance, redelivery included")
	assertAll(t, r, "INSTALLED", 4)
	for _, id := range missing {
		assert.Equal(t, "INSTALLED", r.Outcomes[id].Outcome, id)
	}
	for _, id := range append(append([]string{}, covered...), excluded...) {
		assert.Zero(t, cloud.HBR.Installs(id), "%s is never installed", id)
	}
	assert.Zero(t, cloud.HBR.Installs("i-stopped01"))
}

func TestE2ESweepOfAFleet(t *testing.T) {
	t.Parallel()
	var cov map[string]any
	r := run(t, Options{}, 60*time.Second, func(c *Cloud) {
		ids := c.SeedFleet(30)
		require.Len(t, ids, 30)
		var err error
		cov, err = c.Sweep(context.Background(), `{}`)
		require.NoError(t, err)
	})
	assert.Equal(t, 30, cov["running"])
	assert.Equal(t, 3, cov["activated"], "a tenth has a client")
	assert.Equal(t, 27, cov["queued"])
	assert.Equal(t, 0, cov["skipped"])
	assert.Equal(t, cov, r.Coverage)
	assertAll(t, r, "INSTALLED", 27)
}

// An owner whose chain died after its install call — every send of its
// poll message failed until the platform gave the event up — holds its
// claim until the lease passes; the next reconcile sweep finds the claim
// stale, the install function takes the instance over, follows the dead
// chain's task instead of installing again, and records the outcome,
// naming the dead owner in supersedes.
func TestE2EDeadChainIsTakenOverBySweep(t *testing.T) {
	t.Parallel()
	timing := fastTiming()
	timing.ReadinessTimeout, timing.TaskTimeout, timing.Margin = 4*time.Second, 4*time.Second, time.Second
	var cloud *Cloud
	var rep reconcile.Report
	r := run(t, Options{Timing: timing}, 90*time.Second, func(c *Cloud) {
		cloud = c
		c.MNS.SetFaults(mnssim.Faults{SendFailRate: 1})
		publish(t, c, runningEvent("i-dead0001"))
		require.Eventually(t, func() bool {
			for _, d := range c.Report().DeadLetters {
				if d.Source == "bus" {
					return true
				}
			}
			return false
		}, 20*time.Second, 100*time.Millisecond, "the platform gives the event up")
		c.MNS.SetFaults(mnssim.Faults{})
		require.Equal(t, 1, c.HBR.Installs("i-dead0001"), "it had installed before it died")
		// The lease: 4 s + 4 s + 1 s, and 5 s for delays.
		time.Sleep(15 * time.Second)
		rep = sweep(t, c, `{"sweepId":"takeover-1"}`)
	})
	assert.Equal(t, 1, rep.StaleClaims)
	assert.Equal(t, "INSTALLED", r.Outcomes["i-dead0001"].Outcome)
	require.Len(t, r.Records, 1)
	assert.Equal(t, job.JobID("acs.ecs", "ev-i-dead0001", "i-dead0001"), r.Records[0].Supersedes, "the record names the dead owner")
	assert.Equal(t, 1, cloud.HBR.Installs("i-dead0001"), "the takeover followed the task, no second install")
	assert.Zero(t, r.WithoutRecord)
}
