package hbrsim_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim/rpcsimtest"
)

// The key pairs of two functions, as a local cloud hands them out: one with
// an STS token, one without.
var (
	installCred = cloudauth.Credentials{AccessKeyID: "LTAI-install", AccessKeySecret: "install-secret+/=", SecurityToken: "STS.install/token="}
	pollerCred  = cloudauth.Credentials{AccessKeyID: "LTAI-poller", AccessKeySecret: "poller-secret"}
	principals  = callers.Set{{Name: "install", Credentials: installCred}, {Name: "poller", Credentials: pollerCred}}
)

// startPrincipalSim serves an emulator accepting the single test pair and
// principals, recording the principal of every call.
func startPrincipalSim(t *testing.T, latency time.Duration) (*hbrsim.Server, string, func() []string) {
	t.Helper()
	sim := hbrsim.New(hbrsim.Options{
		AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: testToken,
		Principals: principals, Latency: latency, Seed: 4,
	})
	var mu sync.Mutex
	var seen []string
	sim.OnCall(func(c hbrsim.Call) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, c.Principal)
	})
	_, base := rpcsimtest.Serve(t, sim)
	return sim, base, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func adapter(t *testing.T, base string, cred cloudauth.Credentials) *hbr.Client {
	t.Helper()
	c, err := hbr.New(hbr.Config{Region: "cn-hangzhou", Endpoint: base}, cred)
	require.NoError(t, err)
	return c
}

func TestCallsAreAttributedToTheirPrincipal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cred cloudauth.Credentials
		// wantCode is the rejection's code, "" for success.
		wantCode string
		// wantPrincipal is the Call.Principal the hook sees.
		wantPrincipal string
		// counted: the call appears under wantPrincipal in CallsBy.
		counted bool
	}{
		{name: "single pair", cred: rpcsimtest.Credentials(), wantPrincipal: "", counted: true},
		{name: "principal with token", cred: installCred, wantPrincipal: "install", counted: true},
		{name: "principal without token", cred: pollerCred, wantPrincipal: "poller", counted: true},
		{name: "unknown key", cred: cloudauth.Credentials{AccessKeyID: "LTAI-nobody", AccessKeySecret: "x"},
			wantCode: "InvalidAccessKeyId.NotFound"},
		{name: "principal's wrong token", cred: withToken(installCred, "STS.stale"),
			wantCode: "InvalidSecurityToken.MismatchWithAccessKey", wantPrincipal: "install", counted: true},
		{name: "principal's token missing", cred: withToken(installCred, ""),
			wantCode: "MissingSecurityToken", wantPrincipal: "install", counted: true},
		{name: "token sent to a principal without one", cred: withToken(pollerCred, "STS.forged"),
			wantCode: "InvalidSecurityToken.MismatchWithAccessKey", wantPrincipal: "poller", counted: true},
		{name: "another principal's secret", cred: cloudauth.Credentials{AccessKeyID: pollerCred.AccessKeyID, AccessKeySecret: installCred.AccessKeySecret},
			wantCode: "SignatureDoesNotMatch", wantPrincipal: "poller", counted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, base, seen := startPrincipalSim(t, 0)

			_, err := adapter(t, base, tt.cred).InstallBackupClients(context.Background(), []string{"i-a"})

			if tt.wantCode == "" {
				require.NoError(t, err)
				assert.Equal(t, 1, sim.Installs("i-a"))
			} else {
				assert.Equal(t, fault.Permanent, fault.KindOf(err), "%v", err)
				assert.Equal(t, tt.wantCode, fault.CodeOf(err))
				assert.Zero(t, sim.Installs("i-a"), "a rejected call has no effect")
			}
			assert.Equal(t, []string{tt.wantPrincipal}, seen())
			assert.Equal(t, map[string]int{"hbr.InstallBackupClients": 1}, sim.Calls())
			want := map[string]map[string]int{}
			if tt.counted {
				want[tt.wantPrincipal] = map[string]int{"hbr.InstallBackupClients": 1}
			}
			assert.Equal(t, want, sim.CallsBy())
		})
	}
}

func TestCallsByCountsEachPrincipal(t *testing.T) {
	t.Parallel()
	sim, base, _ := startPrincipalSim(t, 0)
	ctx := context.Background()
	install, poller := adapter(t, base, installCred), adapter(t, base, pollerCred)

	res, err := install.InstallBackupClients(ctx, []string{"i-a", "i-b"})
	require.NoError(t, err)
	for range 3 {
		_, err := poller.DescribeTask(ctx, res.TaskID)
		require.NoError(t, err)
	}
	_, err = install.DescribeTask(ctx, res.TaskID)
	require.NoError(t, err)

	assert.Equal(t, map[string]map[string]int{
		"install": {"hbr.InstallBackupClients": 1, "hbr.DescribeTask": 1},
		"poller":  {"hbr.DescribeTask": 3},
	}, sim.CallsBy())
	assert.Equal(t, map[string]int{"hbr.InstallBackupClients": 1, "hbr.DescribeTask": 4}, sim.Calls())
}

func TestLatencyIsARoundTrip(t *testing.T) {
	t.Parallel()
	const latency = 60 * time.Millisecond
	tests := []struct {
		name string
		// set, when not negative, is passed to SetLatency before the call.
		set  time.Duration
		want time.Duration
	}{
		{name: "from the options", set: -1, want: latency},
		{name: "raised", set: 2 * latency, want: 2 * latency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, base, _ := startPrincipalSim(t, latency)
			if tt.set >= 0 {
				sim.SetLatency(tt.set)
			}
			c := adapter(t, base, installCred)

			start := time.Now()
			_, err := c.InstallBackupClients(context.Background(), []string{"i-a"})
			took := time.Since(start)

			require.NoError(t, err)
			assert.GreaterOrEqual(t, took, tt.want)
		})
	}
}

func TestLatencyAppliesToRejectedCalls(t *testing.T) {
	t.Parallel()
	const latency = 50 * time.Millisecond
	_, base, _ := startPrincipalSim(t, latency)
	c := adapter(t, base, cloudauth.Credentials{AccessKeyID: "LTAI-nobody", AccessKeySecret: "x"})

	start := time.Now()
	_, err := c.DescribeTask(context.Background(), "t-abc")
	took := time.Since(start)

	assert.Equal(t, "InvalidAccessKeyId.NotFound", fault.CodeOf(err))
	assert.GreaterOrEqual(t, took, latency)
}

func withToken(c cloudauth.Credentials, token string) cloudauth.Credentials {
	c.SecurityToken = token
	return c
}
