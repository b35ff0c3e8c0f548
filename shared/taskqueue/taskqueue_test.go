package taskqueue_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/taskqueue"
)

const (
	testAK     = "LTAI-test-key"
	testSecret = "test-secret"
	testQueue  = "hbr-jobs"
)

var testCred = cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: testSecret}

// startSim starts an authenticating emulator with the test queue.
func startSim(t *testing.T) (*mnssim.Server, string) {
	t.Helper()
	s := mnssim.New(mnssim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret})
	base, err := s.Start()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	s.CreateQueue(testQueue)
	return s, base
}

func newSender(t *testing.T, cfg taskqueue.Config, cred cloudauth.Credentials) *taskqueue.Sender {
	t.Helper()
	if cfg.Queue == "" {
		cfg.Queue = testQueue
	}
	s, err := taskqueue.New(cfg, cred)
	require.NoError(t, err)
	return s
}

// assertFault checks an error's classification: the Op of its outermost
// *fault.Error, its kind and its code.
func assertFault(t *testing.T, err error, op string, kind fault.Kind, code string) {
	t.Helper()
	var fe *fault.Error
	require.ErrorAs(t, err, &fe)
	got := fault.Error{Op: fe.Op, Kind: fault.KindOf(err), Code: fault.CodeOf(err)}
	assert.Equal(t, fault.Error{Op: op, Kind: kind, Code: code}, got, "%v", err)
}

func TestSendStoresBase64BodyDelayAndPriority(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		priority     int
		delay        time.Duration
		wantPriority int
		wantDelay    int
	}{
		{"defaults", 0, 0, 8, 0},
		{"delay rounds up", 3, 1500 * time.Millisecond, 3, 2},
		{"whole seconds stay", 16, 30 * time.Second, 16, 30},
		{"negative delay is 0", 1, -time.Second, 1, 0},
		{"delay capped at 7 days", 8, 8 * 24 * time.Hour, 8, 604800},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, base := startSim(t)
			s := newSender(t, taskqueue.Config{Endpoint: base, Priority: tt.priority}, testCred)
			body := []byte(`{"taskId":"t-1","attempt":1}` + "\n\x00binary")

			id, err := s.Send(context.Background(), taskqueue.Message{Body: body, Delay: tt.delay})
			require.NoError(t, err)

			stored := sim.Messages(testQueue)
			require.Len(t, stored, 1)
			assert.Equal(t, id, stored[0].ID)
			assert.Equal(t, base64.StdEncoding.EncodeToString(body), stored[0].Body)
			assert.Equal(t, tt.wantPriority, stored[0].Priority)
			assert.Equal(t, tt.wantDelay, stored[0].DelaySeconds)
		})
	}
}

func TestSendBatchSplitsAndKeepsOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		count, size  int
		wantRequests int
	}{
		{"by count", 20, 10, 2},
		{"by bytes", 5, 30000, 5}, // 40000 encoded bytes each: one per request
		{"exactly full", 16, 3072, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, base := startSim(t)
			s := newSender(t, taskqueue.Config{Endpoint: base, Priority: 4}, testCred)
			msgs := make([]taskqueue.Message, tt.count)
			for i := range msgs {
				body := []byte(fmt.Sprintf("%04d", i))
				body = append(body, bytes.Repeat([]byte("x"), tt.size-len(body))...)
				msgs[i] = taskqueue.Message{Body: body, Delay: time.Duration(i) * time.Second}
			}

			ids, err := s.SendBatch(context.Background(), msgs)
			require.NoError(t, err)
			require.Len(t, ids, tt.count)
			assert.Equal(t, tt.wantRequests, sim.Calls()["mns.BatchSendMessage"])

			stored := sim.Messages(testQueue)
			require.Len(t, stored, tt.count)
			for i, m := range stored {
				assert.Equal(t, ids[i], m.ID, "order")
				assert.Equal(t, base64.StdEncoding.EncodeToString(msgs[i].Body), m.Body)
				assert.Equal(t, i, m.DelaySeconds)
				assert.Equal(t, 4, m.Priority)
			}
		})
	}
}

