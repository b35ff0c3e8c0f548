package handler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger/ledgertest"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/scope"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/taskqueue"
)

// fakeCloud is a hand-written fake of the clients; the ledger's store is
// an in-memory one.
type fakeCloud struct {
	mu       sync.Mutex
	install  func(ids []string) (hbr.InstallResult, error)
	task     func(id string) (hbr.Task, error)
	clients  []hbr.BackupClient
	sendErr  func(n int) error
	sent     []job.Message
	queues   []string // the queue of each sent message
	delays   []time.Duration
	attempts int
	ecs      *fakeECS
	topic    *fakeTopic
	store    *ledgertest.Store
}

// queueOf is the fake's sender for one queue.
type queueOf struct {
	f    *fakeCloud
	name string
}

func (q queueOf) Send(ctx context.Context, m taskqueue.Message) (string, error) {
	return q.f.send(q.name, m)
}

// fakeECS is a hand-written fake ECS client.
type fakeECS struct {
	instances map[string]ecs.Instance
	ready     map[string]bool
	tags      map[string]string
}

func (f *fakeECS) DescribeInstances(_ context.Context, ids []string) ([]ecs.Instance, error) {
	var out []ecs.Instance
	for _, id := range ids {
		if in, ok := f.instances[id]; ok {
			out = append(out, in)
		}
	}
	return out, nil
}

func (f *fakeECS) CloudAssistantReady(_ context.Context, ids []string) (map[string]bool, error) {
	return f.ready, nil
}

func (f *fakeECS) ListInstances(context.Context, string) ([]ecs.Instance, error) { return nil, nil }

func (f *fakeECS) TagInstance(_ context.Context, id, key, value string) error {
	f.tags[id] = key + "=" + value
	return nil
}

type fakeTopic struct{ bodies []string }

func (f *fakeTopic) Publish(_ context.Context, body []byte, _ string) (string, error) {
	f.bodies = append(f.bodies, string(body))
	return "m", nil
}

func (f *fakeCloud) HBR(context.Context, string) (HBR, error) { return f, nil }
func (f *fakeCloud) Queue(context.Context) (Sender, error)    { return queueOf{f, "jobs"}, nil }
func (f *fakeCloud) InstallQueue(context.Context) (Sender, error) {
	return queueOf{f, "installs"}, nil
}
func (f *fakeCloud) Store(context.Context) (ledger.Store, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.store == nil {
		f.store = ledgertest.New()
	}
	return f.store, nil
}
func (f *fakeCloud) Topic(context.Context) (Publisher, error) {
	if f.topic == nil {
		return nil, nil // an untyped nil: no topic configured
	}
	return f.topic, nil
}
func (f *fakeCloud) ECS(context.Context, string) (ECS, error) {
	if f.ecs == nil {
		return nil, fault.Invalidf("fake", "no ECS in this test")
	}
	return f.ecs, nil
}

func (f *fakeCloud) InstallBackupClients(_ context.Context, ids []string) (hbr.InstallResult, error) {
	return f.install(ids)
}

func (f *fakeCloud) DescribeBackupClients(context.Context, []string) ([]hbr.BackupClient, error) {
	return f.clients, nil
}

// CreatePolicyBindings and DescribePolicyBindings: no backup policy is
// configured in these tests, so binding is never called.
func (f *fakeCloud) CreatePolicyBindings(context.Context, string, []string) error { return nil }

func (f *fakeCloud) DescribePolicyBindings(context.Context, []string) (map[string]string, error) {
	return nil, nil
}

func (f *fakeCloud) DescribeTask(_ context.Context, id string) (hbr.Task, error) { return f.task(id) }

func (f *fakeCloud) send(queue string, m taskqueue.Message) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.sendErr != nil {
		if err := f.sendErr(f.attempts); err != nil {
			return "", err
		}
	}
	msg, err := job.Decode(m.Body)
	if err != nil {
		return "", err
	}
	f.sent = append(f.sent, msg)
	f.queues = append(f.queues, queue)
	f.delays = append(f.delays, m.Delay)
	return fmt.Sprintf("m-%d", len(f.sent)), nil
}

