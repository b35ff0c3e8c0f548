package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger/ledgertest"
)

const (
	region   = "cn-hangzhou"
	instance = "i-bp1ledger000000001"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newLedger(t *testing.T) (*ledger.Ledger, *ledgertest.Store, *clock) {
	t.Helper()
	st := ledgertest.New()
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	return &ledger.Ledger{Store: st, Prefix: "hbr-autoinstall/ledger/", Account: "1234567890", Lease: 30 * time.Minute,
		StaleIntent: time.Minute, Now: c.Now}, st, c
}

func announce(job string, at time.Time) ledger.Announcement {
	return ledger.Announcement{Region: region, Instance: instance, Job: job, Trigger: "ecs:Instance:StateChange",
		EventTime: at, Via: "ev-" + job}
}

func TestFirstClaimOwnsAndOthersJoin(t *testing.T) {
	l, st, clk := newLedger(t)
	ctx := context.Background()

	d, err := l.Claim(ctx, announce("j-first", clk.Now()))
	require.NoError(t, err)
	assert.Equal(t, ledger.Owned, d.Kind)
	assert.Equal(t, 1, d.Owner.Generation)
	assert.Equal(t, "j-first", d.Owner.Job)
	assert.Equal(t, clk.Now().Add(30*time.Minute), d.Owner.LeaseUntil)
	assert.Equal(t, []string{"hbr-autoinstall/ledger/1234567890/cn-hangzhou/i-bp1ledger000000001/g000001/claim"}, st.Keys())
	assert.Equal(t, map[string]int{"Create": 1}, st.Calls(), "a new instance is claimed with one create")

	tests := []struct {
		name string
		job  string
		want ledger.Kind
	}{
		{"another job joins the owner", "j-second", ledger.Joined},
		{"the owner's redelivery resumes", "j-first", ledger.Resumed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := l.Claim(ctx, announce(tc.job, clk.Now()))
			require.NoError(t, err)
			assert.Equal(t, tc.want, d.Kind)
			assert.Equal(t, "j-first", d.Owner.Job)
			assert.Equal(t, 1, d.Owner.Generation)
			assert.Contains(t, d.State.Describe(), "generation 1 claimed at")
		})
	}
}

func TestConcurrentAnnouncementsElectOneOwner(t *testing.T) {
	l, _, clk := newLedger(t)
	const n = 32
	var wg sync.WaitGroup
	kinds := make([]ledger.Kind, n)
	owners := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := l.Claim(context.Background(), announce(fmt.Sprintf("j-%02d", i), clk.Now()))
			assert.NoError(t, err)
			kinds[i], owners[i] = d.Kind, d.Owner.Job
		}()
	}
	wg.Wait()
	owned := 0
	for i, k := range kinds {
		if k == ledger.Owned {
			owned++
			assert.Equal(t, fmt.Sprintf("j-%02d", i), owners[i])
		} else {
			assert.Equal(t, ledger.Joined, k)
		}
	}
	assert.Equal(t, 1, owned)
	for _, o := range owners {
		assert.Equal(t, owners[0], o, "every announcement names the same owner")
	}
}

