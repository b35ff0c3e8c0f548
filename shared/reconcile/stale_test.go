package reconcile

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
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
	// A ledger.Load of a claim with no task makes two requests at once
	// (the listing and the first claim's read).
	assert.LessOrEqual(t, peak, 2*8, "at most Workers ledger reads at once")
	assert.Len(t, read, len(dead)+len(live), "every unrecorded instance is read, no recorded one")
	for _, id := range recorded {
		assert.Zero(t, read[id], "%s has a final record: nothing to read", id)
	}
	assert.Equal(t, 60, part.Report.Unrecorded)
	assert.Equal(t, 40, part.Report.StaleClaims)
	assert.Equal(t, dead, idsOf(part.Result), "the dead claims, in the ledger's order")
	assert.True(t, part.Report.Complete)
}

// When Stop says the invocation's time is running out, the ledger pass
// stops reading and the part ends with a continuation that goes on with
// the pass, after the last instance read, in the next part; the listing
// starts once the pass is done. Before, the pass read on until the
// invocation's deadline failed the whole sweep.
func TestLedgerPassStopsBeforeTheBudgetAndContinues(t *testing.T) {
	t.Parallel()
	dead, live, recorded := numbered("dead", 100), numbered("live", 30), numbered("done", 10)
	l, g, now := staleLedger(t, dead, live, recorded, 0)
	var instances []ecs.Instance
	for _, id := range numbered("run", 150) {
		instances = append(instances, running(id, nil))
	}
	svc := service(t, instances, &clientsFake{}, scope.Rules{})
	svc.Ledger, svc.Workers = l, 4
	svc.Now = func() time.Time { return now }
	var mu sync.Mutex
	asked := 0
	svc.Stop = func() bool {
		mu.Lock()
		defer mu.Unlock()
		asked++
		return asked%40 == 0 // the time of about 44 reads
	}

	part, err := svc.Sweep(context.Background(), "cn-hangzhou", "s1", now, false)
	require.NoError(t, err)
	queued := map[string]int{}
	var ledgerParts int
	for {
		for _, id := range idsOf(part.Result) {
			queued[id]++
		}
		if part.Next == nil {
			break
		}
		if part.Next.Sweep.Token == startToken {
			ledgerParts++
			assert.Zero(t, part.Report.Listed, "part %d: the listing waits for the ledger pass", part.Report.Parts)
			assert.Less(t, part.Report.Unrecorded, 130)
		}
		body, err := job.Encode(*part.Next)
		require.NoError(t, err, "a continuation of the ledger pass is a valid job message")
		m, err := job.Decode(body)
		require.NoError(t, err)
		part, err = svc.Continue(context.Background(), m)
		require.NoError(t, err)
	}
	rep := part.Report
	assert.GreaterOrEqual(t, ledgerParts, 2, "130 reads at about 44 a part")
	assert.True(t, rep.Complete)
	assert.Equal(t, 130, rep.Unrecorded, "each unrecorded instance counted once over all parts")
	assert.Equal(t, 100, rep.StaleClaims)
	assert.Equal(t, 150, rep.Listed)
	assert.Equal(t, 150, rep.Missing)
	for _, id := range dead {
		assert.Equal(t, 1, queued[id], "%s is queued once", id)
	}
	for _, id := range append(live, recorded...) {
		assert.Zero(t, queued[id], "%s is not queued", id)
	}
	_, read := g.stats()
	for _, id := range append(dead, live...) {
		assert.Equal(t, 1, read[id], "%s is read once over all parts", id)
	}
	assert.Len(t, read, 130)
}

// scanOrder is the order ledger.Scan visits instances in: that of their
// keys, "<instance>/g…".
func TestScanOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want int
	}{
		{"i-a", "i-b", -1},
		{"i-a-b", "i-a", -1}, // "i-a-b/…" < "i-a/…"
		{"i-a0", "i-a", 1},
		{"i-a", "i-a", 0},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, scanOrder(tt.a, tt.b), "%s vs %s", tt.a, tt.b)
		keys := []string{tt.a + "/g000001/claim", tt.b + "/g000001/claim"}
		assert.Equal(t, tt.want, strings.Compare(keys[0], keys[1]), "the keys sort alike")
	}
}
