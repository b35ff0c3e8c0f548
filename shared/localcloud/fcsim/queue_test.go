package fcsim_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/fcsim"
)

// TestQueuedInvocations covers invocations waiting for the only instance
// while it is busy: each is served once the instance is free again, unless
// its caller gives up, the instance dies (a fresh one serves the queue) or
// the function is closed.
func TestQueuedInvocations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// while runs while one invocation holds the instance and three wait
		// (the first with a cancellable context); it ends the busy one.
		while func(t *testing.T, f *fcsim.Function, gate string, cancelFirst func())
		// wantErrs are the waiting invocations' errors; nil means served.
		wantErrs []error
		// wantInvocations is f.Invocations() at the end.
		wantInvocations int
	}{
		{
			name: "served in turn",
			while: func(t *testing.T, _ *fcsim.Function, gate string, _ func()) {
				require.NoError(t, os.WriteFile(gate, nil, 0o600))
			},
			wantErrs:        []error{nil, nil, nil},
			wantInvocations: 4,
		},
		{
			name: "a caller gives up",
			while: func(t *testing.T, _ *fcsim.Function, gate string, cancelFirst func()) {
				cancelFirst()
				require.NoError(t, os.WriteFile(gate, nil, 0o600))
			},
			wantErrs:        []error{context.Canceled, nil, nil},
			wantInvocations: 3,
		},
		{
			name: "the instance dies",
			while: func(t *testing.T, f *fcsim.Function, _ string, _ func()) {
				infos := f.Instances()
				require.Len(t, infos, 1)
				require.NoError(t, syscall.Kill(infos[0].PID, syscall.SIGKILL))
			},
			wantErrs:        []error{nil, nil, nil},
			wantInvocations: 4,
		},
		{
			name: "the function closes",
			while: func(t *testing.T, f *fcsim.Function, _ string, _ func()) {
				require.NoError(t, f.Close())
			},
			wantErrs:        []error{fcsim.ErrClosed, fcsim.ErrClosed, fcsim.ErrClosed},
			wantInvocations: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := start(t, fcsim.Config{Timeout: 20 * time.Second, MaxInstances: 1})
			gate := filepath.Join(t.TempDir(), "gate")
			busy := make(chan error, 1)
			go func() {
				_, err := f.Invoke(context.Background(), []byte(fmt.Sprintf(`{"action":"waitfile","file":%q}`, gate)), fcsim.InvokeOptions{})
				busy <- err
			}()
			require.Eventually(t, func() bool { return f.Invocations() == 1 }, 10*time.Second, 5*time.Millisecond)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			firstCtx, cancelFirst := context.WithCancel(ctx)
			defer cancelFirst()
			errs := make([]chan error, len(tt.wantErrs))
			for i := range errs {
				errs[i] = make(chan error, 1)
				c := ctx
				if i == 0 {
					c = firstCtx
				}
				go func() {
					res, err := f.Invoke(c, []byte(`{}`), fcsim.InvokeOptions{})
					if err == nil && res.Err != nil {
						err = res.Err
					}
					errs[i] <- err
				}()
			}
			time.Sleep(50 * time.Millisecond) // let them queue up

			tt.while(t, f, gate, cancelFirst)

			<-busy
			for i, want := range tt.wantErrs {
				select {
				case err := <-errs[i]:
					if want == nil {
						assert.NoError(t, err, "waiting invocation %d", i)
					} else {
						assert.ErrorIs(t, err, want, "waiting invocation %d", i)
					}
				case <-ctx.Done():
					t.Fatalf("waiting invocation %d never ended", i)
				}
			}
			assert.Equal(t, tt.wantInvocations, f.Invocations())
		})
	}
}
