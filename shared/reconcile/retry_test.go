package reconcile

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger/ledgertest"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/protect"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/scope"
)

// flaky fails its first calls with errs, one error a call, and counts the
// calls.
type flaky struct {
	mu    sync.Mutex
	errs  []error
	calls int
}

func (f *flaky) next() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.errs) == 0 {
		return nil
	}
	err := f.errs[0]
	f.errs = f.errs[1:]
	return err
}

func (f *flaky) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

type flakyLister struct {
	*flaky
	Lister
}

func (f flakyLister) ListInstancesPage(ctx context.Context, status, token string) (ecs.Page, error) {
	if err := f.next(); err != nil {
		return ecs.Page{}, err
	}
	return f.Lister.ListInstancesPage(ctx, status, token)
}

type flakyClients struct {
	*flaky
	ClientLister
}

func (f flakyClients) DescribeBackupClients(ctx context.Context, ids []string) ([]hbr.BackupClient, error) {
	if err := f.next(); err != nil {
		return nil, err
	}
	return f.ClientLister.DescribeBackupClients(ctx, ids)
}

type flakyBindings struct {
	*flaky
	BindingLister
}

func (f flakyBindings) DescribePolicyBindings(ctx context.Context, ids []string) (map[string]string, error) {
	if err := f.next(); err != nil {
		return nil, err
	}
	return f.BindingLister.DescribePolicyBindings(ctx, ids)
}

// flakyStore fails the listings and reads of the ledger's store.
type flakyStore struct {
	ledger.Store
	lists, gets *flaky
}

func (f flakyStore) List(ctx context.Context, prefix, after string, max int) ([]string, bool, error) {
	if err := f.lists.next(); err != nil {
		return nil, false, err
	}
	return f.Store.List(ctx, prefix, after, max)
}

func (f flakyStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := f.gets.next(); err != nil {
		return nil, err
	}
	return f.Store.Get(ctx, key)
}

// sleeps records the pauses of a Service instead of sleeping.
type sleeps struct {
	mu  sync.Mutex
	got []time.Duration
}

func (s *sleeps) sleep(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, d)
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.got...)
}