type recorder struct {
	accepted []outcome.Acceptance
	records  []outcome.Record
	joined   []outcome.Join
}

func (r *recorder) Joined(_ context.Context, j outcome.Join) { r.joined = append(r.joined, j) }

func (r *recorder) Accepted(_ context.Context, a outcome.Acceptance) {
	r.accepted = append(r.accepted, a)
}
func (r *recorder) Record(_ context.Context, o outcome.Record) { r.records = append(r.records, o) }

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func deps(c *fakeCloud, rec *recorder) Deps {
	return Deps{
		Region: "cn-hangzhou",
		Policy: install.Policy{FirstPollDelay: 60 * time.Second, PollInterval: 30 * time.Second, TaskTimeout: 15 * time.Minute,
			DeadlineMargin: 2 * time.Minute, ReadinessTimeout: 10 * time.Minute, ReadinessDelay: 30 * time.Second,
			ReadinessDelayStep: 10 * time.Second, RetryBaseDelay: 5 * time.Second, RetryMaxDelay: 2 * time.Minute, MaxAttempts: 2,
			Lease: 32 * time.Minute, StaleIntent: 30 * time.Second},
		Ledger: LedgerConfig{Prefix: "hbr-autoinstall/ledger/", Account: "1234567890"},
		Cloud:  c, Outcomes: rec,
		Now:   func() time.Time { return t0 },
		Sleep: func(time.Duration) {},
	}
}

func validAll(ids []string) (hbr.InstallResult, error) {
	r := hbr.InstallResult{TaskID: "t-1"}
	for _, id := range ids {
		r.Statuses = append(r.Statuses, hbr.InstanceStatus{InstanceID: id, Valid: true})
	}
	return r, nil
}

func event(t *testing.T, name string) json.RawMessage {
	b, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	require.NoError(t, err)
	return b
}

func TestInstallHandlesSampleEvents(t *testing.T) {
	tests := []struct {
		file      string
		accepted  int
		wantKinds []job.Kind
	}{
		{"instance-running.json", 1, []job.Kind{job.KindPoll}},
		{"instance-running-nested.json", 1, []job.Kind{job.KindPoll}},
		{"cloudassistant-first-heartbeat.json", 1, []job.Kind{job.KindPoll}},
		{"batch-array.json", 2, []job.Kind{job.KindPoll}},
		{"runinstances-burst.json", 25, []job.Kind{job.KindInstallRetry, job.KindInstallRetry}},
		{"instance-stopped.json", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			installs := 0
			c := &fakeCloud{install: func(ids []string) (hbr.InstallResult, error) { installs++; return validAll(ids) }}
			rec := &recorder{}
			sum, err := NewInstall(deps(c, rec)).Handle(context.Background(), event(t, tt.file))
			require.NoError(t, err)
			assert.Equal(t, tt.accepted, sum.Accepted)
			assert.Len(t, rec.accepted, tt.accepted)
			var kinds []job.Kind
			for i, m := range c.sent {
				kinds = append(kinds, m.Kind)
				want := "jobs"
				if m.Kind == job.KindInstallRetry {
					want = "installs"
				}
				assert.Equal(t, want, c.queues[i])
			}
			assert.Equal(t, tt.wantKinds, kinds)
			assert.Empty(t, rec.records)
			// The card's shape: the install function itself installs what
			// an event says is ready, and hands the task to the poller.
			assert.Equal(t, tt.wantKinds != nil && tt.wantKinds[0] == job.KindPoll, installs == 1, "InstallBackupClients called")
		})
	}
}

func TestInstallRejectsMalformedPayload(t *testing.T) {
	for name, payload := range map[string]string{
		"not json":   `]]`,
		"hostile id": string(event(t, "invalid-instance-id.json")),
	} {
		t.Run(name, func(t *testing.T) {
			c := &fakeCloud{install: validAll}
			_, err := NewInstall(deps(c, &recorder{})).Handle(context.Background(), json.RawMessage(payload))
			require.Error(t, err)
			assert.True(t, fault.Is(err, fault.Invalid))
			assert.Empty(t, c.sent)
		})
	}
}

