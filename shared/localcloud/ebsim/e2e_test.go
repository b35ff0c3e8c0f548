package ebsim_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aliyun/fc-runtime-go-sdk/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ebsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/fcsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
)

// echoBinary is fcsim's test function, built once in TestMain.
var echoBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ebsim-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(1)
	}
	echoBinary = filepath.Join(dir, "main")
	build := exec.Command("go", "build", "-o", echoBinary, "../fcsim/testdata/echofn")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build echofn: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func startEcho(t *testing.T) *fcsim.Function {
	t.Helper()
	f, err := fcsim.Start(waitCtx(t), fcsim.Config{Name: "echo", Binary: echoBinary, Timeout: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// echoed is the part of echofn's reply these tests read.
type echoed struct {
	Payload    json.RawMessage `json:"payload"`
	RetryCount int             `json:"retryCount"`
}

func TestBusPushesToARealFunction(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		event        string
		wantAttempts []bool // failed, per attempt
		wantDead     bool
	}{
		{name: "echo", event: `{"id":"e1","source":"acs.ecs","data":{"state":"Running"}}`, wantAttempts: []bool{false}},
		{name: "fails until the second retry", event: `{"id":"e2","action":"error","until":2}`, wantAttempts: []bool{true, true, false}},
		{name: "always fails", event: `{"id":"e3","action":"error"}`, wantAttempts: []bool{true, true, true}, wantDead: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := startEcho(t)
			rec := &recorder{}
			var results []fcsim.Result
			bus := &ebsim.Bus{Target: f, Retry: fast, DLQ: rec.dlq, OnDelivery: func(d ebsim.Delivery) {
				rec.onDelivery(d)
				rec.mu.Lock()
				results = append(results, d.Result)
				rec.mu.Unlock()
			}}
			t.Cleanup(func() { _ = bus.Close() })
			require.NoError(t, bus.Publish(waitCtx(t), []byte(tt.event)))
			require.NoError(t, bus.Wait(waitCtx(t)))

			attempts := rec.attempts()
			require.Len(t, attempts, len(tt.wantAttempts))
			for i, d := range attempts {
				assert.Equal(t, tt.wantAttempts[i], d.failed, "attempt %d", i)
				assert.Equal(t, i, d.attempt)
			}
			last := results[len(results)-1]
			if tt.wantDead {
				require.NotNil(t, last.Err)
				assert.Equal(t, "errorString", last.Err.Type)
				require.Len(t, rec.deadLetters(), 1)
				assert.Equal(t, "errorString: failed on demand", rec.deadLetters()[0].lastErr)
				return
			}
			var r echoed
			require.NoError(t, json.Unmarshal(last.Body, &r))
			assert.JSONEq(t, tt.event, string(r.Payload))
			assert.Equal(t, len(tt.wantAttempts)-1, r.RetryCount, "x-fc-retry-count reached the handler")
			assert.Empty(t, rec.deadLetters())
		})
	}
}

func TestStreamFromMNSSimToARealFunction(t *testing.T) {
	t.Parallel()
	mns := mnssim.New(mnssim.Options{})
	t.Cleanup(func() { _ = mns.Close() })
	mns.CreateQueue("jobs")
	jobs := []string{`{"taskId":"t-1","attempt":1}`, `{"taskId":"t-2","attempt":1}`}
	for _, j := range jobs {
		_, err := mns.Send("jobs", base64.StdEncoding.EncodeToString([]byte(j)), 0, 8)
		require.NoError(t, err)
	}
	f := startEcho(t)
	var bodies []fcsim.Result
	rec := &recorder{}
	s := &ebsim.Stream{
		Queue: mns, QueueName: "jobs", Target: f, BatchCount: 2, BatchWindow: time.Second, Base64Decode: true,
		Retry: fast, DLQ: rec.dlq, OnError: rec.onError,
		OnDelivery: func(d ebsim.Delivery) {
			rec.mu.Lock()
			bodies = append(bodies, d.Result)
			rec.mu.Unlock()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.ErrorIs(t, <-done, context.Canceled)
	})

	require.Eventually(t, func() bool {
		visible, delayed, inflight := mns.Depth("jobs")
		return visible+delayed+inflight == 0
	}, 10*time.Second, 5*time.Millisecond)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, bodies, 1, "both messages in one push")
	require.Nil(t, bodies[0].Err)
	var r echoed
	require.NoError(t, json.Unmarshal(bodies[0].Body, &r))
	var evs []events.MnsQueueEvent
	require.NoError(t, json.Unmarshal(r.Payload, &evs))
	require.Len(t, evs, 2)
	for i, ev := range evs {
		assert.Equal(t, jobs[i], *ev.Data.MessageBody)
	}
	assert.Empty(t, rec.errs)
	assert.Empty(t, rec.dead)
}
