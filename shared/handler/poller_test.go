package handler

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/taskqueue"
)

// deadQueue records dead letters; err, when set, fails every send.
type deadQueue struct {
	mu      sync.Mutex
	letters []DeadLetter
	err     error
}

func (q *deadQueue) Send(_ context.Context, m taskqueue.Message) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return "", q.err
	}
	var dl DeadLetter
	if err := json.Unmarshal(m.Body, &dl); err != nil {
		return "", err
	}
	q.letters = append(q.letters, dl)
	return fmt.Sprintf("dl-%d", len(q.letters)), nil
}

// dlqCloud is fakeCloud with a dead-letter queue.
type dlqCloud struct {
	*fakeCloud
	dead *deadQueue
}

func (c dlqCloud) DeadLetters(context.Context) (Sender, error) { return c.dead, nil }

func completedTask(id string) (hbr.Task, error) {
	return hbr.Task{TaskID: id, Description: "completed", Results: []hbr.ClientResult{
		{InstanceID: "i-bp1demo0000000000001", ClientID: "c-1", ClientStatus: "ACTIVATED"},
		{InstanceID: "i-bp1demo0000000000002", ClientID: "c-2", ClientStatus: "ACTIVATED"}}}, nil
}

// mixedPayload is the sample stream batch's good message with three that
// cannot be acted on.
func mixedPayload(t *testing.T) []byte {
	t.Helper()
	var arr []json.RawMessage
	require.NoError(t, json.Unmarshal(event(t, "poller-stream.json"), &arr))
	payload, err := json.Marshal([]any{
		arr[0],
		map[string]any{"id": "bad-1", "data": map[string]any{"messageId": "m-bad-1", "messageBody": "not a job"}},
		map[string]any{"id": "bad-2", "data": map[string]any{"messageId": "m-bad-2", "messageBody": `{"version":0}`}},
		42,
	})
	require.NoError(t, err)
	return payload
}

func TestPollerDeadLettersWhatItCannotActOn(t *testing.T) {
	tests := []struct {
		name        string
		payload     func(t *testing.T) []byte
		dlqErr      error
		noDLQ       bool
		wantLetters []string // a fragment of each reason, in order
		wantErr     bool
		wantOutcome bool
	}{
		{"bad messages of a good batch", mixedPayload, nil, false,
			[]string{"event 3", "neither JSON nor base64", "unsupported schema version 0"}, false, true},
		{"a payload that is no batch", func(*testing.T) []byte { return []byte(`"just a string"`) }, nil, false,
			[]string{"neither a JSON object nor an array"}, false, false},
		{"the dead-letter queue fails: the batch is redelivered, its good work done", mixedPayload,
			fault.Wrap("mns.SendMessage", fault.Retryable, "InternalError", errors.New("boom")), false, nil, true, true},
		{"no dead-letter queue at all", mixedPayload, nil, true, nil, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fc := &fakeCloud{task: completedTask}
			dead := &deadQueue{err: tc.dlqErr}
			var cloud Cloud = dlqCloud{fc, dead}
			if tc.noDLQ {
				cloud = fc
			}
			rec := &recorder{}
			d := deps(fc, rec)
			d.Cloud = cloud
			d.Now = func() time.Time { return time.Date(2026, 11, 27, 5, 6, 0, 0, time.UTC) }
			sum, err := NewPoller(d).Handle(context.Background(), tc.payload(t))
			if tc.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			require.Len(t, dead.letters, len(tc.wantLetters))
			for i, frag := range tc.wantLetters {
				dl := dead.letters[i]
				assert.Contains(t, dl.Reason, frag)
				assert.Equal(t, "invalid", dl.Class)
				assert.Equal(t, DeadLetterSource, dl.Source)
				assert.NotEmpty(t, dl.Body+dl.BodyBase64, "the original is kept")
			}
			if len(tc.wantLetters) == 3 {
				assert.Equal(t, "m-bad-1", dead.letters[1].MessageID)
				assert.Equal(t, "not a job", dead.letters[1].Body)
				assert.Len(t, sum.DeadLettered, 3)
			}
			if tc.wantOutcome {
				require.Len(t, rec.records, 1, "the good message is processed whatever happens to the bad ones")
				assert.Equal(t, outcome.Installed, rec.records[0].Outcome)
				assert.Equal(t, "j-00112233445566778899", rec.records[0].JobID)
			}
		})
	}
}

