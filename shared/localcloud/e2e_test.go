package localcloud

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/fcsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
)

// binaries are the compiled install and poller functions, built once.
var binaries map[string]string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "localcloud-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		root, err := ModuleRoot(".")
		if err == nil {
			binaries, err = BuildFunctions(context.Background(), root, dir)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "build functions:", err)
			return 1
		}
		return m.Run()
	}())
}

// runningEvent is a StateChange Running event for id, stamped with the
// test's own clock (never a fixed date: the system compares event times with
// client creation times, and a fixed date ages).
func runningEvent(id string) []byte {
	now := time.Now()
	return []byte(fmt.Sprintf(`{"id":"ev-%s","source":"acs.ecs","specversion":"1.0","type":"ecs:Instance:StateChange",
"subject":"acs:ecs:cn-hangzhou:1234567890123456:instance/%s","time":%q,
"aliyunregionid":"cn-hangzhou","aliyunpublishtime":%q,
"data":{"resourceId":"%s","resourceType":"ALIYUN::ECS::Instance","state":"Running"}}`,
		id, id, now.In(time.FixedZone("CST", 8*3600)).Format(time.RFC3339), now.UTC().Format("2006-01-02T15:04:05.000Z"), id))
}

func runInstancesEvent(eventID string, ids []string) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": eventID, "source": "acs.ecs", "specversion": "1.0", "type": "ecs:ActionTrail:ApiCall",
		"aliyunregionid": "cn-hangzhou",
		"data": map[string]any{"eventName": "RunInstances", "acsRegion": "cn-hangzhou",
			"referencedResources": map[string]any{"ACS::ECS::Instance": ids}},
	})
	return b
}

func ids(prefix string, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("i-%s%04d", prefix, i))
	}
	return out
}

// fastTiming keeps every scenario to seconds.
func fastTiming() *Timing {
	t := DefaultTiming()
	t.FirstPoll = 2 * time.Second
	t.Interval = time.Second
	t.ReadinessTimeout = 15 * time.Second
	t.TaskTimeout = 8 * time.Second
	t.Margin = time.Second
	return &t
}