func TestInstallRetriesSendsThenFailsRetryably(t *testing.T) {
	unavailable := fault.Wrap("mns.SendMessage", fault.Retryable, "InternalError", fmt.Errorf("500"))
	t.Run("recovers within the invocation", func(t *testing.T) {
		c := &fakeCloud{install: validAll, sendErr: func(n int) error {
			if n < 3 {
				return unavailable
			}
			return nil
		}}
		_, err := NewInstall(deps(c, &recorder{})).Handle(context.Background(), event(t, "instance-running.json"))
		require.NoError(t, err)
		assert.Len(t, c.sent, 1)
	})
	t.Run("gives up so the trigger redelivers", func(t *testing.T) {
		c := &fakeCloud{install: validAll, sendErr: func(int) error { return unavailable }}
		_, err := NewInstall(deps(c, &recorder{})).Handle(context.Background(), event(t, "instance-running.json"))
		require.Error(t, err)
		assert.True(t, fault.Is(err, fault.Retryable))
		assert.Equal(t, 2*sendAttempts, c.attempts, "the tries as the task is created, then deliver's")
	})
	t.Run("permanent send error ends the instances, not silently", func(t *testing.T) {
		c := &fakeCloud{install: validAll, sendErr: func(int) error {
			return fault.Wrap("mns.SendMessage", fault.Permanent, "QueueNotExist", fmt.Errorf("no queue"))
		}}
		rec := &recorder{}
		_, err := NewInstall(deps(c, rec)).Handle(context.Background(), event(t, "instance-running.json"))
		require.Error(t, err, "the trigger still sees the failure (and dead-letters the event)")
		assert.Equal(t, 2, c.attempts, "a permanent error is not retried in process (one try as the task is created, one by deliver)")
		require.Len(t, rec.records, 1)
		assert.Equal(t, outcome.Failed, rec.records[0].Outcome)
		assert.Equal(t, "QueueNotExist", rec.records[0].Code)
	})
}

func TestInstallCoalesceDelayDefersToTheInstallQueue(t *testing.T) {
	calls := 0
	c := &fakeCloud{install: func(ids []string) (hbr.InstallResult, error) { calls++; return validAll(ids) }}
	d := deps(c, &recorder{})
	d.Policy.CoalesceDelay = 3 * time.Second
	_, err := NewInstall(d).Handle(context.Background(), event(t, "batch-array.json"))
	require.NoError(t, err)
	assert.Zero(t, calls, "no install call in the event's invocation")
	require.Len(t, c.sent, 1)
	assert.Equal(t, job.KindInstallRetry, c.sent[0].Kind)
	assert.Equal(t, "installs", c.queues[0], "coalesced work waits on the install queue")
	assert.Len(t, c.sent[0].Instances, 2)
	assert.Equal(t, 3*time.Second, c.delays[0])
}

func TestCoverageSettings(t *testing.T) {
	running := func(id string, tags map[string]string) ecs.Instance {
		return ecs.Instance{ID: id, Status: "Running", Tags: tags}
	}
	newCloud := func() *fakeCloud {
		return &fakeCloud{install: validAll,
			ecs: &fakeECS{tags: map[string]string{}, ready: map[string]bool{"i-bp1demo0000000000001": true, "i-bp1demo0000000000003": true},
				instances: map[string]ecs.Instance{
					"i-bp1demo0000000000001": running("i-bp1demo0000000000001", map[string]string{"env": "prod"}),
					"i-bp1demo0000000000003": running("i-bp1demo0000000000003", map[string]string{"backup": "off"}),
				}},
			topic: &fakeTopic{}}
	}
	rules, err := scope.Parse("", "backup=off", "", "")
	require.NoError(t, err)

	t.Run("scope, tags and notifications", func(t *testing.T) {
		c := newCloud()
		rec := &recorder{}
		d := deps(c, rec)
		d.Scope, d.TagKey = rules, "hbr-autoinstall"
		_, err := NewInstall(d).Handle(context.Background(), event(t, "batch-array.json"))
		require.NoError(t, err)
		require.Len(t, rec.records, 1)
		assert.Equal(t, outcome.Skipped, rec.records[0].Outcome)
		assert.Equal(t, "excluded by exclude tag backup=off", rec.records[0].Reason)
		assert.Equal(t, "hbr-autoinstall=skipped:exclude tag backup=off", c.ecs.tags["i-bp1demo0000000000003"])
		assert.Empty(t, c.topic.bodies, "SKIPPED is not a problem")
		require.Len(t, c.sent, 1)
		assert.Equal(t, []string{"i-bp1demo0000000000001"}, c.sent[0].IDs())
	})
	t.Run("audit mode installs and tags nothing", func(t *testing.T) {
		c := newCloud()
		calls := 0
		c.install = func(ids []string) (hbr.InstallResult, error) { calls++; return validAll(ids) }
		rec := &recorder{}
		d := deps(c, rec)
		d.Audit, d.TagKey, d.NotifyAll = true, "hbr-autoinstall", true
		_, err := NewInstall(d).Handle(context.Background(), event(t, "batch-array.json"))
		require.NoError(t, err)
		assert.Zero(t, calls)
		require.Len(t, rec.records, 2)
		for _, r := range rec.records {
			assert.Equal(t, outcome.WouldInstall, r.Outcome)
		}
		assert.Empty(t, c.ecs.tags)
		assert.Len(t, c.topic.bodies, 2, "NOTIFY=all publishes every outcome")
	})
}