func TestAfterAFinalRecord(t *testing.T) {
	tests := []struct {
		name       string
		outcome    string
		later      time.Duration // announcement time relative to the record
		sweep      bool
		want       ledger.Kind
		supersedes string
	}{
		{"a restart after FAILED reopens", "FAILED", time.Minute, false, ledger.Owned, "j-first/FAILED"},
		{"a late copy of the launch's events joins a FAILED record", "FAILED", -time.Minute, false, ledger.Joined, ""},
		{"a restart after INSTALLED joins", "INSTALLED", time.Minute, false, ledger.Joined, ""},
		{"a restart after NOT_READY reopens", "NOT_READY", time.Minute, false, ledger.Owned, "j-first/NOT_READY"},
		{"a sweep after INSTALLED reopens", "INSTALLED", time.Minute, true, ledger.Owned, "j-first/INSTALLED"},
		{"a sweep older than the record joins", "INSTALLED", -time.Minute, true, ledger.Joined, ""},
		{"a restart after SKIPPED joins (the sweep picks rule changes up)", "SKIPPED", time.Minute, false, ledger.Joined, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, _, clk := newLedger(t)
			ctx := context.Background()
			d, err := l.Claim(ctx, announce("j-first", clk.Now()))
			require.NoError(t, err)
			clk.Add(5 * time.Minute)
			fin, err := l.Finish(ctx, d.Owner, ledger.Final{Outcome: tc.outcome, Reason: "test"})
			require.NoError(t, err)
			require.True(t, fin.Written)

			a := announce("j-later", clk.Now().Add(tc.later))
			a.Sweep = tc.sweep
			clk.Add(2 * time.Minute)
			d2, err := l.Claim(ctx, a)
			require.NoError(t, err)
			assert.Equal(t, tc.want, d2.Kind)
			if tc.want == ledger.Owned {
				assert.Equal(t, 2, d2.Owner.Generation)
				assert.Equal(t, tc.supersedes, d2.Owner.Supersedes)
				assert.Equal(t, "j-later", d2.Owner.Job)
			} else {
				assert.Equal(t, "j-first", d2.Owner.Job, "the joined line names the owner")
				assert.Contains(t, d2.State.Describe(), "recorded "+tc.outcome)
			}

			again, err := l.Claim(ctx, announce("j-first", clk.Now()))
			require.NoError(t, err)
			if tc.want == ledger.Owned {
				assert.Equal(t, ledger.Joined, again.Kind, "the first owner's redelivery joins the new generation")
			} else {
				assert.Equal(t, ledger.Recorded, again.Kind, "the owner's redelivery after its record never joins itself")
			}
		})
	}
}

func TestTakeoverAfterTheLease(t *testing.T) {
	l, _, clk := newLedger(t)
	ctx := context.Background()
	d, err := l.Claim(ctx, announce("j-dead", clk.Now()))
	require.NoError(t, err)
	b, err := l.Begin(ctx, d.Owner, 1, "ev-j-dead")
	require.NoError(t, err)
	require.Equal(t, ledger.Go, b.Start)
	clk.Add(time.Minute)
	ok, err := l.RecordTask(ctx, d.Owner, ledger.Task{Attempt: 1, TaskID: "t-dead", StartedAt: clk.Now(), Deadline: clk.Now().Add(17 * time.Minute)})
	require.NoError(t, err)
	require.True(t, ok)

	clk.Add(20 * time.Minute)
	j, err := l.Claim(ctx, announce("j-other", clk.Now()))
	require.NoError(t, err)
	assert.Equal(t, ledger.Joined, j.Kind, "the task renewed the lease")
	assert.Contains(t, j.State.Describe(), "installing task t-dead (attempt 1)")

	clk.Add(15 * time.Minute)
	tk, err := l.Claim(ctx, announce("j-sweep", clk.Now()))
	require.NoError(t, err)
	assert.Equal(t, ledger.Owned, tk.Kind)
	assert.Equal(t, 2, tk.Owner.Generation)
	assert.Equal(t, "j-dead", tk.Owner.Supersedes)
	require.NotNil(t, tk.Inherit)
	assert.Equal(t, "t-dead", tk.Inherit.TaskID)
	assert.Contains(t, tk.Reason, "took over generation 1 of j-dead")

	// The dead chain comes back to life after the takeover: it must not
	// record over the new generation.
	old := d.Owner
	fin, err := l.Finish(ctx, old, ledger.Final{Outcome: "INSTALLED"})
	require.NoError(t, err)
	assert.False(t, fin.Written)
	assert.Equal(t, "j-sweep", fin.SupersededBy)
}

