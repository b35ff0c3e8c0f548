package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident/identtest"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger/ledgertest"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/protect"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/scope"
)

// listerFunc fakes Lister: it returns the instances f lists in pages of
// fakePage, the token being the offset of the next page.
type listerFunc func(status string) ([]ecs.Instance, error)

const fakePage = 100

func (f listerFunc) ListInstancesPage(_ context.Context, status, token string) (ecs.Page, error) {
	all, err := f(status)
	if err != nil {
		return ecs.Page{}, err
	}
	from := 0
	if token != "" {
		if from, err = strconv.Atoi(token); err != nil || from > len(all) {
			return ecs.Page{}, fault.Wrap("ecs.DescribeInstances", fault.Permanent, "InvalidParameter", errors.New("bad token"))
		}
	}
	to := min(from+fakePage, len(all))
	p := ecs.Page{Instances: all[from:to]}
	if to < len(all) {
		p.NextToken = strconv.Itoa(to)
	}
	return p, nil
}

// clientsFake fakes ClientLister over a fixed set of clients and records the
// id lists it was asked about.
type clientsFake struct {
	mu      sync.Mutex
	clients []hbr.BackupClient
	err     error
	asked   [][]string
}

func (f *clientsFake) DescribeBackupClients(_ context.Context, ids []string) ([]hbr.BackupClient, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, append([]string(nil), ids...))
	if f.err != nil {
		return nil, f.err
	}
	var out []hbr.BackupClient
	for _, c := range f.clients {
		for _, id := range ids {
			if c.InstanceID == id {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

var (
	t0     = time.Date(2026, 11, 27, 3, 0, 5, 0, time.UTC)
	sweepT = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	policy = install.Policy{ReadinessTimeout: 10 * time.Minute}
)

func running(id string, tags map[string]string) ecs.Instance {
	return ecs.Instance{ID: id, Status: ecs.StatusRunning, Tags: tags}
}

func service(t *testing.T, instances []ecs.Instance, cl *clientsFake, rules scope.Rules) *Service {
	t.Helper()
	return &Service{
		ECS: func(context.Context, string) (Lister, error) {
			return listerFunc(func(status string) ([]ecs.Instance, error) {
				assert.Equal(t, ecs.StatusRunning, status, "only running instances are swept")
				return instances, nil
			}), nil
		},
		HBR:    func(context.Context, string) (ClientLister, error) { return cl, nil },
		Scope:  rules,
		Policy: policy,
		Rate:   600,
		Now:    func() time.Time { return t0 },
		Sleep:  func(time.Duration) {},
	}
}

func idsOf(res install.Result) []string {
	var out []string
	for _, n := range res.Next {
		out = append(out, n.Message.IDs()...)
	}
	return out
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("i-%s%04d", prefix, i)
	}
	return out
}

func TestSweepCounts(t *testing.T) {
	t.Parallel()
	rules, err := scope.Parse("", "backup=off", "", "")
	require.NoError(t, err)
	instances := []ecs.Instance{
		running("i-covered1", nil),
		running("i-covered2", map[string]string{"backup": "off"}), // covered wins over excluded
		running("i-install1", nil),
		running("i-exclude1", map[string]string{"backup": "off"}),
		running("i-missing2", nil),
		running("i-missing1", nil),
		running("i-missing1", nil), // listed twice
		running("i-failed01", nil),
		running("i-two00001", nil),
		running("i_bad", nil), // not an id the job schema takes
	}
	clients := []hbr.BackupClient{
		{InstanceID: "i-covered1", Status: "ACTIVATED"},
		{InstanceID: "i-covered2", Status: "ACTIVATED"},
		{InstanceID: "i-install1", Status: "INSTALLING"},
		{InstanceID: "i-failed01", Status: "INSTALL_FAILED"},
		{InstanceID: "i-two00001", Status: "INSTALL_FAILED"},
		{InstanceID: "i-two00001", Status: "ACTIVATED"}, // the ACTIVATED one counts
	}
	tests := []struct {
		name         string
		dryRun       bool
		wantEnqueued []string
	}{
		{"enforce", false, []string{"i-missing2", "i-missing1", "i-failed01"}}, // in listing order
		{"dry run", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc := service(t, instances, &clientsFake{clients: clients}, rules)
			part, err := svc.Sweep(context.Background(), "cn-hangzhou", "2026-11-27T03:00:00Z", sweepT, tt.dryRun)
			rep, res := part.Report, part.Result
			require.NoError(t, err)
			assert.Equal(t, Report{
				Region: "cn-hangzhou", SweepID: "2026-11-27T03:00:00Z", DryRun: tt.dryRun,
				Listed: 9, Total: 9, Covered: 3, Installing: 1, Missing: 3, Failed: 1,
				Enqueued: len(tt.wantEnqueued), Messages: min(len(tt.wantEnqueued), 1),
				Excluded:      map[string]int{"exclude tag backup=off": 1, ruleInvalidID: 1},
				ClientStatus:  map[string]int{"ACTIVATED": 3, "INSTALLING": 1, "INSTALL_FAILED": 1},
				SpreadSeconds: map[bool]float64{true: 0, false: 1}[tt.dryRun],
				StartedAt:     t0, Parts: 1, Complete: true,
			}, rep)
			assert.Equal(t, rep.Total, rep.Covered+rep.Installing+rep.ExcludedTotal()+rep.Missing)
			assert.Equal(t, tt.wantEnqueued, idsOf(res))
			assert.Empty(t, res.Outcomes)
		})
	}
}

func TestSweepBuildsInstallRetryMessages(t *testing.T) {
	t.Parallel()
	ids := numbered("miss", 45)
	var instances []ecs.Instance
	for _, id := range ids {
		instances = append(instances, running(id, nil))
	}
	svc := service(t, instances, &clientsFake{}, scope.Rules{})
	svc.Rate = 300 // 20 instances every 4 s
	part, err := svc.Sweep(context.Background(), "cn-hangzhou", "s1", sweepT, false)
	rep, res := part.Report, part.Result
	require.NoError(t, err)
	assert.Equal(t, 45, rep.Enqueued)
	assert.Equal(t, 3, rep.Messages)
	assert.Equal(t, 8.0, rep.SpreadSeconds)
	require.Len(t, res.Next, 3)

	wantDelays := []time.Duration{time.Second, 4 * time.Second, 8 * time.Second}
	wantSizes := []int{20, 20, 5}
	for k, n := range res.Next {
		m := n.Message
		assert.Equal(t, wantDelays[k], n.Delay, "message %d", k)
		assert.Len(t, m.Instances, wantSizes[k])
		assert.Equal(t, job.KindInstallRetry, m.Kind)
		assert.Equal(t, "cn-hangzhou", m.Region)
		assert.Equal(t, "reconcile:s1", m.OriginEventID)
		assert.Equal(t, t0.Add(n.Delay+policy.ReadinessTimeout), m.Deadline, "the readiness window starts at delivery")
		for _, in := range m.Instances {
			assert.Equal(t, job.JobID(EventSource, "s1", in.ID), in.JobID)
			assert.Equal(t, "reconcile:s1", in.OriginEventID)
			assert.Equal(t, sweepT, in.EventTime)
			assert.Equal(t, t0, in.FirstSeen)
			assert.Equal(t, m.Deadline, in.ReadyBy)
			assert.Zero(t, in.Attempts)
		}
		_, err := job.Encode(m)
		assert.NoError(t, err, "message %d encodes", k)
	}
	assert.Equal(t, ids, idsOf(res))

	// The same sweep id gives the same job ids (a redelivered timer
	// invocation); another sweep gives others.
	p2, err := svc.Sweep(context.Background(), "cn-hangzhou", "s1", sweepT, false)
	again := p2.Result
	require.NoError(t, err)
	p2, err = svc.Sweep(context.Background(), "cn-hangzhou", "s2", sweepT, false)
	other := p2.Result
	require.NoError(t, err)
	assert.Equal(t, res.Next[0].Message.Instances[0].JobID, again.Next[0].Message.Instances[0].JobID)
	assert.NotEqual(t, res.Next[0].Message.Instances[0].JobID, other.Next[0].Message.Instances[0].JobID)
}

func TestSweepAsksForClientsInChunks(t *testing.T) {
	t.Parallel()
	var instances []ecs.Instance
	for _, id := range numbered("many", 250) {
		instances = append(instances, running(id, nil))
	}
	cl := &clientsFake{}
	part, err := service(t, instances, cl, scope.Rules{}).Sweep(context.Background(), "cn-hangzhou", "s", sweepT, true)
	rep := part.Report
	require.NoError(t, err)
	assert.Equal(t, 250, rep.Missing)
	var sizes []int
	for _, a := range cl.asked {
		sizes = append(sizes, len(a))
	}
	assert.Equal(t, []int{100, 100, 50}, sizes)
}

func TestSweepIsBoundedByMax(t *testing.T) {
	t.Parallel()
	ids := numbered("cap", 30)
	var instances []ecs.Instance
	for _, id := range ids {
		instances = append(instances, running(id, nil))
	}
	svc := service(t, instances, &clientsFake{}, scope.Rules{})
	svc.Max = 25
	part, err := svc.Sweep(context.Background(), "cn-hangzhou", "s", sweepT, false)
	rep, res := part.Report, part.Result
	require.NoError(t, err)
	assert.True(t, rep.Truncated)
	assert.Equal(t, 30, rep.Listed)
	assert.Equal(t, 25, rep.Total)
	assert.Equal(t, ids[:25], idsOf(res))
}

func TestSweepErrors(t *testing.T) {
	t.Parallel()
	throttled := fault.Wrap("ecs.DescribeInstances", fault.Retryable, "Throttling.User", errors.New("slow down"))
	denied := fault.Wrap("hbr.DescribeBackupClients", fault.Permanent, "Forbidden.RAM", errors.New("no"))
	noCreds := fault.Invalidf("cloudauth.FromContext", "no credentials")
	one := []ecs.Instance{running("i-one00001", nil)}
	tests := []struct {
		name     string
		region   string
		sweepID  string
		mutate   func(s *Service)
		wantKind fault.Kind
		wantErr  error
		wantCode string
	}{
		{"bad region", "Hangzhou!", "s", func(*Service) {}, fault.Invalid, nil, ""},
		{"bad sweep id", "cn-hangzhou", "../x", func(*Service) {}, fault.Invalid, nil, ""},
		{"empty sweep id", "cn-hangzhou", "", func(*Service) {}, fault.Invalid, nil, ""},
		{"ECS throttled", "cn-hangzhou", "s", func(s *Service) {
			s.ECS = func(context.Context, string) (Lister, error) {
				return listerFunc(func(string) ([]ecs.Instance, error) { return nil, throttled }), nil
			}
		}, fault.Retryable, throttled, "Throttling.User"},
		{"ECS client cannot be built", "cn-hangzhou", "s", func(s *Service) {
			s.ECS = func(context.Context, string) (Lister, error) { return nil, noCreds }
		}, fault.Invalid, noCreds, ""},
		{"HBR denied", "cn-hangzhou", "s", func(s *Service) {
			s.HBR = func(context.Context, string) (ClientLister, error) { return &clientsFake{err: denied}, nil }
		}, fault.Permanent, denied, "Forbidden.RAM"},
		{"HBR client cannot be built", "cn-hangzhou", "s", func(s *Service) {
			s.HBR = func(context.Context, string) (ClientLister, error) { return nil, noCreds }
		}, fault.Invalid, noCreds, ""},
		{"no ECS configured", "cn-hangzhou", "s", func(s *Service) { s.ECS = nil }, fault.Invalid, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc := service(t, one, &clientsFake{}, scope.Rules{})
			tt.mutate(svc)
			part, err := svc.Sweep(context.Background(), tt.region, tt.sweepID, sweepT, false)
			res := part.Result
			require.Error(t, err)
			assert.Equal(t, tt.wantKind, fault.KindOf(err))
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
			}
			assert.Equal(t, tt.wantCode, fault.CodeOf(err))
			assert.Empty(t, res.Next, "nothing is enqueued on error")
		})
	}
}

