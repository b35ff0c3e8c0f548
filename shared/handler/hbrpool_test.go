package handler

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
)

// oneAtATime is an HBR client that, like the SDK's, must not be used by two
// calls at once: it fails the test if it is.
type oneAtATime struct {
	t     *testing.T
	busy  atomic.Bool
	calls *atomic.Int32
	live  *atomic.Int32
	peak  *atomic.Int32
}

func (c *oneAtATime) call() {
	if !c.busy.CompareAndSwap(false, true) {
		c.t.Error("a client was used by two calls at once")
	}
	defer c.busy.Store(false)
	n := c.live.Add(1)
	defer c.live.Add(-1)
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
	c.calls.Add(1)
	time.Sleep(5 * time.Millisecond)
}

func (c *oneAtATime) InstallBackupClients(context.Context, []string) (hbr.InstallResult, error) {
	c.call()
	return hbr.InstallResult{TaskID: "t-1"}, nil
}

func (c *oneAtATime) DescribeBackupClients(context.Context, []string) ([]hbr.BackupClient, error) {
	c.call()
	return nil, nil
}

func (c *oneAtATime) DescribeTask(_ context.Context, id string) (hbr.Task, error) {
	c.call()
	return hbr.Task{TaskID: id}, nil
}

func (c *oneAtATime) DescribePolicyBindings(context.Context, []string) (map[string]string, error) {
	c.call()
	return nil, nil
}

func (c *oneAtATime) CreatePolicyBindings(context.Context, string, []string) error {
	c.call()
	return errors.New("denied")
}

func TestHBRPoolLendsEachCallAClientOfItsOwn(t *testing.T) {
	var calls, live, peak, built atomic.Int32
	mk := func() HBR { return &oneAtATime{t: t, calls: &calls, live: &live, peak: &peak} }
	p := newHBRPool(mk(), 4, func(context.Context) (HBR, error) { built.Add(1); return mk(), nil })

	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 5 {
			case 0:
				r, err := p.InstallBackupClients(ctx, []string{"i-1"})
				assert.NoError(t, err)
				assert.Equal(t, "t-1", r.TaskID)
			case 1:
				_, err := p.DescribeBackupClients(ctx, nil)
				assert.NoError(t, err)
			case 2:
				task, err := p.DescribeTask(ctx, "t-9")
				assert.NoError(t, err)
				assert.Equal(t, "t-9", task.TaskID)
			case 3:
				_, err := p.DescribePolicyBindings(ctx, nil)
				assert.NoError(t, err)
			case 4:
				assert.EqualError(t, p.CreatePolicyBindings(ctx, "po-1", nil), "denied")
			}
		}()
	}
	wg.Wait()
	assert.EqualValues(t, 40, calls.Load())
	assert.LessOrEqual(t, peak.Load(), int32(4), "never more calls at once than the pool's size")
	assert.Greater(t, peak.Load(), int32(1), "calls run side by side")
	assert.LessOrEqual(t, built.Load(), int32(3), "clients are reused: the first plus at most size-1 more")
}

func TestHBRPoolWaitsForASlotOrTheContext(t *testing.T) {
	var calls, live, peak atomic.Int32
	p := newHBRPool(&oneAtATime{t: t, calls: &calls, live: &live, peak: &peak}, 1, func(context.Context) (HBR, error) {
		return nil, errors.New("must not build: the pool has one slot")
	})
	p.slots <- struct{}{} // the only slot is taken
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := p.DescribeTask(ctx, "t-1")
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	<-p.slots
	_, err = p.DescribeTask(context.Background(), "t-1")
	assert.NoError(t, err)
}

func TestHBRPoolReportsABuildError(t *testing.T) {
	var calls, live, peak atomic.Int32
	p := newHBRPool(&oneAtATime{t: t, calls: &calls, live: &live, peak: &peak}, 2, func(context.Context) (HBR, error) {
		return nil, errors.New("no credentials")
	})
	p.idle = nil // the first client is lent out elsewhere
	_, err := p.DescribeTask(context.Background(), "t-1")
	assert.EqualError(t, err, "no credentials")
}