func TestBegin(t *testing.T) {
	l, _, clk := newLedger(t)
	ctx := context.Background()
	d, err := l.Claim(ctx, announce("j-owner", clk.Now()))
	require.NoError(t, err)
	o := d.Owner

	b, err := l.Begin(ctx, o, 1, "msg-1")
	require.NoError(t, err)
	assert.Equal(t, ledger.Begun{Start: ledger.Go, Attempt: 1}, b)

	b, err = l.Begin(ctx, o, 1, "msg-2")
	require.NoError(t, err)
	assert.Equal(t, ledger.InProgress, b.Start, "another delivery is installing attempt 1")

	b, err = l.Begin(ctx, o, 1, "msg-1")
	require.NoError(t, err)
	assert.Equal(t, ledger.Go, b.Start, "a redelivery of the same message whose run died before the task redoes it")

	require.NoError(t, l.Release(ctx, o, 1))
	b, err = l.Begin(ctx, o, 1, "msg-5")
	require.NoError(t, err)
	assert.Equal(t, ledger.Begun{Start: ledger.Go, Attempt: 1}, b, "a released attempt is free for the chain's next try")
	require.NoError(t, l.Release(ctx, o, 1))
	b, err = l.Begin(ctx, o, 1, "msg-1")
	require.NoError(t, err)
	require.Equal(t, ledger.Go, b.Start)

	ok, err := l.RecordTask(ctx, o, ledger.Task{Attempt: 1, TaskID: "t-1", StartedAt: clk.Now()})
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = l.RecordTask(ctx, o, ledger.Task{Attempt: 1, TaskID: "t-orphan", StartedAt: clk.Now()})
	require.NoError(t, err)
	assert.False(t, ok, "only one task per attempt")

	b, err = l.Begin(ctx, o, 1, "msg-1")
	require.NoError(t, err)
	assert.Equal(t, ledger.Resume, b.Start)
	require.NotNil(t, b.Task)
	assert.Equal(t, "t-1", b.Task.TaskID)

	b, err = l.Begin(ctx, o, 1, "msg-2")
	require.NoError(t, err)
	assert.Equal(t, ledger.Continued, b.Start, "a fork of the chain ends where the other delivery follows its task")

	b, err = l.Begin(ctx, o, 2, "msg-3")
	require.NoError(t, err)
	require.Equal(t, ledger.Go, b.Start)
	clk.Add(2 * time.Minute)
	b, err = l.Begin(ctx, o, 2, "msg-4")
	require.NoError(t, err)
	assert.Equal(t, ledger.Begun{Start: ledger.Go, Attempt: 3}, b, "a stale intent without a task is skipped")
}

func TestFinishIsOnePerGeneration(t *testing.T) {
	l, _, clk := newLedger(t)
	ctx := context.Background()
	d, err := l.Claim(ctx, announce("j-owner", clk.Now()))
	require.NoError(t, err)
	fin, err := l.Finish(ctx, d.Owner, ledger.Final{Outcome: "INSTALLED", Via: "m-1"})
	require.NoError(t, err)
	assert.True(t, fin.Written)
	fin, err = l.Finish(ctx, d.Owner, ledger.Final{Outcome: "TIMEOUT", Via: "m-2"})
	require.NoError(t, err)
	assert.False(t, fin.Written)
	require.NotNil(t, fin.Stored)
	assert.Equal(t, "INSTALLED", fin.Stored.Outcome)
	assert.Equal(t, "m-1", fin.Stored.Via)
	assert.Equal(t, "j-owner/INSTALLED", fin.Stored.Ref())
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("an unreadable entry names its key", func(t *testing.T) {
		l, st, clk := newLedger(t)
		st.Put(l.InstancePrefix(region, instance)+"g000001/claim", []byte("{not json"))
		_, err := l.Claim(ctx, announce("j-x", clk.Now()))
		require.Error(t, err)
		assert.True(t, fault.Is(err, fault.Invalid))
		assert.Contains(t, err.Error(), "g000001/claim")
	})
	t.Run("a store outage is retryable", func(t *testing.T) {
		l, st, clk := newLedger(t)
		st.FailNext(1, nil)
		_, err := l.Claim(ctx, announce("j-x", clk.Now()))
		require.Error(t, err)
		assert.True(t, fault.Is(err, fault.Retryable))
	})
}