func TestDeadLetterKeepsBinaryAndCutsLongBodies(t *testing.T) {
	now := time.Date(2026, 11, 27, 5, 6, 0, 0, time.UTC)
	bin := newDeadLetter(DeadLetterSource, now, []byte{0xff, 0xfe, 'x'}, errors.New("why"), "m", "e")
	assert.Empty(t, bin.Body)
	assert.Equal(t, base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe, 'x'}), bin.BodyBase64)
	long := newDeadLetter(DeadLetterSource, now, bytes.Repeat([]byte("a"), 100<<10), errors.New("why"), "", "")
	assert.True(t, long.Truncated)
	b, err := json.Marshal(long)
	require.NoError(t, err)
	assert.Less(t, base64.StdEncoding.EncodedLen(len(b)), taskqueue.MaxBodyBytes, "a dead letter always fits MNS")
}

// --- An old and a new poller sharing one queue, on the MNS emulator. ---

const (
	simAK, simSecret = "LTAItestkey0001", "test-secret-0001"
	jobsQueue        = "hbr-autoinstall-jobs"
	deadQueueName    = "hbr-autoinstall-dlq"
)

// pagedECS lists a fixed region in pages of 100 (token: the next offset).
type pagedECS struct {
	*fakeECS
	running []ecs.Instance
}

func (p pagedECS) ListInstancesPage(_ context.Context, _, token string) (ecs.Page, error) {
	from := 0
	if token != "" {
		var err error
		if from, err = strconv.Atoi(token); err != nil || from > len(p.running) {
			return ecs.Page{}, fault.Wrap("ecs.DescribeInstances", fault.Permanent, "InvalidParameter", errors.New("bad token"))
		}
	}
	to := min(from+100, len(p.running))
	page := ecs.Page{Instances: p.running[from:to]}
	if to < len(p.running) {
		page.NextToken = strconv.Itoa(to)
	}
	return page, nil
}

// simCloud sends to the MNS emulator with the real SDK adapter; HBR is the
// fake, ECS a fixed region.
type simCloud struct {
	*fakeCloud
	base string
	ecs  pagedECS
}

func (c simCloud) sender(queue string) (Sender, error) {
	return taskqueue.New(taskqueue.Config{Endpoint: c.base, Queue: queue},
		cloudauth.Credentials{AccessKeyID: simAK, AccessKeySecret: simSecret})
}
func (c simCloud) Queue(context.Context) (Sender, error)       { return c.sender(jobsQueue) }
func (c simCloud) DeadLetters(context.Context) (Sender, error) { return c.sender(deadQueueName) }
func (c simCloud) ECS(context.Context, string) (ECS, error)    { return c.ecs, nil }

type simClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *simClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// drain plays the event stream once: it takes the visible messages in
// batches of 5, hands each batch to p as CloudEvents (bodies base64-decoded,
// as IsBase64Decode does) and deletes the batch when p succeeds.
func drain(t *testing.T, sim *mnssim.Server, p *Poller) {
	t.Helper()
	for {
		msgs, err := sim.Receive(context.Background(), jobsQueue, 5, time.Minute, 0)
		require.NoError(t, err)
		if len(msgs) == 0 {
			return
		}
		var events []map[string]any
		for _, m := range msgs {
			body, err := base64.StdEncoding.DecodeString(m.Body)
			require.NoError(t, err)
			events = append(events, map[string]any{"id": "ev-" + m.ID, "type": "mns:Queue:SendMessage",
				"data": map[string]any{"messageId": m.ID, "messageBody": string(body)}})
		}
		payload, err := json.Marshal(events)
		require.NoError(t, err)
		_, err = p.Handle(context.Background(), payload)
		require.NoError(t, err)
		for _, m := range msgs {
			require.NoError(t, sim.Delete(jobsQueue, m.ReceiptHandle))
		}
	}
}

func bodyOf(t *testing.T, m job.Message) string {
	t.Helper()
	b, err := job.Encode(m)
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(b)
}

