package reconcile

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger/ledgertest"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/scope"
)

// gaugeStore is a ledger store whose calls take delay and that records how
// many were in flight at most, and which instances' ledgers were read (a
// listing of one instance's prefix starts each read).
type gaugeStore struct {
	ledger.Store
	delay time.Duration

	mu             sync.Mutex
	inFlight, peak int
	read           map[string]int
}

func (g *gaugeStore) enter() func() {
	g.mu.Lock()
	g.inFlight++
	g.peak = max(g.peak, g.inFlight)
	g.mu.Unlock()
	time.Sleep(g.delay)
	return func() {
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}
}

func (g *gaugeStore) List(ctx context.Context, prefix, after string, max int) ([]string, bool, error) {
	defer g.enter()()
	// p/1/<region>/<instance>/ is one instance's prefix; p/1/<region>/ the
	// region's (the scan).
	if parts := strings.Split(strings.TrimSuffix(prefix, "/"), "/"); len(parts) == 4 {
		g.mu.Lock()
		if g.read == nil {
			g.read = map[string]int{}
		}
		g.read[parts[3]]++
		g.mu.Unlock()
	}
	return g.Store.List(ctx, prefix, after, max)
}

func (g *gaugeStore) Get(ctx context.Context, key string) ([]byte, error) {
	defer g.enter()()
	return g.Store.Get(ctx, key)
}

func (g *gaugeStore) stats() (peak int, read map[string]int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for k, v := range g.read {
		out[k] = v
	}
	return g.peak, out
}

// staleLedger is a region's ledger at sweepT + 2 h with dead claims (their
// lease passed an hour ago), live claims (claimed 10 minutes ago) and
// recorded instances, and a store over it that measures its reads.
func staleLedger(t *testing.T, dead, live, recorded []string, delay time.Duration) (*ledger.Ledger, *gaugeStore, time.Time) {
	t.Helper()
	ctx := context.Background()
	now := sweepT.Add(2 * time.Hour)
	store := ledgertest.New()
	at := func(when time.Time) *ledger.Ledger {
		return &ledger.Ledger{Store: store, Prefix: "p/", Account: "1", Lease: 30 * time.Minute, StaleIntent: time.Minute,
			Now: func() time.Time { return when }}
	}
	for _, id := range dead {
		_, err := at(sweepT).Claim(ctx, ledger.Announcement{Region: "cn-hangzhou", Instance: id, Job: "j-" + id, EventTime: sweepT})
		require.NoError(t, err)
	}
	for _, id := range live {
		_, err := at(now.Add(-10*time.Minute)).Claim(ctx, ledger.Announcement{Region: "cn-hangzhou", Instance: id, Job: "j-" + id})
		require.NoError(t, err)
	}
	for _, id := range recorded {
		d, err := at(sweepT).Claim(ctx, ledger.Announcement{Region: "cn-hangzhou", Instance: id, Job: "j-" + id})
		require.NoError(t, err)
		_, err = at(sweepT).Finish(ctx, d.Owner, ledger.Final{Outcome: "INSTALLED"})
		require.NoError(t, err)
	}
	g := &gaugeStore{Store: store, delay: delay}
	l := at(now)
	l.Store = g
	return l, g, now
}

// The unrecorded instances' ledgers are read several at a time, at most
// Workers; before, 3 337 of them were read one by one and the part ran
// past its timeout.
func TestStaleClaimsAreReadConcurrently(t *testing.T) {
	t.Parallel()
	dead, live, recorded := numbered("dead", 40), numbered("live", 20), numbered("done", 10)
	l, g, now := staleLedger(t, dead, live, recorded, 2*time.Millisecond)
	svc := service(t, nil, &clientsFake{}, scope.Rules{})
	svc.Ledger, svc.Workers = l, 8
	svc.Now = func() time.Time { return now }

	part, err := svc.Sweep(context.Background(), "cn-hangzhou", "s1", now, false)
	require.NoError(t, err)
	peak, read := g.stats()
	assert.Greater(t, peak, 1, "reads overlap")
	assert.LessOrEqual(t, peak, 8, "at most Workers reads at once")
	assert.Len(t, read, len(dead)+len(live), "every unrecorded instance is read, no recorded one")
	for _, id := range recorded {
		assert.Zero(t, read[id], "%s has a final record: nothing to read", id)
	}
	assert.Equal(t, 60, part.Report.Unrecorded)
	assert.Equal(t, 40, part.Report.StaleClaims)
	assert.Equal(t, dead, idsOf(part.Result), "the dead claims, in the ledger's order")
	assert.True(t, part.Report.Complete)
}