func TestScan(t *testing.T) {
	l, _, clk := newLedger(t)
	ctx := context.Background()
	for i, id := range []string{"i-b", "i-a", "i-ab"} {
		a := announce("j-"+id, clk.Now())
		a.Instance = id
		d, err := l.Claim(ctx, a)
		require.NoError(t, err)
		if i != 1 {
			_, err = l.Finish(ctx, d.Owner, ledger.Final{Outcome: "FAILED"})
			require.NoError(t, err)
		}
	}
	clk.Add(time.Minute)
	a := announce("j-restart", clk.Now())
	a.Instance = "i-b"
	_, err := l.Claim(ctx, a)
	require.NoError(t, err)

	var got []ledger.Summary
	require.NoError(t, l.Scan(ctx, region, func(s ledger.Summary) error { got = append(got, s); return nil }))
	assert.Equal(t, []ledger.Summary{
		{Instance: "i-a", Generation: 1, Final: false},
		{Instance: "i-ab", Generation: 1, Final: true},
		{Instance: "i-b", Generation: 2, Final: false},
	}, got)
}

// The bucket's lifecycle rule deletes entries one by one, by age: a
// generation's claim (its oldest entry) can be gone while its intent, task
// and final record linger. A new claim of that generation must not take
// them for its own.
func TestLeftoversOfAnExpiredClaim(t *testing.T) {
	l, st, clk := newLedger(t)
	ctx := context.Background()
	old, err := l.Claim(ctx, announce("j-old", clk.Now()))
	require.NoError(t, err)
	_, err = l.Begin(ctx, old.Owner, 1, "ev-j-old")
	require.NoError(t, err)
	_, err = l.RecordTask(ctx, old.Owner, ledger.Task{Attempt: 1, TaskID: "t-old", StartedAt: clk.Now()})
	require.NoError(t, err)
	_, err = l.Finish(ctx, old.Owner, ledger.Final{Outcome: "INSTALLED"})
	require.NoError(t, err)

	clk.Add(90 * 24 * time.Hour)
	require.NoError(t, st.Delete(ctx, l.InstancePrefix(region, instance)+"g000001/claim"))

	s, err := l.Load(ctx, region, instance)
	require.NoError(t, err)
	assert.Equal(t, 1, s.Generation)
	require.NotNil(t, s.Final, "a final record whose claim expired still stands")
	assert.Equal(t, "j-old", s.Claim.Job)

	// An announcement now claims the generation afresh (its claim key is
	// free); the leftovers are not its own.
	d, err := l.Claim(ctx, announce("j-new", clk.Now()))
	require.NoError(t, err)
	require.Equal(t, ledger.Owned, d.Kind)
	require.Equal(t, 1, d.Owner.Generation)
	s, err = l.Load(ctx, region, instance)
	require.NoError(t, err)
	assert.Nil(t, s.Final, "the leftover record is not the new claim's")
	assert.Nil(t, s.OwnTask(), "nor the leftover task")
	assert.Contains(t, s.Describe(), "claimed at")

	b, err := l.Begin(ctx, d.Owner, 1, "ev-j-new")
	require.NoError(t, err)
	assert.Equal(t, ledger.Begun{Start: ledger.Go, Attempt: 2}, b, "the old job's intent is not this job's attempt")

	// Its record goes to the next generation, naming the leftover one.
	fin, err := l.Finish(ctx, d.Owner, ledger.Final{Outcome: "ALREADY_INSTALLED"})
	require.NoError(t, err)
	assert.True(t, fin.Written)
	s, err = l.Load(ctx, region, instance)
	require.NoError(t, err)
	assert.Equal(t, 2, s.Generation)
	assert.Equal(t, "ALREADY_INSTALLED", s.Final.Outcome)
	assert.Equal(t, "j-new", s.Final.Job)
	assert.Equal(t, "j-old/INSTALLED", s.Final.Supersedes)
}