func TestSweepWithNothingRunning(t *testing.T) {
	t.Parallel()
	cl := &clientsFake{}
	part, err := service(t, nil, cl, scope.Rules{}).Sweep(context.Background(), "cn-hangzhou", "s", sweepT, false)
	rep, res := part.Report, part.Result
	require.NoError(t, err)
	assert.Zero(t, rep.Total)
	assert.Empty(t, res.Next)
	assert.Empty(t, cl.asked, "no HBR call for an empty region")
}

func TestDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rate, k int
		want    time.Duration
	}{
		{600, 0, time.Second},
		{600, 1, 2 * time.Second},
		{600, 10, 20 * time.Second},
		{20, 3, 3 * time.Minute},
		{100000, 1, time.Second}, // 12 ms, raised to the 1 s minimum
		{0, 50, time.Second},     // no rate: no spreading
		{1, 1_000_000, MaxDelay}, // capped at the MNS maximum
	}
	for _, tt := range tests {
		s := Service{Rate: tt.rate}
		assert.Equal(t, tt.want, s.Delay(tt.k), "rate %d, message %d", tt.rate, tt.k)
	}
}

// TestIDChecks pins ValidSweepID and the region check of Sweep to the
// regexps they replaced.
func TestIDChecks(t *testing.T) {
	t.Parallel()
	identtest.Run(t, []identtest.Case{
		{
			Name: "sweep id", Pattern: `^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$`, Valid: ValidSweepID,
			Accept: []string{
				"2026-11-27T03:00:00Z", "1-6746a1b2-7c3d5e9f0a1b", "manual-1795741200", "2026-11-27T11:00:00+08:00",
				"x", strings.Repeat("s", MaxSweepIDLen),
			},
			Reject: []string{
				"", "-x", "_x", "a b", "x/y", "x\n", "ẋ", string(make([]byte, MaxSweepIDLen+1)),
				strings.Repeat("s", MaxSweepIDLen+1),
			},
		},
		{
			Name: "region", Pattern: `^[a-z0-9-]{1,64}$`, Valid: ident.Region.Valid,
			Accept: []string{"cn-hangzhou", strings.Repeat("r", 64)},
			Reject: []string{"", "cn hangzhou", "cn-hangzhou\n", strings.Repeat("r", 65)},
		},
	})
}

