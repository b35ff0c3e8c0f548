package fcsim_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/fcsim"
)

// slotCreds is a key pair per instance slot.
func slotCreds(i int) cloudauth.Credentials {
	return cloudauth.Credentials{AccessKeyID: fmt.Sprintf("AK-slot-%d", i), AccessKeySecret: fmt.Sprintf("secret-%d", i),
		SecurityToken: fmt.Sprintf("token-%d", i)}
}

// busy starts n invocations that wait for a gate file, on n processes,
// and returns a function that opens the gate and collects their results.
func busy(t *testing.T, f *fcsim.Function, n int, opts func(i int) fcsim.InvokeOptions) func() []fcsim.Result {
	t.Helper()
	gate := filepath.Join(t.TempDir(), "gate")
	payload := fmt.Sprintf(`{"action":"waitfile","file":%q}`, gate)
	results := make([]fcsim.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = f.Invoke(context.Background(), []byte(payload), opts(i))
		})
	}
	require.Eventually(t, func() bool { return f.Invocations() == n }, 20*time.Second, 5*time.Millisecond)
	return func() []fcsim.Result {
		require.NoError(t, os.WriteFile(gate, nil, 0o600))
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		return results
	}
}

func TestInstanceCredentialsAreEachSlots(t *testing.T) {
	t.Parallel()
	f := start(t, fcsim.Config{Timeout: 20 * time.Second, MaxInstances: 3, InstanceCredentials: slotCreds,
		Credentials: cloudauth.Credentials{AccessKeyID: "AK-function", AccessKeySecret: "function-secret", SecurityToken: "function-token"}})
	results := busy(t, f, 3, func(int) fcsim.InvokeOptions { return fcsim.InvokeOptions{} })()
	for _, res := range results {
		r := decodeEcho(t, res)
		want := slotCreds(res.Instance)
		assert.Equal(t, want.AccessKeyID, r.AccessKeyID, "the invocation's credentials are the slot's")
		assert.Equal(t, want.AccessKeySecret, r.AccessKeySecret)
		assert.Equal(t, want.SecurityToken, r.SecurityToken)
		assert.Equal(t, want.AccessKeyID, r.Env["ALIBABA_CLOUD_ACCESS_KEY_ID"], "and so is the environment")
		assert.Equal(t, want.AccessKeySecret, r.Env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"])
		assert.Equal(t, want.SecurityToken, r.Env["ALIBABA_CLOUD_SECURITY_TOKEN"])
	}
}

// TestCrashKillsOnlyItsProcess: a crash injected into one invocation kills
// the process running it; the others finish on processes that live on.
func TestCrashKillsOnlyItsProcess(t *testing.T) {
	t.Parallel()
	f := start(t, fcsim.Config{Timeout: 20 * time.Second, MaxInstances: 3})
	finish := busy(t, f, 3, func(i int) fcsim.InvokeOptions {
		return fcsim.InvokeOptions{RequestID: fmt.Sprint("req-", i), Crash: i == 1, CrashAfter: 50 * time.Millisecond}
	})
	// The crashed invocation ends on its own; then let the others go.
	var crashedSlot int
	require.Eventually(t, func() bool {
		for _, in := range f.Instances() {
			if !in.Alive {
				crashedSlot = in.Index
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond)
	before := f.Instances()
	results := finish()
	for i, res := range results {
		if i == 1 {
			require.NotNil(t, res.Err)
			assert.Equal(t, fcsim.ErrorTypeInstanceCrashed, res.Err.Type)
			assert.Equal(t, crashedSlot, res.Instance, "the crashed process is the one that ran it")
			continue
		}
		r := decodeEcho(t, res)
		assert.NoError(t, syscall.Kill(r.PID, 0), "the process of %s lives on", res.RequestID)
		assert.Equal(t, before[res.Instance].PID, r.PID)
	}
	alive := 0
	for _, in := range f.Instances() {
		if in.Alive {
			alive++
		}
	}
	assert.Equal(t, 2, alive, "one process of three was lost")
}

// TestCrashAfterTheAnswerKillsNothing: an invocation that answers before
// its crash time leaves its process alone (it may be running another one).
func TestCrashAfterTheAnswerKillsNothing(t *testing.T) {
	t.Parallel()
	f := start(t, fcsim.Config{Timeout: 20 * time.Second})
	first := decodeEcho(t, invoke(t, f, `{}`, fcsim.InvokeOptions{Crash: true, CrashAfter: 100 * time.Millisecond}))
	time.Sleep(300 * time.Millisecond)
	second := decodeEcho(t, invoke(t, f, `{}`, fcsim.InvokeOptions{}))
	assert.Equal(t, first.PID, second.PID)
	assert.Equal(t, 0, f.Instances()[0].Restarts)
}

// TestKillTakesOneSlot: Kill ends the current process of one slot; the
// invocation it held fails with InstanceCrashed and the slot restarts on
// demand.
func TestKillTakesOneSlot(t *testing.T) {
	t.Parallel()
	f := start(t, fcsim.Config{Timeout: 20 * time.Second, MaxInstances: 2})
	finish := busy(t, f, 2, func(int) fcsim.InvokeOptions { return fcsim.InvokeOptions{} })
	assert.False(t, f.Kill(7), "no such slot")
	require.True(t, f.Kill(1))
	require.Eventually(t, func() bool { return !f.Instances()[1].Alive }, 10*time.Second, 5*time.Millisecond)
	assert.False(t, f.Kill(1), "already dead")
	assert.True(t, f.Instances()[0].Alive)
	for _, res := range finish() {
		if res.Instance == 1 {
			require.NotNil(t, res.Err)
			assert.Equal(t, fcsim.ErrorTypeInstanceCrashed, res.Err.Type)
		} else {
			decodeEcho(t, res)
		}
	}
	r := decodeEcho(t, invoke(t, f, `{}`, fcsim.InvokeOptions{}))
	assert.NotZero(t, r.PID)
}