func TestSendBatchStopsAtAFailedRequest(t *testing.T) {
	t.Parallel()
	sim, base := startSim(t)
	// Once the first request's messages are stored, fail the next request.
	var once sync.Once
	sim.OnSend(func(mnssim.Message) { once.Do(func() { sim.SetFaults(mnssim.Faults{SendFailNext: 1}) }) })
	s := newSender(t, taskqueue.Config{Endpoint: base}, testCred)
	msgs := make([]taskqueue.Message, 20)
	for i := range msgs {
		msgs[i] = taskqueue.Message{Body: []byte{byte(i)}}
	}

	ids, err := s.SendBatch(context.Background(), msgs)
	assertFault(t, err, "mns.BatchSendMessage", fault.Retryable, "InternalError")
	var be *taskqueue.BatchError
	require.ErrorAs(t, err, &be)
	require.Len(t, be.Failed, 4)
	assert.Equal(t, 16, be.Failed[0].Index)
	require.Len(t, ids, 20)
	for i, id := range ids {
		assert.Equal(t, i < 16, id != "", "id %d", i)
	}
	assert.Equal(t, 16, sim.Sent(testQueue))
}

func TestSendBatchPartialFailure(t *testing.T) {
	t.Parallel()
	entry := func(code, id string) string {
		if code != "" {
			return "<Message><ErrorCode>" + code + "</ErrorCode><ErrorMessage>no</ErrorMessage></Message>"
		}
		return "<Message><MessageId>" + id + "</MessageId><MessageBodyMD5>00</MessageBodyMD5></Message>"
	}
	tests := []struct {
		name     string
		entries  string
		wantKind fault.Kind
		wantCode string
		wantIDs  []string
	}{
		{"throttled entry is retryable", entry("QpsLimitExceeded", "") + entry("", "ID-2"), fault.Retryable, "QpsLimitExceeded", []string{"", "ID-2"}},
		{"invalid entry is permanent", entry("", "ID-1") + entry("InvalidArgument", ""), fault.Permanent, "InvalidArgument", []string{"ID-1", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(batchReply(tt.entries))
			t.Cleanup(srv.Close)
			s := newSender(t, taskqueue.Config{Endpoint: srv.URL}, testCred)

			ids, err := s.SendBatch(context.Background(), []taskqueue.Message{{Body: []byte("a")}, {Body: []byte("b")}})
			assertFault(t, err, "mns.BatchSendMessage", tt.wantKind, tt.wantCode)
			assert.Equal(t, tt.wantIDs, ids)
			var be *taskqueue.BatchError
			require.ErrorAs(t, err, &be)
			require.Len(t, be.Failed, 1)
			assert.Equal(t, tt.wantCode, be.Failed[0].Code)
		})
	}
}

// TestSendErrors checks that Send reaches the emulator through shared/mnsconn
// with its own op; mnsconn's tests cover classification in full.
func TestSendErrors(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		queue    string
		faults   mnssim.Faults
		ctx      context.Context
		wantKind fault.Kind
		wantCode string
	}{
		{name: "missing queue", queue: "no-such-queue", wantKind: fault.Permanent, wantCode: "QueueNotExist"},
		{name: "500", faults: mnssim.Faults{SendFailNext: 1}, wantKind: fault.Retryable, wantCode: "InternalError"},
		{name: "context already cancelled", ctx: cancelled, wantKind: fault.Permanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, base := startSim(t)
			sim.SetFaults(tt.faults)
			s := newSender(t, taskqueue.Config{Endpoint: base, Queue: tt.queue}, testCred)
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			_, err := s.Send(ctx, taskqueue.Message{Body: []byte("x")})
			assertFault(t, err, "mns.SendMessage", tt.wantKind, tt.wantCode)
			assert.Equal(t, tt.ctx != nil, fault.IsContext(err))
			assert.Zero(t, sim.Sent(testQueue))
		})
	}
}

// batchReply is a BatchSendMessage reply that rejects some entries: the
// <Message> elements it holds.
type batchReply string