// TestSweepContinuesAcrossParts runs a sweep of 1 050 instances whose
// invocations may each list 3 pages: 4 parts, linked by continuation
// messages that go through the job codec, and the last part's report
// covers the whole region, with the messages spread as one sweep.
func TestSweepContinuesAcrossParts(t *testing.T) {
	t.Parallel()
	ids := numbered("part", 1050)
	var instances []ecs.Instance
	var clients []hbr.BackupClient
	for i, id := range ids {
		instances = append(instances, running(id, nil))
		if i%10 == 0 {
			clients = append(clients, hbr.BackupClient{InstanceID: id, Status: "ACTIVATED"})
		}
	}
	svc := service(t, instances, &clientsFake{clients: clients}, scope.Rules{})
	svc.Rate = 60 // a message every 20 s
	now := t0
	svc.Now = func() time.Time { return now }
	pages := 0
	svc.Stop = func() bool { pages++; return pages%3 == 0 }

	part, err := svc.Sweep(context.Background(), "cn-hangzhou", "big", sweepT, false)
	require.NoError(t, err)
	var enqueued []string
	var delays []time.Duration
	parts := 1
	for {
		enqueued = append(enqueued, idsOf(part.Result)...)
		for _, n := range part.Result.Next {
			delays = append(delays, n.Delay+now.Sub(t0))
		}
		if part.Next == nil {
			break
		}
		assert.False(t, part.Report.Complete)
		body, err := job.Encode(*part.Next)
		require.NoError(t, err, "a continuation is a valid job message")
		m, err := job.Decode(body)
		require.NoError(t, err)
		now = now.Add(time.Minute)
		part, err = svc.Continue(context.Background(), m)
		require.NoError(t, err)
		parts++
	}
	rep := part.Report
	assert.Equal(t, 4, parts)
	assert.Equal(t, 4, rep.Parts)
	assert.True(t, rep.Complete)
	assert.Equal(t, 1050, rep.Listed)
	assert.Equal(t, 1050, rep.Total)
	assert.Equal(t, 105, rep.Covered)
	assert.Equal(t, 945, rep.Missing)
	assert.Equal(t, 945, rep.Enqueued)
	assert.Equal(t, 49, rep.Messages, "270 missing a part: 14 + 14 + 14 + 7")
	assert.Equal(t, t0, rep.StartedAt)
	assert.Len(t, enqueued, 945)
	for k := 1; k < len(delays); k++ {
		assert.Equal(t, time.Duration(k)*20*time.Second, delays[k], "message %d is due k·20 s after the start, whatever its part", k)
	}
}