// streamOf is an install- or job-queue batch as the event stream delivers
// it: one CloudEvent per message, each with its MNS message id.
func streamOf(t *testing.T, msgs map[string]job.Message) []byte {
	t.Helper()
	var events []map[string]any
	for id, m := range msgs {
		body, err := job.Encode(m)
		require.NoError(t, err)
		events = append(events, map[string]any{"id": "ev-" + id, "source": "MNS-installs", "type": "mns:Queue:SendMessage",
			"data": map[string]any{"messageId": id, "messageBody": string(body)}})
	}
	b, err := json.Marshal(events)
	require.NoError(t, err)
	return b
}

func owned(id string) job.Instance {
	return job.Instance{ID: id, JobID: job.JobID("acs.ecs", "ev", id), FirstSeen: t0, ReadyBy: t0.Add(10 * time.Minute),
		Generation: 1, LeaseUntil: t0.Add(30 * time.Minute), NotReady: 1, LastCode: install.CodeCloudAssistDown}
}

// The install function takes its install queue too: install work is
// installed there, in shared calls; anything else goes on to the job queue.
func TestInstallQueueBatch(t *testing.T) {
	var calls [][]string
	c := &fakeCloud{install: func(ids []string) (hbr.InstallResult, error) { calls = append(calls, ids); return validAll(ids) }}
	retry := func(ids ...string) job.Message {
		m := job.Message{Version: job.Version, Kind: job.KindInstallRetry, Region: "cn-hangzhou", Deadline: t0.Add(10 * time.Minute), SentAt: t0}
		for _, id := range ids {
			m.Instances = append(m.Instances, owned(id))
		}
		return m
	}
	stray := retry("i-stray00000000001")
	stray.Kind, stray.TaskID = job.KindPoll, "t-stray"
	payload := streamOf(t, map[string]job.Message{"m-1": retry("i-q000000000000001", "i-q000000000000002"),
		"m-2": retry("i-q000000000000003"), "m-3": stray})
	sum, err := NewInstall(deps(c, &recorder{})).Handle(context.Background(), payload)
	require.NoError(t, err)
	assert.Equal(t, 3, sum.Messages)
	require.Len(t, calls, 1, "the batch's install work shares one call")
	assert.ElementsMatch(t, []string{"i-q000000000000001", "i-q000000000000002", "i-q000000000000003"}, calls[0])
	require.Len(t, c.sent, 2)
	for i, m := range c.sent {
		assert.Equal(t, job.KindPoll, m.Kind)
		assert.Equal(t, "jobs", c.queues[i], "poll messages go to the poller's queue")
	}
}