// TestOldAndNewPollersShareOneQueue is a rolling deploy: pollers of the
// previous release (reader version 2) and of this one (version 3) take
// turns on one queue. The old poller acts on the version-1 poll message
// (one queued before the ledger: the poller claims its instance first) and
// runs the version-2 sweep continuation; it leaves the version-3 poll
// message, which carries a ledger generation, for the new poller; and
// nobody can read a version-4 message: it goes round for job.MaxHops hops
// and then to the dead-letter queue with its reason. Nothing is dropped and
// nothing loops.
func TestOldAndNewPollersShareOneQueue(t *testing.T) {
	clock := &simClock{now: time.Date(2026, 11, 27, 5, 6, 0, 0, time.UTC)}
	sim := mnssim.New(mnssim.Options{AccessKeyID: simAK, AccessKeySecret: simSecret, Now: clock.Now})
	base, err := sim.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close() })
	sim.CreateQueue(jobsQueue)
	sim.CreateQueue(deadQueueName)

	var region []ecs.Instance
	for i := range 150 {
		region = append(region, ecs.Instance{ID: fmt.Sprintf("i-bp1sweep%011d", i), Status: ecs.StatusRunning})
	}
	fc := &fakeCloud{task: completedTask}
	cloud := simCloud{fakeCloud: fc, base: base, ecs: pagedECS{fakeECS: &fakeECS{}, running: region}}
	rec := &recorder{}
	var logs bytes.Buffer
	poller := func(reader int) *Poller {
		d := deps(fc, rec)
		d.Cloud = cloud
		d.Now = clock.Now
		d.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		p := NewPoller(d)
		p.ReaderVersion = reader
		p.Sweep = NewReconcile(d, 600, 0)
		return p
	}
	oldP, newP := poller(2), poller(3)

	now := clock.Now()
	poll := job.Message{Version: 1, Kind: job.KindPoll, Region: "cn-hangzhou", TaskID: "t-demo0000000000001",
		TaskStartedAt: now.Add(-time.Minute), Deadline: now.Add(16 * time.Minute), SentAt: now,
		Instances: []job.Instance{{ID: "i-bp1demo0000000000001", JobID: "j-00112233445566778899", FirstSeen: now, ReadyBy: now.Add(10 * time.Minute), Attempts: 1}}}
	owned := poll
	owned.Version = job.Version
	owned.Instances = []job.Instance{{ID: "i-bp1demo0000000000002", JobID: "j-0011223344556677889a", FirstSeen: now,
		ReadyBy: now.Add(10 * time.Minute), Attempts: 1, Generation: 1}}
	sweep := job.Message{Version: job.SweepVersion, Kind: job.KindSweep, Region: "cn-hangzhou", Deadline: now.Add(time.Hour), SentAt: now,
		Sweep: &job.Sweep{ID: "rolling", At: now, DryRun: true, Token: "100", Part: 1,
			Report: json.RawMessage(`{"listed":100,"total":100,"missing":100,"startedAt":"` + now.Format(time.RFC3339) + `"}`)}}
	future := `{"version":4,"kind":"teleport","region":"cn-hangzhou","sentAt":"` + now.Format(time.RFC3339) + `"}`
	for _, b := range []string{bodyOf(t, poll), bodyOf(t, owned), bodyOf(t, sweep), base64.StdEncoding.EncodeToString([]byte(future))} {
		_, err := sim.Send(jobsQueue, b, 0, 8)
		require.NoError(t, err)
	}

	// The old poller goes first: it polls the v1 message, runs the sweep
	// part, and puts the other two back.
	drain(t, sim, oldP)
	require.Len(t, rec.records, 1)
	assert.Equal(t, outcome.Installed, rec.records[0].Outcome)
	assert.Equal(t, 1, rec.records[0].Generation, "the v1 message's instance was claimed before its record")
	dead, err := sim.Peek(deadQueueName, 10)
	require.NoError(t, err)
	assert.Empty(t, dead, "nothing is dead-lettered for being new")
	clock.Advance(job.DeferDelay)
	waiting, err := sim.Peek(jobsQueue, 10)
	require.NoError(t, err)
	assert.Len(t, waiting, 2, "the v3 poll and the v4 message wait for a newer poller")

	// Then they take turns, as a rolling deploy's instances would.
	for round := 0; round < job.MaxHops+2; round++ {
		if round%2 == 0 {
			drain(t, sim, newP)
		} else {
			drain(t, sim, oldP)
		}
		clock.Advance(job.DeferDelay)
	}
	left, err := sim.Peek(jobsQueue, 10)
	require.NoError(t, err)
	assert.Empty(t, left, "the queue is empty: nothing loops")

	assert.Contains(t, logs.String(), `"msg":"coverage"`, "the new poller ran the sweep to its end")
	var coverage map[string]any
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"coverage"`) {
			require.NoError(t, json.Unmarshal([]byte(line), &coverage))
		}
	}
	assert.EqualValues(t, 150, coverage["total"], "the totals carried over: 100 before, 50 in this part")
	assert.Equal(t, true, coverage["complete"])
	assert.EqualValues(t, 2, coverage["parts"])

	dead, err = sim.Peek(deadQueueName, 10)
	require.NoError(t, err)
	require.Len(t, dead, 1, "only the message nobody can read is dead-lettered")
	raw, err := base64.StdEncoding.DecodeString(dead[0].Body)
	require.NoError(t, err)
	var dl DeadLetter
	require.NoError(t, json.Unmarshal(raw, &dl))
	assert.Contains(t, dl.Reason, "message version 4 needs a newer poller")
	assert.Contains(t, dl.Reason, fmt.Sprintf("put back %d times already", job.MaxHops))
	assert.Contains(t, dl.Body, `"kind":"teleport"`)
	require.Len(t, rec.records, 2, "each poll message was handled once")
	assert.Equal(t, "i-bp1demo0000000000002", rec.records[1].InstanceID)
}

// A serialised poller with a large batch never runs into its timeout: once
// less than Reserve is left, the messages not handled yet go back on the
// queue as they came, for the next invocation.
func TestPollerPutsBackWhatItHasNoTimeFor(t *testing.T) {
	var items []any
	var want []string
	for i := range 7 {
		id := fmt.Sprintf("i-budget%04d", i)
		m := job.Message{Version: job.Version, Kind: job.KindPoll, Region: "cn-hangzhou", TaskID: "t-budget" + id[len(id)-4:],
			TaskStartedAt: time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC), Deadline: time.Date(2026, 11, 27, 5, 17, 0, 0, time.UTC),
			SentAt: time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC),
			Instances: []job.Instance{{ID: id, JobID: job.JobID("acs.ecs", "ev", id), Attempts: 1, Generation: 1,
				FirstSeen: time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC), ReadyBy: time.Date(2026, 11, 27, 5, 10, 0, 0, time.UTC)}}}
		body, err := job.Encode(m)
		require.NoError(t, err)
		items = append(items, map[string]any{"id": "ev-" + id, "data": map[string]any{"messageId": "m-" + id, "messageBody": body}})
		want = append(want, m.TaskID)
	}
	payload, err := json.Marshal(items)
	require.NoError(t, err)
	fc := &fakeCloud{task: func(id string) (hbr.Task, error) {
		time.Sleep(25 * time.Millisecond) // a group's tasks are polled side by side
		return hbr.Task{TaskID: id, Description: "created"}, nil
	}}
	d := deps(fc, &recorder{})
	d.Now = func() time.Time { return time.Date(2026, 11, 27, 5, 6, 0, 0, time.UTC) }
	p := NewPoller(d)
	p.Group, p.Reserve = 3, time.Hour
	// The deadline has passed by the time the first group is done: less
	// than a quarter of the time is left.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	sum, err := p.Handle(ctx, payload)
	require.NoError(t, err)
	assert.Equal(t, 4, sum.PutBack, "the first group of 3 is handled, the other 4 go back")
	require.Len(t, fc.sent, 7)
	var polled, back []string
	for i, m := range fc.sent {
		if fc.delays[i] == time.Second {
			back = append(back, m.TaskID)
			assert.Zero(t, m.PollCount, "put back as it came")
			continue
		}
		polled = append(polled, m.TaskID)
		assert.Equal(t, 1, m.PollCount, "polled, and scheduled again: %s %v", m.TaskID, fc.delays[i])
	}
	assert.ElementsMatch(t, want[:3], polled, "follow-ups are sent side by side, in any order")
	assert.ElementsMatch(t, want[3:], back)
}