func TestSweepMaxSpansParts(t *testing.T) {
	t.Parallel()
	var instances []ecs.Instance
	for _, id := range numbered("max", 350) {
		instances = append(instances, running(id, nil))
	}
	svc := service(t, instances, &clientsFake{}, scope.Rules{})
	svc.Max = 250
	svc.Stop = func() bool { return true } // one page per part

	part, err := svc.Sweep(context.Background(), "cn-hangzhou", "s", sweepT, true)
	require.NoError(t, err)
	for part.Next != nil {
		part, err = svc.Continue(context.Background(), *part.Next)
		require.NoError(t, err)
	}
	assert.Equal(t, 3, part.Report.Parts)
	assert.Equal(t, 250, part.Report.Total)
	assert.True(t, part.Report.Truncated)
	assert.True(t, part.Report.Complete)
}

func TestContinueRefusesWhatCannotEnd(t *testing.T) {
	t.Parallel()
	var instances []ecs.Instance
	for _, id := range numbered("c", 150) {
		instances = append(instances, running(id, nil))
	}
	svc := service(t, instances, &clientsFake{}, scope.Rules{})
	svc.Stop = func() bool { return true }
	first, err := svc.Sweep(context.Background(), "cn-hangzhou", "s", sweepT, true)
	require.NoError(t, err)
	require.NotNil(t, first.Next)

	tests := map[string]func(m *job.Message){
		"past its deadline": func(m *job.Message) { m.Deadline = t0 },
		"too many parts":    func(m *job.Message) { m.Sweep.Part = job.MaxSweepParts - 1 },
		"not a sweep":       func(m *job.Message) { m.Kind = job.KindPoll },
		"bad totals":        func(m *job.Message) { m.Sweep.Report = []byte(`[1]`) },
		"ledger pass without its token": func(m *job.Message) {
			m.Sweep.Report = []byte(`{"ledgerAfter":"i-c0001"}`)
		},
		"start token without the ledger pass": func(m *job.Message) { m.Sweep.Token = startToken },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			m := *first.Next
			st := *m.Sweep
			m.Sweep = &st
			mutate(&m)
			_, err := svc.Continue(context.Background(), m)
			assert.True(t, fault.Is(err, fault.Invalid), "%v", err)
		})
	}
	m := *first.Next
	st := *m.Sweep
	st.Token = "999999"
	m.Sweep = &st
	_, err = svc.Continue(context.Background(), m)
	assert.Equal(t, fault.Permanent, fault.KindOf(err), "a token the service rejects: %v", err)
}