// run starts a local cloud, lets setup publish, waits and returns the report
// after the common checks: the system settles, nothing is lost, and no two
// records of an instance disagree unless one supersedes the other.
func run(t *testing.T, opts Options, within time.Duration, setup func(c *Cloud)) Report {
	t.Helper()
	opts.Binaries = binaries
	if opts.Timing == nil {
		opts.Timing = fastTiming()
	}
	if opts.Behavior.InstallDuration == 0 {
		opts.Behavior.InstallDuration = time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	c, err := Start(ctx, opts)
	require.NoError(t, err)
	defer c.Close()
	setup(c)
	settled := c.Wait(ctx)
	r := c.Report()
	assert.True(t, settled, "the system settles: every instance has an outcome and the queue is empty")
	assert.Zero(t, r.Lost, "no instance lost")
	assert.Zero(t, r.DuplicatedOutcomes, "no conflicting outcomes")
	if t.Failed() {
		t.Logf("report: %+v", r)
	}
	return r
}

func publish(t *testing.T, c *Cloud, events ...[]byte) {
	t.Helper()
	require.NoError(t, c.Publish(context.Background(), events...))
}

// assertAll checks that n instances ended with want, and that every record
// says want, unless a later record names it as the one it corrects.
func assertAll(t *testing.T, r Report, want string, n int) {
	t.Helper()
	assert.Equal(t, n, r.ByOutcome[want], "by outcome: %v", r.ByOutcome)
	assert.Len(t, r.Outcomes, n)
	for i, rec := range r.Records {
		if rec.Outcome != want && !r.Superseded(i) {
			assert.Failf(t, "a record disagrees", "%s: %s %s (job %s), want %s", rec.Instance, rec.Outcome, rec.Code, rec.JobID, want)
		}
	}
}

func TestE2EHappyPath(t *testing.T) {
	t.Parallel()
	r := run(t, Options{}, 60*time.Second, func(c *Cloud) {
		publish(t, c, runningEvent("i-happy0001"))
	})
	assertAll(t, r, "INSTALLED", 1)
	assert.Equal(t, 1, r.Calls["hbr.InstallBackupClients"])
	assert.GreaterOrEqual(t, r.Calls["hbr.DescribeTask"], 1)
	assert.Equal(t, 1, r.Outcomes["i-happy0001"].Attempts)
	assert.Empty(t, r.Errors)
}

func TestE2ESampleEvents(t *testing.T) {
	t.Parallel()
	root, err := ModuleRoot(".")
	require.NoError(t, err)
	var payloads [][]byte
	for _, f := range []string{"instance-running.json", "instance-running-nested.json", "cloudassistant-first-heartbeat.json", "runinstances-burst.json", "instance-stopped.json"} {
		b, err := os.ReadFile(filepath.Join(root, "events", f))
		require.NoError(t, err)
		payloads = append(payloads, b)
	}
	r := run(t, Options{}, 90*time.Second, func(c *Cloud) { publish(t, c, payloads...) })
	assertAll(t, r, "INSTALLED", 28)
}

func TestE2ENotReadyThenReady(t *testing.T) {
	t.Parallel()
	r := run(t, Options{Instances: map[string]hbrsim.Behavior{
		"i-slow0001": {ReadyAfter: 3 * time.Second, InstallDuration: time.Second},
		"i-never001": {ReadyAfter: time.Hour, InstallDuration: time.Second},
	}}, 60*time.Second, func(c *Cloud) {
		publish(t, c, runningEvent("i-slow0001"), runningEvent("i-never001"))
	})
	assert.Equal(t, "INSTALLED", r.Outcomes["i-slow0001"].Outcome)
	assert.Equal(t, "NOT_READY", r.Outcomes["i-never001"].Outcome)
	assert.Equal(t, "CloudAssistNotRunningOnInstance", r.Outcomes["i-never001"].Code)
}

func TestE2EFailOnceThenSucceed(t *testing.T) {
	t.Parallel()
	r := run(t, Options{Instances: map[string]hbrsim.Behavior{
		"i-flaky001": {FailInstalls: 1, InstallDuration: time.Second},
		"i-broken01": {FailInstalls: 5, InstallDuration: time.Second},
	}}, 60*time.Second, func(c *Cloud) {
		publish(t, c, runningEvent("i-flaky001"), runningEvent("i-broken01"))
	})
	assert.Equal(t, "INSTALLED", r.Outcomes["i-flaky001"].Outcome)
	assert.Equal(t, 2, r.Outcomes["i-flaky001"].Attempts)
	assert.Equal(t, "FAILED", r.Outcomes["i-broken01"].Outcome)
	assert.Equal(t, 2, r.Outcomes["i-broken01"].Attempts, "bounded by MAX_INSTALL_ATTEMPTS")
}

func TestE2ETaskExpiresOrIsCancelled(t *testing.T) {
	t.Parallel()
	// One cloud per task ending: instances announced together share one
	// install task, and a task ends one way for all of them.
	for _, tt := range []struct{ id, end, want string }{
		{"i-expire01", "expired", "TIMEOUT"},
		{"i-cancel01", "cancelled", "CANCELLED"},
	} {
		r := run(t, Options{Instances: map[string]hbrsim.Behavior{
			tt.id:        {TaskEnd: tt.end, InstallDuration: time.Second},
			"i-gone0001": {Gone: true},
		}}, 60*time.Second, func(c *Cloud) {
			publish(t, c, runningEvent(tt.id), runningEvent("i-gone0001"))
		})
		assert.Equal(t, tt.want, r.Outcomes[tt.id].Outcome)
		assert.Equal(t, "GONE", r.Outcomes["i-gone0001"].Outcome)
	}
}

func TestE2ESlowTaskTimesOutAtDeadline(t *testing.T) {
	t.Parallel()
	timing := fastTiming()
	timing.TaskTimeout = 3 * time.Second
	timing.Margin = time.Second
	r := run(t, Options{Timing: timing, Instances: map[string]hbrsim.Behavior{
		"i-slowtask": {InstallDuration: time.Minute},
	}}, 60*time.Second, func(c *Cloud) { publish(t, c, runningEvent("i-slowtask")) })
	assert.Equal(t, "TIMEOUT", r.Outcomes["i-slowtask"].Outcome)
	assert.LessOrEqual(t, r.Calls["hbr.DescribeTask"], 4, "polls stop at the deadline")
}

func TestE2EThrottlingStorm(t *testing.T) {
	t.Parallel()
	r := run(t, Options{HBRFaults: hbrsim.Faults{ThrottleRate: 0.5}, Seed: 7}, 90*time.Second, func(c *Cloud) {
		publish(t, c, runInstancesEvent("ev-storm", ids("storm", 10)))
	})
	assertAll(t, r, "INSTALLED", 10)
	assert.Positive(t, r.Rejected["hbr.Throttling.User"], "the storm really throttled calls")
}

func TestE2EMNSSendFailures(t *testing.T) {
	t.Parallel()
	r := run(t, Options{MNSFaults: mnssim.Faults{SendFailRate: 0.3}, Seed: 3}, 90*time.Second, func(c *Cloud) {
		for _, id := range ids("mns", 5) {
			publish(t, c, runningEvent(id))
		}
	})
	assertAll(t, r, "INSTALLED", 5)
	assert.Positive(t, r.Faults["mns_send_failures"], "sends really failed")
}

func TestE2EDuplicateDeliveries(t *testing.T) {
	t.Parallel()
	r := run(t, Options{DuplicateRate: 0.5, Seed: 11}, 90*time.Second, func(c *Cloud) {
		e := runningEvent("i-dup00001")
		publish(t, c, e, e) // the same event twice, plus the bus's own duplicates
		publish(t, c, runInstancesEvent("ev-dup-burst", ids("dupb", 6)))
	})
	assertAll(t, r, "INSTALLED", 7)
	assert.Positive(t, r.Faults["bus_duplicates"]+r.Faults["stream_duplicates"], "events or messages really were delivered twice")
}

func TestE2EPollerCrashMidBatch(t *testing.T) {
	t.Parallel()
	r := run(t, Options{CrashRate: 0.3, Seed: 4}, 120*time.Second, func(c *Cloud) {
		publish(t, c, runInstancesEvent("ev-crash", ids("crash", 8)))
	})
	assertAll(t, r, "INSTALLED", 8)
	assert.Positive(t, r.Faults["poller_crashes"], "the poller really crashed")
}

func TestE2EMalformedInputDoesNotHurtGoodWork(t *testing.T) {
	t.Parallel()
	r := run(t, Options{}, 60*time.Second, func(c *Cloud) {
		publish(t, c, []byte(`{"id":"bad","source":"acs.ecs","type":"ecs:Instance:StateChange","data":{"resourceId":"i-../../x","state":"Running"}}`))
		// No rule matches it: the bus does not deliver it.
		publish(t, c, []byte(`{"hello":"world"}`))
		// Not JSON at all: EventBridge never delivers that, but `s invoke`
		// can. One clear error, no retry.
		res, err := c.Function("install").Invoke(context.Background(), []byte(`this is not json`), fcsim.InvokeOptions{})
		require.NoError(t, err)
		require.NotNil(t, res.Err)
		assert.Contains(t, res.Err.Message, "neither a JSON object nor an array")
		_, err = c.MNS.Send(QueueName, "bm90IGEgam9iIG1lc3NhZ2U=", 0, 8) // base64("not a job message")
		require.NoError(t, err)
		_, err = c.MNS.Send(QueueName, strings.Repeat("A", 1000), 0, 8)
		require.NoError(t, err)
		publish(t, c, runningEvent("i-good0001"))
	})
	assertAll(t, r, "INSTALLED", 1)
	// Issue 18: the report lists everything that reached the dead-letter
	// queue: the event the platform gave up on, and the two messages the
	// poller sent there itself, each with its reason and source.
	assert.Equal(t, 3, r.DeadLettered)
	sources := map[string]int{}
	for _, d := range r.DeadLetters {
		sources[d.Source]++
		assert.NotEmpty(t, d.Reason)
	}
	assert.Equal(t, map[string]int{"bus": 1, "hbr-autoinstall-poller": 2}, sources)
	assert.Len(t, r.Unmatched, 1, "the event no rule matches is counted, not delivered")
	assert.LessOrEqual(t, r.Pushes["install"], 1+2*4, "no endless retry loop")
	joined := strings.Join(r.Errors, "\n")
	assert.Contains(t, joined, "invalid instance id")
	assert.Contains(t, joined, "malformed message", "the poller dead-letters it with the reason")
}

func TestE2EBurstOf100(t *testing.T) {
	t.Parallel()
	var events [][]byte
	for _, id := range ids("solo", 20) {
		events = append(events, runningEvent(id))
	}
	events = append(events, runInstancesEvent("ev-burst-1", ids("burst", 80)))
	mix := Mix{NotReady: 0.3, ReadyAfter: 3 * time.Second}
	all := append(ids("solo", 20), ids("burst", 80)...)
	r := run(t, Options{Instances: mix.Behaviors(all, 9)}, 120*time.Second, func(c *Cloud) {
		publish(t, c, events...)
	})
	assertAll(t, r, "INSTALLED", 100)
	assert.Less(t, r.Calls["hbr.InstallBackupClients"], 60, "installs are coalesced into ≤ 20-id calls")
}

func TestE2ECoalescedInstalls(t *testing.T) {
	t.Parallel()
	r := run(t, Options{Env: map[string]string{"INSTALL_COALESCE_DELAY": "2s"}}, 60*time.Second, func(c *Cloud) {
		for _, id := range ids("coal", 12) {
			publish(t, c, runningEvent(id))
		}
	})
	assertAll(t, r, "INSTALLED", 12)
	assert.LessOrEqual(t, r.Calls["hbr.InstallBackupClients"], 3, "twelve events share a few install calls")
}

func TestE2EExistingClientsAreNotInstalledAgain(t *testing.T) {
	t.Parallel()
	r := run(t, Options{}, 60*time.Second, func(c *Cloud) {
		c.HBR.SetClient("i-old00001", "ACTIVATED", time.Now().Add(-48*time.Hour))
		publish(t, c, runningEvent("i-old00001"), runningEvent("i-new00001"))
	})
	assert.Equal(t, "ALREADY_INSTALLED", r.Outcomes["i-old00001"].Outcome)
	assert.Equal(t, "INSTALLED", r.Outcomes["i-new00001"].Outcome)
	assert.Equal(t, 1, r.Calls["hbr.InstallBackupClients"], "no install for the instance that has a client")
}

func TestE2EMissingQueueIsNotSilent(t *testing.T) {
	t.Parallel()
	r := run(t, Options{Env: map[string]string{"QUEUE_NAME": "no-such-queue"}}, 60*time.Second, func(c *Cloud) {
		publish(t, c, runningEvent("i-noqueue1"))
	})
	assert.Equal(t, "FAILED", r.Outcomes["i-noqueue1"].Outcome)
	assert.Equal(t, "QueueNotExist", r.Outcomes["i-noqueue1"].Code)
	// The invocation fails (the platform retries it); the redelivery finds
	// the instance's record in the ledger and has nothing left to do.
	assert.Contains(t, strings.Join(r.Errors, "\n"), "QueueNotExist", "the failing invocation says why")
	assert.Zero(t, r.DuplicatedOutcomes)
}
