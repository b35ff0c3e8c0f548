package ecssim_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ecssim"
)

func TestPrincipalsLatencyAndAttributionThroughTheAdapter(t *testing.T) {
	t.Parallel()
	const latency = 40 * time.Millisecond
	install := cloudauth.Credentials{AccessKeyID: "LTAI-install", AccessKeySecret: "install-secret", SecurityToken: "STS.install"}
	reconcile := cloudauth.Credentials{AccessKeyID: "LTAI-reconcile", AccessKeySecret: "reconcile-secret"}
	sim := ecssim.New(ecssim.Options{
		AccessKeyID: testAK, AccessKeySecret: testSecret, Latency: latency,
		Principals: callers.Set{{Name: "install", Credentials: install}, {Name: "reconcile", Credentials: reconcile}},
	})
	base, err := sim.Start()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, sim.Close()) })
	sim.SetInstance(ecssim.Instance{ID: "i-a"})
	var mu sync.Mutex
	principals := map[string]int{}
	sim.OnCall(func(c ecssim.Call) {
		mu.Lock()
		defer mu.Unlock()
		principals[c.Principal]++
	})

	tests := []struct {
		name     string
		cred     cloudauth.Credentials
		wantCode string // "" for success
	}{
		{name: "install", cred: install},
		{name: "reconcile", cred: reconcile},
		{name: "single pair", cred: cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: testSecret}},
		{name: "unknown key", cred: cloudauth.Credentials{AccessKeyID: "LTAI-nobody", AccessKeySecret: "x"}, wantCode: "InvalidAccessKeyId.NotFound"},
		{name: "install's wrong token", cred: cloudauth.Credentials{AccessKeyID: install.AccessKeyID, AccessKeySecret: install.AccessKeySecret, SecurityToken: "STS.old"},
			wantCode: "InvalidSecurityToken.MismatchWithAccessKey"},
	}
	for _, tt := range tests { // in order: the counts below add them up
		t.Run(tt.name, func(t *testing.T) {
			c, err := ecs.New(ecs.Config{Region: ecssim.DefaultRegion, Endpoint: base}, tt.cred)
			require.NoError(t, err)
			start := time.Now()
			_, err = c.DescribeInstances(context.Background(), []string{"i-a"})
			took := time.Since(start)
			if tt.wantCode == "" {
				assert.NoError(t, err)
			} else {
				assert.Equal(t, fault.Permanent, fault.KindOf(err), "%v", err)
				assert.Equal(t, tt.wantCode, fault.CodeOf(err))
			}
			assert.GreaterOrEqual(t, took, latency, "a call takes the round trip")
		})
	}

	assert.Equal(t, map[string]map[string]int{
		"":          {"ecs.DescribeInstances": 1},
		"install":   {"ecs.DescribeInstances": 2},
		"reconcile": {"ecs.DescribeInstances": 1},
	}, sim.CallsBy(), "the unknown key is counted in Calls only")
	assert.Equal(t, map[string]int{"ecs.DescribeInstances": 5}, sim.Calls())
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, map[string]int{"": 2, "install": 2, "reconcile": 1}, principals, "hooks see the principal")
}