// bindingsFake fakes BindingLister: instance → policy.
type bindingsFake map[string]string

func (f bindingsFake) DescribePolicyBindings(_ context.Context, ids []string) (map[string]string, error) {
	out := map[string]string{}
	for _, id := range ids {
		if p, ok := f[id]; ok {
			out[id] = p
		}
	}
	return out, nil
}

// With a backup policy configured, the sweep reports the covered instances
// that should be bound and are not, and announces them to the install
// function like missing ones (it finds the client ACTIVATED and binds it);
// an instance no policy applies to, or one already bound, is left alone.
func TestSweepBindsCoveredUnboundInstances(t *testing.T) {
	instances := []ecs.Instance{running("i-bound", nil), running("i-loose1", nil), running("i-loose2", map[string]string{"env": "dev"}),
		running("i-nopolicy", map[string]string{"env": "test"}), running("i-missing", nil)}
	cl := &clientsFake{}
	for _, id := range []string{"i-bound", "i-loose1", "i-loose2", "i-nopolicy"} {
		cl.clients = append(cl.clients, hbr.BackupClient{InstanceID: id, ClientID: "c-" + id, Status: "ACTIVATED"})
	}
	for _, dry := range []bool{false, true} {
		svc := service(t, instances, cl, scope.Rules{})
		var err error
		svc.Protect, err = protect.Parse("", "env=dev:po-dev,env:po-any")
		require.NoError(t, err)
		// i-loose1 has no tags: no term matches and there is no default.
		svc.Protect.Default = "po-default"
		svc.Bindings = func(context.Context, string) (BindingLister, error) {
			return bindingsFake{"i-bound": "po-other"}, nil
		}
		part, err := svc.Sweep(context.Background(), "cn-hangzhou", "s1", sweepT, dry)
		require.NoError(t, err)
		assert.Equal(t, 4, part.Report.Covered)
		assert.Equal(t, 3, part.Report.Unbound, "i-loose1 (default), i-loose2 (env=dev), i-nopolicy (env present)")
		var bind []string
		for _, n := range part.Result.Next {
			require.Equal(t, job.KindInstallRetry, n.Message.Kind)
			_, err := job.Encode(n.Message)
			require.NoError(t, err)
			for _, in := range n.Message.Instances {
				if in.ID == "i-missing" {
					continue
				}
				bind = append(bind, in.ID)
				assert.True(t, in.Sweep, "a sweep's announcement reopens a recorded generation")
				assert.Zero(t, in.Generation)
			}
		}
		if dry {
			assert.Empty(t, bind, "a dry run only reports")
			assert.Zero(t, part.Report.BindQueued)
			continue
		}
		assert.Equal(t, []string{"i-loose1", "i-loose2", "i-nopolicy"}, bind)
		assert.Equal(t, 3, part.Report.BindQueued)
	}
}