// ServeHTTP answers every request with the reply.
func (r batchReply) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Messages xmlns="http://mns.aliyuncs.com/doc/v1/">`+string(r)+`</Messages>`)
}

func TestOversizeBodyIsInvalidAndNotSent(t *testing.T) {
	t.Parallel()
	sim, base := startSim(t)
	s := newSender(t, taskqueue.Config{Endpoint: base}, testCred)
	ctx := context.Background()

	// 49152 raw bytes encode to exactly 65536.
	_, err := s.Send(ctx, taskqueue.Message{Body: bytes.Repeat([]byte("a"), 49152)})
	require.NoError(t, err)

	_, err = s.Send(ctx, taskqueue.Message{Body: bytes.Repeat([]byte("a"), 49153)})
	assertFault(t, err, "mns.SendMessage", fault.Invalid, "")
	_, err = s.Send(ctx, taskqueue.Message{})
	assertFault(t, err, "mns.SendMessage", fault.Invalid, "")
	_, err = s.SendBatch(ctx, []taskqueue.Message{{Body: []byte("ok")}, {Body: bytes.Repeat([]byte("a"), 49153)}})
	assertFault(t, err, "mns.BatchSendMessage", fault.Invalid, "")

	assert.Equal(t, map[string]int{"mns.SendMessage": 1}, sim.Calls())
}

// TestConfigValidation checks the queue's own rules, and that every field
// reaches shared/mnsconn, whose tests cover the endpoint rules in full.
func TestConfigValidation(t *testing.T) {
	t.Parallel()
	ok := taskqueue.Config{Endpoint: "https://1234567890.mns.cn-hangzhou.aliyuncs.com", Queue: testQueue}
	with := func(f func(*taskqueue.Config)) taskqueue.Config {
		c := ok
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     taskqueue.Config
		cred    cloudauth.Credentials
		wantErr bool
	}{
		{"public endpoint", ok, testCred, false},
		{"loopback IP", with(func(c *taskqueue.Config) { c.Endpoint = "http://127.0.0.1:8080" }), testCred, false},
		{"STS token", ok, cloudauth.Credentials{AccessKeyID: "a", AccessKeySecret: "b", SecurityToken: "c"}, false},
		{"priority 16", with(func(c *taskqueue.Config) { c.Priority = 16 }), testCred, false},
		{"120-char queue", with(func(c *taskqueue.Config) { c.Queue = "q" + strings.Repeat("-", 119) }), testCred, false},

		{"http to a real host", with(func(c *taskqueue.Config) { c.Endpoint = "http://1234567890.mns.cn-hangzhou.aliyuncs.com" }), testCred, true},
		{"empty queue", with(func(c *taskqueue.Config) { c.Queue = "" }), testCred, true},
		{"queue starts with digit", with(func(c *taskqueue.Config) { c.Queue = "1jobs" }), testCred, true},
		{"queue with underscore", with(func(c *taskqueue.Config) { c.Queue = "hbr_jobs" }), testCred, true},
		{"queue with trailing newline", with(func(c *taskqueue.Config) { c.Queue = "jobs\n" }), testCred, true},
		{"non-ASCII queue", with(func(c *taskqueue.Config) { c.Queue = "jöbs" }), testCred, true},
		{"121-char queue", with(func(c *taskqueue.Config) { c.Queue = "q" + strings.Repeat("a", 120) }), testCred, true},
		{"priority 17", with(func(c *taskqueue.Config) { c.Priority = 17 }), testCred, true},
		{"priority -1", with(func(c *taskqueue.Config) { c.Priority = -1 }), testCred, true},
		{"negative timeout", with(func(c *taskqueue.Config) { c.Timeout = -time.Second }), testCred, true},
		{"dotted account on loopback", with(func(c *taskqueue.Config) { c.Endpoint = "http://127.0.0.1:1"; c.AccountID = "1.2" }), testCred, true},
		{"dotted region on loopback", with(func(c *taskqueue.Config) { c.Endpoint = "http://127.0.0.1:1"; c.Region = "cn.x" }), testCred, true},
		{"no access key", ok, cloudauth.Credentials{AccessKeySecret: "b"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := taskqueue.New(tt.cfg, tt.cred)
			if !tt.wantErr {
				assert.NoError(t, err)
				assert.NotNil(t, s)
				return
			}
			assert.Nil(t, s)
			assertFault(t, err, "taskqueue.New", fault.Invalid, "")
		})
	}
}

func TestConcurrentSendsThroughOneSender(t *testing.T) {
	t.Parallel()
	sim, base := startSim(t)
	s := newSender(t, taskqueue.Config{Endpoint: base}, testCred)
	const goroutines, perGoroutine = 16, 6

	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		ids = map[string]bool{}
	)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := range perGoroutine {
				body := []byte(fmt.Sprintf("%d-%d", g, i))
				var got []string
				if i%3 == 2 {
					batch, err := s.SendBatch(ctx, []taskqueue.Message{{Body: body}, {Body: append(body, '!')}})
					if !assert.NoError(t, err) {
						return
					}
					got = batch
				} else {
					id, err := s.Send(ctx, taskqueue.Message{Body: body, Delay: time.Duration(i) * time.Second})
					if !assert.NoError(t, err) {
						return
					}
					got = []string{id}
				}
				mu.Lock()
				for _, id := range got {
					assert.False(t, ids[id], "duplicate id %s", id)
					ids[id] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	want := goroutines * (perGoroutine + perGoroutine/3)
	assert.Len(t, ids, want)
	assert.Equal(t, want, sim.Sent(testQueue))
}
