package mnssim_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/taskqueue"
)

// The key pairs of two functions, as a local cloud hands them out: one with
// an STS token, one without.
var (
	installCred = cloudauth.Credentials{AccessKeyID: "LTAI-install", AccessKeySecret: "install-secret+/=", SecurityToken: "STS.install/token="}
	pollerCred  = cloudauth.Credentials{AccessKeyID: "LTAI-poller", AccessKeySecret: "poller-secret"}
	principals  = callers.Set{{Name: "install", Credentials: installCred}, {Name: "poller", Credentials: pollerCred}}
)

// startPrincipalSim serves an emulator with queue "jobs" accepting the test
// pair and principals, and returns its base URL and the principals its
// OnSend hook saw.
func startPrincipalSim(t *testing.T, latency time.Duration) (*mnssim.Server, string, func() []string) {
	t.Helper()
	s := mnssim.New(mnssim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret, Principals: principals, Latency: latency})
	base, err := s.Start()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	s.CreateQueue("jobs")
	var mu sync.Mutex
	var seen []string
	s.OnSend(func(m mnssim.Message) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, m.Principal)
	})
	return s, base, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func sender(t *testing.T, base string, cred cloudauth.Credentials) *taskqueue.Sender {
	t.Helper()
	s, err := taskqueue.New(taskqueue.Config{Endpoint: base, Queue: "jobs"}, cred)
	require.NoError(t, err)
	return s
}

func TestSendsAreAttributedToTheirPrincipal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cred cloudauth.Credentials
		// wantCode is the rejection's code, "" for success.
		wantCode string
		// wantPrincipal is the principal the call is counted under; counted
		// says whether it is counted in CallsBy at all.
		wantPrincipal string
		counted       bool
	}{
		{name: "single pair", cred: cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: testSecret}, counted: true},
		{name: "principal with token", cred: installCred, wantPrincipal: "install", counted: true},
		{name: "principal without token", cred: pollerCred, wantPrincipal: "poller", counted: true},
		{name: "unknown key", cred: cloudauth.Credentials{AccessKeyID: "LTAI-nobody", AccessKeySecret: "x"}, wantCode: "InvalidAccessKeyId"},
		{name: "principal's wrong token", cred: cloudauth.Credentials{AccessKeyID: installCred.AccessKeyID, AccessKeySecret: installCred.AccessKeySecret, SecurityToken: "STS.stale"},
			wantCode: "AccessDenied", wantPrincipal: "install", counted: true},
		{name: "principal's token missing", cred: cloudauth.Credentials{AccessKeyID: installCred.AccessKeyID, AccessKeySecret: installCred.AccessKeySecret},
			wantCode: "AccessDenied", wantPrincipal: "install", counted: true},
		{name: "another principal's secret", cred: cloudauth.Credentials{AccessKeyID: pollerCred.AccessKeyID, AccessKeySecret: installCred.AccessKeySecret},
			wantCode: "SignatureDoesNotMatch", wantPrincipal: "poller", counted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, base, seen := startPrincipalSim(t, 0)

			_, err := sender(t, base, tt.cred).Send(context.Background(), taskqueue.Message{Body: []byte(`{"taskId":"t-1"}`)})

			if tt.wantCode == "" {
				require.NoError(t, err)
				assert.Equal(t, []string{tt.wantPrincipal}, seen(), "OnSend sees the sender")
				msgs := sim.Messages("jobs")
				require.Len(t, msgs, 1)
				assert.Equal(t, tt.wantPrincipal, msgs[0].Principal)
			} else {
				assert.Equal(t, fault.Permanent, fault.KindOf(err), "%v", err)
				assert.Equal(t, tt.wantCode, fault.CodeOf(err))
				assert.Empty(t, seen(), "a rejected send stores nothing")
				assert.Zero(t, sim.Sent("jobs"))
			}
			assert.Equal(t, map[string]int{"mns.SendMessage": 1}, sim.Calls())
			want := map[string]map[string]int{}
			if tt.counted {
				want[tt.wantPrincipal] = map[string]int{"mns.SendMessage": 1}
			}
			assert.Equal(t, want, sim.CallsBy())
		})
	}
}

func TestCallsByCountsEachSender(t *testing.T) {
	t.Parallel()
	sim, base, _ := startPrincipalSim(t, 0)
	ctx := context.Background()
	install, poller := sender(t, base, installCred), sender(t, base, pollerCred)
	_, err := install.Send(ctx, taskqueue.Message{Body: []byte("a")})
	require.NoError(t, err)
	for range 2 {
		_, err := poller.Send(ctx, taskqueue.Message{Body: []byte("b"), Delay: time.Minute})
		require.NoError(t, err)
	}
	_, err = poller.SendBatch(ctx, []taskqueue.Message{{Body: []byte("c")}, {Body: []byte("d")}})
	require.NoError(t, err)

	assert.Equal(t, map[string]map[string]int{
		"install": {"mns.SendMessage": 1},
		"poller":  {"mns.SendMessage": 2, "mns.BatchSendMessage": 1},
	}, sim.CallsBy())
}

func TestUnauthenticatedServerCountsEveryCallUnderTheSinglePair(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, mnssim.Options{})
	sim.CreateQueue("jobs")
	c := sender(t, "http://"+addr, installCred)
	_, err := c.Send(context.Background(), taskqueue.Message{Body: []byte("a")})
	require.NoError(t, err)
	assert.Equal(t, map[string]map[string]int{"": {"mns.SendMessage": 1}}, sim.CallsBy())
}

func TestSendLatencyIsARoundTrip(t *testing.T) {
	t.Parallel()
	const latency = 60 * time.Millisecond
	tests := []struct {
		name string
		set  time.Duration // passed to SetLatency when not negative
		cred cloudauth.Credentials
		want time.Duration
	}{
		{name: "from the options", set: -1, cred: installCred, want: latency},
		{name: "raised", set: 2 * latency, cred: pollerCred, want: 2 * latency},
		{name: "rejected calls too", set: -1, cred: cloudauth.Credentials{AccessKeyID: "LTAI-nobody", AccessKeySecret: "x"}, want: latency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, base, _ := startPrincipalSim(t, latency)
			if tt.set >= 0 {
				sim.SetLatency(tt.set)
			}
			c := sender(t, base, tt.cred)

			start := time.Now()
			_, _ = c.Send(context.Background(), taskqueue.Message{Body: []byte("a")})
			took := time.Since(start)

			assert.GreaterOrEqual(t, took, tt.want)
		})
	}
}

func TestLatencyHoldsTheAnswerAfterTheSend(t *testing.T) {
	t.Parallel()
	const latency = 80 * time.Millisecond
	sim, base, _ := startPrincipalSim(t, latency)
	var stored atomicTime
	sim.OnSend(func(mnssim.Message) { stored.set(time.Now()) })
	c := sender(t, base, installCred)

	start := time.Now()
	_, err := c.Send(context.Background(), taskqueue.Message{Body: []byte("a")})
	end := time.Now()

	require.NoError(t, err)
	assert.GreaterOrEqual(t, stored.get().Sub(start), latency/2, "the message is stored after half the round trip")
	assert.GreaterOrEqual(t, end.Sub(stored.get()), latency/2, "the answer takes the other half")
}

type atomicTime struct {
	mu sync.Mutex
	t  time.Time
}

func (a *atomicTime) set(t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.t = t
}

func (a *atomicTime) get() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.t
}