// A claim whose lease passed without a final record (its owner's chain
// died) is announced again by the sweep, even when its client is
// ACTIVATED: the install function takes it over and records it.
func TestSweepAnnouncesStaleClaims(t *testing.T) {
	now := sweepT.Add(2 * time.Hour)
	store := ledgertest.New()
	l := &ledger.Ledger{Store: store, Prefix: "p/", Account: "1", Lease: 30 * time.Minute, StaleIntent: time.Minute,
		Now: func() time.Time { return sweepT }}
	ctx := context.Background()
	for _, id := range []string{"i-dead", "i-done"} {
		d, err := l.Claim(ctx, ledger.Announcement{Region: "cn-hangzhou", Instance: id, Job: "j-" + id, EventTime: sweepT})
		require.NoError(t, err)
		if id == "i-done" {
			_, err = l.Finish(ctx, d.Owner, ledger.Final{Outcome: "INSTALLED"})
			require.NoError(t, err)
		}
	}
	cl := &clientsFake{clients: []hbr.BackupClient{{InstanceID: "i-dead", Status: "ACTIVATED"}, {InstanceID: "i-done", Status: "ACTIVATED"}}}
	for _, dry := range []bool{false, true} {
		svc := service(t, []ecs.Instance{running("i-dead", nil), running("i-done", nil)}, cl, scope.Rules{})
		svc.Ledger = l
		svc.Now = func() time.Time { return now }
		part, err := svc.Sweep(ctx, "cn-hangzhou", "s1", now, dry)
		require.NoError(t, err)
		assert.Equal(t, 1, part.Report.Unrecorded)
		assert.Equal(t, 1, part.Report.StaleClaims)
		assert.Equal(t, 2, part.Report.Covered)
		var queued []string
		for _, n := range part.Result.Next {
			queued = append(queued, n.Message.IDs()...)
		}
		if dry {
			assert.Empty(t, queued)
			continue
		}
		assert.Equal(t, []string{"i-dead"}, queued)
	}
}