// One throttled, 5xx or timed-out read among the many a large region takes
// is retried with a short back-off instead of failing the sweep; a call
// that keeps failing fails the part with an error naming the call, and a
// permanent error, or a pause that would pass the deadline, is not retried.
func TestSweepRetriesTransientErrors(t *testing.T) {
	t.Parallel()
	throttled := fault.Wrap("ecs.DescribeInstances", fault.Retryable, "Throttling.User", errors.New("slow down"))
	unavailable := fault.Wrap("hbr.DescribeBackupClients", fault.Retryable, "ServiceUnavailable", errors.New("503"))
	timeout := fault.Wrap("oss.GetObject", fault.Retryable, "", errors.New("transport: i/o timeout"))
	denied := fault.Wrap("hbr.DescribeBackupClients", fault.Permanent, "Forbidden.RAM", errors.New("no"))
	always := func(err error) []error { return []error{err, err, err, err, err, err} }
	ms := time.Millisecond
	type faults struct{ list, clients, bindings, scan, load []error }
	tests := []struct {
		name       string
		faults     faults
		deadline   time.Duration // from now; 0: none
		wantSleeps []time.Duration
		wantErr    string // "": the sweep completes
		wantKind   fault.Kind
		wantCode   string
	}{
		{name: "ECS page throttled once", faults: faults{list: []error{throttled}},
			wantSleeps: []time.Duration{200 * ms}},
		{name: "DescribeBackupClients 503 twice", faults: faults{clients: []error{unavailable, unavailable}},
			wantSleeps: []time.Duration{200 * ms, 400 * ms}},
		{name: "DescribePolicyBindings throttled once", faults: faults{bindings: []error{throttled}},
			wantSleeps: []time.Duration{200 * ms}},
		{name: "ledger scan times out once", faults: faults{scan: []error{timeout}},
			wantSleeps: []time.Duration{200 * ms}},
		{name: "ledger read times out three times", faults: faults{load: []error{timeout, timeout, timeout}},
			wantSleeps: []time.Duration{200 * ms, 400 * ms, 800 * ms}},
		{name: "DescribeBackupClients throttled on every call", faults: faults{clients: always(unavailable)},
			wantSleeps: []time.Duration{200 * ms, 400 * ms, 800 * ms},
			wantErr:    "describe the backup clients of 3 instances (4 attempts): hbr.DescribeBackupClients [ServiceUnavailable]: 503",
			wantKind:   fault.Retryable, wantCode: "ServiceUnavailable"},
		{name: "ledger read failing on every call", faults: faults{load: always(timeout)},
			wantSleeps: []time.Duration{200 * ms, 400 * ms, 800 * ms},
			wantErr:    "read the instance ledger of i-dead0001 (4 attempts)", wantKind: fault.Retryable},
		{name: "a permanent error is not retried", faults: faults{clients: always(denied)},
			wantErr:  "describe the backup clients of 3 instances: hbr.DescribeBackupClients [Forbidden.RAM]: no",
			wantKind: fault.Permanent, wantCode: "Forbidden.RAM"},
		{name: "no pause past the deadline", faults: faults{list: always(throttled)}, deadline: 100 * ms,
			wantErr:  "list the running instances of cn-hangzhou: ecs.DescribeInstances [Throttling.User]: slow down",
			wantKind: fault.Retryable, wantCode: "Throttling.User"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			now := sweepT.Add(2 * time.Hour)
			store := ledgertest.New()
			l := &ledger.Ledger{Store: store, Prefix: "p/", Account: "1", Lease: 30 * time.Minute, StaleIntent: time.Minute,
				Now: func() time.Time { return sweepT }}
			_, err := l.Claim(ctx, ledger.Announcement{Region: "cn-hangzhou", Instance: "i-dead0001", Job: "j-dead", EventTime: sweepT})
			require.NoError(t, err)
			lists, gets := &flaky{errs: tt.faults.scan}, &flaky{errs: tt.faults.load}
			l.Store = flakyStore{Store: store, lists: lists, gets: gets}

			instances := []ecs.Instance{running("i-miss0001", nil), running("i-cov00001", nil), running("i-dead0001", nil)}
			clients := &flakyClients{flaky: &flaky{errs: tt.faults.clients}, ClientLister: &clientsFake{clients: []hbr.BackupClient{
				{InstanceID: "i-cov00001", Status: "ACTIVATED"}, {InstanceID: "i-dead0001", Status: "ACTIVATED"}}}}
			bindings := &flakyBindings{flaky: &flaky{errs: tt.faults.bindings}, BindingLister: bindingsFake{"i-cov00001": "po-1"}}
			svc := service(t, instances, nil, scope.Rules{})
			listing := &flaky{errs: tt.faults.list}
			inner, err := svc.ECS(ctx, "cn-hangzhou")
			require.NoError(t, err)
			svc.ECS = func(context.Context, string) (Lister, error) { return flakyLister{flaky: listing, Lister: inner}, nil }
			svc.HBR = func(context.Context, string) (ClientLister, error) { return clients, nil }
			svc.Protect = protect.Settings{Default: "po-1"}
			svc.Bindings = func(context.Context, string) (BindingLister, error) { return bindings, nil }
			svc.Ledger = l
			svc.Now = func() time.Time { return now }
			var paused sleeps
			svc.Sleep = paused.sleep
			svc.Jitter = func(d time.Duration) time.Duration { return d }
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}

			part, err := svc.Sweep(ctx, "cn-hangzhou", "s1", now, false)
			assert.Equal(t, tt.wantSleeps, paused.all())
			assert.Equal(t, len(tt.wantSleeps), part.Report.Retries)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Equal(t, tt.wantKind, fault.KindOf(err))
				assert.Equal(t, tt.wantCode, fault.CodeOf(err))
				assert.Empty(t, part.Result.Next, "nothing is queued when a call fails for good")
				if len(tt.wantSleeps) == 0 {
					assert.Equal(t, 1, max(clients.count(), listing.count()), "one call, no retry")
				}
				return
			}
			require.NoError(t, err)
			rep := part.Report
			assert.True(t, rep.Complete)
			assert.Equal(t, 3, rep.Total)
			assert.Equal(t, 2, rep.Covered)
			assert.Equal(t, 1, rep.Missing)
			assert.Equal(t, 1, rep.Unbound, "i-dead0001 has no binding")
			assert.Equal(t, 1, rep.Unrecorded)
			assert.Equal(t, 1, rep.StaleClaims)
			assert.ElementsMatch(t, []string{"i-dead0001", "i-miss0001", "i-dead0001"}, idsOf(part.Result),
				"the stale claim and the missing instance, then the unbound one")
		})
	}
}

func TestHalfJitter(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{0, 1, RetryBase, 2 * RetryBase, 4 * RetryBase} {
		for range 100 {
			got := halfJitter(d)
			assert.GreaterOrEqual(t, got, d/2, "%v", d)
			assert.LessOrEqual(t, got, d, "%v", d)
		}
	}
}