// callsDuring is how many store calls of each method fn made.
func callsDuring(st *ledgertest.Store, fn func()) map[string]int {
	before := st.Calls()
	fn()
	out := map[string]int{}
	for k, v := range st.Calls() {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// Every read is a round trip the install function's announcements wait
// on: Load reads only the entries that decide, and a joining announcement
// costs its failed create, one listing and the claim.
func TestLoadReadsOnlyWhatDecides(t *testing.T) {
	ctx := context.Background()
	l, st, clk := newLedger(t)
	d, err := l.Claim(ctx, announce("j-owner", clk.Now()))
	require.NoError(t, err)

	var joined ledger.Decision
	calls := callsDuring(st, func() { joined, err = l.Claim(ctx, announce("j-other", clk.Now())) })
	require.NoError(t, err)
	assert.Equal(t, ledger.Joined, joined.Kind)
	assert.Equal(t, "j-owner", joined.Owner.Job)
	assert.Equal(t, map[string]int{"Create": 1, "List": 1, "Get": 1}, calls, "a join: the create, the listing and the claim")

	_, err = l.Begin(ctx, d.Owner, 1, "ev-j-owner")
	require.NoError(t, err)
	var s ledger.State
	calls = callsDuring(st, func() { s, err = l.Load(ctx, region, instance) })
	require.NoError(t, err)
	require.NotNil(t, s.Intent, "an attempt without a task: its intent is read")
	assert.Equal(t, map[string]int{"List": 1, "Get": 2}, calls)

	_, err = l.RecordTask(ctx, d.Owner, ledger.Task{Attempt: 1, TaskID: "t-1", StartedAt: clk.Now(), Deadline: clk.Now().Add(17 * time.Minute)})
	require.NoError(t, err)
	calls = callsDuring(st, func() { s, err = l.Load(ctx, region, instance) })
	require.NoError(t, err)
	require.NotNil(t, s.Task)
	assert.Equal(t, "t-1", s.Task.TaskID)
	assert.Nil(t, s.Intent, "the task says what its intent would: not read")
	assert.Equal(t, map[string]int{"List": 1, "Get": 2}, calls, "the claim and the task")
}

// racingStore lets a rival claim the instance between a follower's early
// read and its create: the read shows nothing, the create fails.
type racingStore struct {
	*ledgertest.Store
	listed chan struct{}
	rival  func()
	once   sync.Once
}

func (r *racingStore) List(ctx context.Context, prefix, after string, n int) ([]string, bool, error) {
	keys, more, err := r.Store.List(ctx, prefix, after, n)
	r.once.Do(func() { close(r.listed) })
	return keys, more, err
}

func (r *racingStore) Create(ctx context.Context, key string, body []byte) error {
	<-r.listed
	r.rival()
	return r.Store.Create(ctx, key, body)
}

// A follower (Running, first heartbeat) reads the ledger beside its first
// create: it joins the owner in one round trip, owns a new instance as
// before, and a read that predates the rival's claim only costs a round.
func TestAFollowerReadsBesideItsCreate(t *testing.T) {
	ctx := context.Background()
	follow := func(job string, at time.Time) ledger.Announcement {
		a := announce(job, at)
		a.Follower = true
		return a
	}
	t.Run("joins", func(t *testing.T) {
		l, st, clk := newLedger(t)
		_, err := l.Claim(ctx, announce("j-owner", clk.Now()))
		require.NoError(t, err)
		var d ledger.Decision
		calls := callsDuring(st, func() { d, err = l.Claim(ctx, follow("j-late", clk.Now())) })
		require.NoError(t, err)
		assert.Equal(t, ledger.Joined, d.Kind)
		assert.Equal(t, "j-owner", d.Owner.Job)
		assert.Equal(t, map[string]int{"Create": 1, "List": 1, "Get": 1}, calls, "no more calls than a join after the create")
	})
	t.Run("owns a new instance", func(t *testing.T) {
		l, _, clk := newLedger(t)
		d, err := l.Claim(ctx, follow("j-first", clk.Now()))
		require.NoError(t, err)
		assert.Equal(t, ledger.Owned, d.Kind)
		assert.Equal(t, "j-first", d.Owner.Job)
	})
	t.Run("a read older than the rival's claim", func(t *testing.T) {
		l, st, clk := newLedger(t)
		rival, err := json.Marshal(ledger.Claim{Instance: instance, Region: region, Generation: 1, Job: "j-rival",
			At: clk.Now(), LeaseUntil: clk.Now().Add(30 * time.Minute)})
		require.NoError(t, err)
		var once sync.Once
		l.Store = &racingStore{Store: st, listed: make(chan struct{}), rival: func() {
			once.Do(func() { st.Put(l.InstancePrefix(region, instance)+"g000001/claim", rival) })
		}}
		d, err := l.Claim(ctx, follow("j-late", clk.Now()))
		require.NoError(t, err)
		assert.Equal(t, ledger.Joined, d.Kind)
		assert.Equal(t, "j-rival", d.Owner.Job)
	})
}

// A restart after a failure begins a generation that corrects the failure
// record; when that generation's chain dies and is taken over, the
// takeover's record corrects the same failure record, and says so (before,
// it named only the dead owner, and the two records disagreed unlinked).
func TestATakeoverOfACorrectionNamesTheRecordItCorrects(t *testing.T) {
	l, _, clk := newLedger(t)
	ctx := context.Background()
	d, err := l.Claim(ctx, announce("j-first", clk.Now()))
	require.NoError(t, err)
	_, err = l.Finish(ctx, d.Owner, ledger.Final{Outcome: "CANCELLED"})
	require.NoError(t, err)

	clk.Add(time.Minute)
	re, err := l.Claim(ctx, announce("j-restart", clk.Now()))
	require.NoError(t, err)
	require.Equal(t, ledger.Owned, re.Kind)
	require.Equal(t, "j-first/CANCELLED", re.Owner.Supersedes)

	clk.Add(time.Hour) // the restart's chain died
	tk, err := l.Claim(ctx, announce("j-late", clk.Now()))
	require.NoError(t, err)
	assert.Equal(t, ledger.Owned, tk.Kind)
	assert.Equal(t, 3, tk.Owner.Generation)
	assert.Equal(t, "j-first/CANCELLED", tk.Owner.Supersedes, "the record it will correct, not only the dead owner")
	assert.Contains(t, tk.Reason, "took over generation 2 of j-restart")
}

// lateClaimStore answers the first read of the first claim "not found",
// then lets a rival create that claim before the listing runs.
type lateClaimStore struct {
	*ledgertest.Store
	read  chan struct{}
	rival func()
	once  sync.Once
}

func (s *lateClaimStore) Get(ctx context.Context, key string) ([]byte, error) {
	body, err := s.Store.Get(ctx, key)
	s.once.Do(func() { s.rival(); close(s.read) })
	return body, err
}

func (s *lateClaimStore) List(ctx context.Context, prefix, after string, n int) ([]string, bool, error) {
	<-s.read
	return s.Store.List(ctx, prefix, after, n)
}

// The first claim, read beside the listing, may be created between the
// read and the listing: Load reads it again instead of failing.
func TestLoadRereadsAClaimCreatedDuringIt(t *testing.T) {
	ctx := context.Background()
	l, st, clk := newLedger(t)
	rival, err := json.Marshal(ledger.Claim{Instance: instance, Region: region, Generation: 1, Job: "j-rival",
		At: clk.Now(), LeaseUntil: clk.Now().Add(30 * time.Minute)})
	require.NoError(t, err)
	l.Store = &lateClaimStore{Store: st, read: make(chan struct{}), rival: func() {
		st.Put(l.InstancePrefix(region, instance)+"g000001/claim", rival)
	}}
	s, err := l.Load(ctx, region, instance)
	require.NoError(t, err)
	require.NotNil(t, s.Claim)
	assert.Equal(t, "j-rival", s.Claim.Job)
}
