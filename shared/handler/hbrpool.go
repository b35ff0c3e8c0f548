package handler

import (
	"context"
	"sync"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
)

// hbrParallel bounds the HBR calls one invocation makes at once per region.
// An SDK client runs one call at a time (the core SDK's client is not safe
// for concurrent use, see package openapi), so a poller batch of 50 tasks
// or an install batch of many chunks would otherwise wait ~100 ms per call
// in line; eight clients keep a batch within a second or two and far below
// HBR's per-account rate limits.
const hbrParallel = 8

// hbrPool is an HBR that lends each call one of up to hbrParallel clients
// of the same region and credentials, so that concurrent callers (the
// poller's tasks, the install step's chunks) do not queue behind one
// client.
type hbrPool struct {
	build func(ctx context.Context) (HBR, error)
	slots chan struct{}
	mu    sync.Mutex
	idle  []HBR
}

// newHBRPool returns a pool that starts with first and builds more clients
// with build, up to size in use at once.
func newHBRPool(first HBR, size int, build func(ctx context.Context) (HBR, error)) *hbrPool {
	return &hbrPool{build: build, slots: make(chan struct{}, max(size, 1)), idle: []HBR{first}}
}

// with runs fn with a client of its own, waiting for a free slot (or ctx).
func (p *hbrPool) with(ctx context.Context, fn func(HBR) error) error {
	select {
	case p.slots <- struct{}{}:
	default: // all in use: wait for one, or for ctx
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer func() { <-p.slots }()
	p.mu.Lock()
	var cl HBR
	if n := len(p.idle); n > 0 {
		cl, p.idle = p.idle[n-1], p.idle[:n-1]
	}
	p.mu.Unlock()
	if cl == nil {
		var err error
		if cl, err = p.build(ctx); err != nil {
			return err
		}
	}
	defer func() {
		p.mu.Lock()
		p.idle = append(p.idle, cl)
		p.mu.Unlock()
	}()
	return fn(cl)
}

// InstallBackupClients implements HBR.
func (p *hbrPool) InstallBackupClients(ctx context.Context, ids []string) (r hbr.InstallResult, err error) {
	err = p.with(ctx, func(cl HBR) error { r, err = cl.InstallBackupClients(ctx, ids); return err })
	return r, err
}

// DescribeBackupClients implements HBR.
func (p *hbrPool) DescribeBackupClients(ctx context.Context, ids []string) (r []hbr.BackupClient, err error) {
	err = p.with(ctx, func(cl HBR) error { r, err = cl.DescribeBackupClients(ctx, ids); return err })
	return r, err
}

// DescribeTask implements HBR.
func (p *hbrPool) DescribeTask(ctx context.Context, taskID string) (t hbr.Task, err error) {
	err = p.with(ctx, func(cl HBR) error { t, err = cl.DescribeTask(ctx, taskID); return err })
	return t, err
}

// DescribePolicyBindings implements HBR.
func (p *hbrPool) DescribePolicyBindings(ctx context.Context, ids []string) (m map[string]string, err error) {
	err = p.with(ctx, func(cl HBR) error { m, err = cl.DescribePolicyBindings(ctx, ids); return err })
	return m, err
}

// CreatePolicyBindings implements HBR.
func (p *hbrPool) CreatePolicyBindings(ctx context.Context, policyID string, ids []string) error {
	return p.with(ctx, func(cl HBR) error { return cl.CreatePolicyBindings(ctx, policyID, ids) })
}