// The poller never installs: install work that reaches it goes on to the
// install queue untouched.
func TestPollerForwardsInstallWork(t *testing.T) {
	installs := 0
	c := &fakeCloud{install: func(ids []string) (hbr.InstallResult, error) { installs++; return validAll(ids) }}
	m := job.Message{Version: job.Version, Kind: job.KindInstallRetry, Region: "cn-hangzhou", Deadline: t0.Add(10 * time.Minute),
		SentAt: t0, Instances: []job.Instance{owned("i-fwd00000000000001")}}
	sum, err := NewPoller(deps(c, &recorder{})).Handle(context.Background(), streamOf(t, map[string]job.Message{"m-1": m}))
	require.NoError(t, err)
	assert.Zero(t, installs)
	assert.Equal(t, 1, sum.Forwarded)
	require.Len(t, c.sent, 1)
	assert.Equal(t, "installs", c.queues[0])
	assert.Equal(t, m.Instances[0].ID, c.sent[0].Instances[0].ID)
}

// One final record per generation, whatever is delivered twice: two
// messages that reach the same instance's end record once; the redelivery
// of the message whose handling wrote the record (its process may have
// died before the log line) logs it again, identical.
func TestOneRecordPerGenerationWhateverIsDeliveredTwice(t *testing.T) {
	c := &fakeCloud{task: func(id string) (hbr.Task, error) {
		return hbr.Task{TaskID: id, Description: "completed", Results: []hbr.ClientResult{
			{InstanceID: "i-twice000000000001", ClientID: "c-1", ClientStatus: "ACTIVATED"}}}, nil
	}}
	poll := job.Message{Version: job.Version, Kind: job.KindPoll, Region: "cn-hangzhou", TaskID: "t-1", TaskStartedAt: t0,
		Deadline: t0.Add(17 * time.Minute), SentAt: t0, Instances: []job.Instance{owned("i-twice000000000001")}}
	poll.Instances[0].Attempts = 1
	rec := &recorder{}
	var logs strings.Builder
	d := deps(c, rec)
	d.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	p := NewPoller(d)
	for _, id := range []string{"m-first", "m-copy", "m-first"} {
		_, err := p.Handle(context.Background(), streamOf(t, map[string]job.Message{id: poll}))
		require.NoError(t, err)
	}
	require.Len(t, rec.records, 2, "the first delivery and its own redelivery")
	assert.Equal(t, rec.records[0].Outcome, rec.records[1].Outcome)
	assert.Equal(t, rec.records[0].Reason, rec.records[1].Reason)
	assert.Contains(t, logs.String(), `"msg":"recorded already"`, "the copy's verdict is noted, not recorded")
	keys := c.store.Keys()
	finals := 0
	for _, k := range keys {
		if strings.HasSuffix(k, "/final") {
			finals++
		}
	}
	assert.Equal(t, 1, finals)
}

// An unreadable ledger entry is an error naming its key, and the instance
// goes to the dead-letter queue with that reason: never an endless retry.
func TestUnreadableLedgerEntryIsDeadLettered(t *testing.T) {
	c := &fakeCloud{task: func(id string) (hbr.Task, error) {
		return hbr.Task{TaskID: id, Description: "completed", Results: []hbr.ClientResult{
			{InstanceID: "i-broken00000000001", ClientID: "c-1", ClientStatus: "ACTIVATED"}}}, nil
	}}
	dead := &deadQueue{}
	d := deps(c, &recorder{})
	d.Cloud = dlqCloud{c, dead}
	_, err := c.Store(context.Background())
	require.NoError(t, err)
	key := "hbr-autoinstall/ledger/1234567890/cn-hangzhou/i-broken00000000001/g000001/final"
	c.store.Put(key, []byte("\x00 not json"))
	poll := job.Message{Version: job.Version, Kind: job.KindPoll, Region: "cn-hangzhou", TaskID: "t-1", TaskStartedAt: t0,
		Deadline: t0.Add(17 * time.Minute), SentAt: t0, Instances: []job.Instance{owned("i-broken00000000001")}}
	poll.Instances[0].Attempts = 1
	_, err = NewPoller(d).Handle(context.Background(), streamOf(t, map[string]job.Message{"m-1": poll}))
	require.NoError(t, err, "nothing a retry could mend fails the invocation")
	require.Len(t, dead.letters, 1)
	assert.Contains(t, dead.letters[0].Reason, key)
	assert.Equal(t, "invalid", dead.letters[0].Class)
}
