package protect

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
)

// fakeBinder is a Binder with function fields; it records every call.
type fakeBinder struct {
	DescribeFn func(ids []string) (map[string]string, error)
	CreateFn   func(policy string, ids []string) error

	mu       sync.Mutex
	describe [][]string
	create   []string // "policy:id,id"
}

func (f *fakeBinder) DescribePolicyBindings(_ context.Context, ids []string) (map[string]string, error) {
	f.mu.Lock()
	f.describe = append(f.describe, ids)
	f.mu.Unlock()
	if f.DescribeFn == nil {
		return map[string]string{}, nil
	}
	return f.DescribeFn(ids)
}

func (f *fakeBinder) CreatePolicyBindings(_ context.Context, policy string, ids []string) error {
	f.mu.Lock()
	f.create = append(f.create, policy+":"+strings.Join(ids, ","))
	f.mu.Unlock()
	if f.CreateFn == nil {
		return nil
	}
	return f.CreateFn(policy, ids)
}

func service(b *fakeBinder, s Settings) *Service {
	return &Service{Settings: s, HBR: func(context.Context, string) (Binder, error) { return b, nil }}
}

var (
	throttled = fault.Wrap("hbr.CreatePolicyBindings", fault.Retryable, "Throttling.User", errors.New("throttled"))
	conflict  = fault.Wrap("hbr.CreatePolicyBindings", fault.Permanent, "DataSourceAlreadyBound", errors.New("bound"))
	rebound   = fault.Wrap("hbr.CreatePolicyBindings", fault.Permanent, CodeAlreadyBound, errors.New("bound here"))
	refused   = fault.Wrap("hbr.CreatePolicyBindings", fault.Permanent, "DataSourceNotSupported", errors.New("refused"))
	noPolicy  = fault.Wrap("hbr.CreatePolicyBindings", fault.Permanent, CodePolicyNotFound, errors.New("no policy"))
	tagged    = Settings{Default: "po-default", Rules: []Rule{
		{Key: "env", Value: "prod", PolicyID: "po-prod"},
		{Key: "backup", AnyValue: true, PolicyID: "po-any"},
	}}
)

// refuse fails a CreatePolicyBindings call as a whole, as HBR does, with
// the error of the first listed instance that has one.
func refuse(bad map[string]error) func(string, []string) error {
	return func(_ string, ids []string) error {
		for _, id := range ids {
			if err, ok := bad[id]; ok {
				return err
			}
		}
		return nil
	}
}

// listings answers successive DescribePolicyBindings calls in turn; the
// last answer repeats.
func listings(answers ...map[string]string) func([]string) (map[string]string, error) {
	var mu sync.Mutex
	n := 0
	return func([]string) (map[string]string, error) {
		mu.Lock()
		defer mu.Unlock()
		a := answers[min(n, len(answers)-1)]
		n++
		return a, nil
	}
}

// verdicts summarises results as "id verdict policy code".
func verdicts(rs []Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", r.Target.InstanceID, r.Verdict, r.PolicyID, r.Code)))
	}
	return out
}

func TestProtect(t *testing.T) {
	tests := []struct {
		name         string
		settings     Settings
		audit        bool
		targets      []Target
		describe     func(ids []string) (map[string]string, error)
		create       func(policy string, ids []string) error
		want         []string
		wantDescribe [][]string
		wantCreate   []string
	}{
		{
			name:     "disabled calls nothing",
			settings: Settings{},
			targets:  []Target{{InstanceID: "i-a", Tags: map[string]string{}}},
			want:     []string{"i-a NO_POLICY"},
		},
		{
			name:         "default policy, one call each",
			settings:     Settings{Default: "po-d"},
			targets:      []Target{{InstanceID: "i-a"}, {InstanceID: "i-b"}},
			want:         []string{"i-a PROTECTED po-d", "i-b PROTECTED po-d"},
			wantDescribe: [][]string{{"i-a", "i-b"}},
			wantCreate:   []string{"po-d:i-a,i-b"},
		},
		{
			name:     "grouped by policy, first rule wins",
			settings: tagged,
			targets: []Target{
				{InstanceID: "i-p1", Tags: map[string]string{"env": "prod", "backup": "x"}},
				{InstanceID: "i-any", Tags: map[string]string{"backup": ""}},
				{InstanceID: "i-d", Tags: map[string]string{"env": "dev"}},
				{InstanceID: "i-p2", Tags: map[string]string{"env": "prod"}},
			},
			want:         []string{"i-p1 PROTECTED po-prod", "i-any PROTECTED po-any", "i-d PROTECTED po-default", "i-p2 PROTECTED po-prod"},
			wantDescribe: [][]string{{"i-p1", "i-any", "i-d", "i-p2"}},
			wantCreate:   []string{"po-prod:i-p1,i-p2", "po-any:i-any", "po-default:i-d"},
		},
		{
			name:     "already bound is reported, never rebound",
			settings: Settings{Default: "po-d"},
			targets:  []Target{{InstanceID: "i-same"}, {InstanceID: "i-other"}, {InstanceID: "i-new"}},
			describe: func([]string) (map[string]string, error) {
				return map[string]string{"i-same": "po-d", "i-other": "po-x"}, nil
			},
			want:         []string{"i-same ALREADY_PROTECTED po-d", "i-other ALREADY_PROTECTED po-x", "i-new PROTECTED po-d"},
			wantDescribe: [][]string{{"i-same", "i-other", "i-new"}},
			wantCreate:   []string{"po-d:i-new"},
		},
		{
			name:         "no matching rule and no default stays installed",
			settings:     Settings{Rules: tagged.Rules},
			targets:      []Target{{InstanceID: "i-a", Tags: map[string]string{"env": "dev"}}, {InstanceID: "i-b", Tags: map[string]string{"env": "prod"}}},
			want:         []string{"i-a NO_POLICY", "i-b PROTECTED po-prod"},
			wantDescribe: [][]string{{"i-b"}},
			wantCreate:   []string{"po-prod:i-b"},
		},
		{
			name:         "unknown tags with tag rules",
			settings:     tagged,
			targets:      []Target{{InstanceID: "i-a"}, {InstanceID: "i-b", Tags: map[string]string{}}},
			want:         []string{"i-a BIND_FAILED po-default TagsUnknown", "i-b PROTECTED po-default"},
			wantDescribe: [][]string{{"i-b"}},
			wantCreate:   []string{"po-default:i-b"},
		},
		{
			name:         "audit describes only",
			settings:     Settings{Default: "po-d"},
			audit:        true,
			targets:      []Target{{InstanceID: "i-a"}, {InstanceID: "i-b"}},
			describe:     func([]string) (map[string]string, error) { return map[string]string{"i-b": "po-x"}, nil },
			want:         []string{"i-a WOULD_PROTECT po-d", "i-b ALREADY_PROTECTED po-x"},
			wantDescribe: [][]string{{"i-a", "i-b"}},
		},
		{
			name:         "transient describe failure retries later, binds nothing",
			settings:     Settings{Default: "po-d"},
			targets:      []Target{{InstanceID: "i-a"}},
			describe:     func([]string) (map[string]string, error) { return nil, throttled },
			want:         []string{"i-a RETRY_LATER po-d Throttling.User"},
			wantDescribe: [][]string{{"i-a"}},
		},
		{
			name:         "transient create failure",
			settings:     Settings{Default: "po-d"},
			targets:      []Target{{InstanceID: "i-a"}},
			create:       func(string, []string) error { return throttled },
			want:         []string{"i-a RETRY_LATER po-d Throttling.User"},
			wantDescribe: [][]string{{"i-a"}},
			wantCreate:   []string{"po-d:i-a"},
		},
		{
			name:     "permanent create failure fails only that policy's group",
			settings: tagged,
			targets:  []Target{{InstanceID: "i-p", Tags: map[string]string{"env": "prod"}}, {InstanceID: "i-d", Tags: map[string]string{}}},
			create: func(policy string, _ []string) error {
				if policy == "po-prod" {
					return conflict
				}
				return nil
			},
			want:         []string{"i-p BIND_FAILED po-prod DataSourceAlreadyBound", "i-d PROTECTED po-default"},
			wantDescribe: [][]string{{"i-p", "i-d"}, {"i-p"}},
			wantCreate:   []string{"po-prod:i-p", "po-default:i-d"},
		},
		{
			name:         "unclassified error is final with a code",
			settings:     Settings{Default: "po-d"},
			targets:      []Target{{InstanceID: "i-a"}},
			create:       func(string, []string) error { return errors.New("boom") },
			want:         []string{"i-a BIND_FAILED po-d BindError"},
			wantDescribe: [][]string{{"i-a"}, {"i-a"}},
			wantCreate:   []string{"po-d:i-a"},
		},
		{
			name:         "expired invocation retries later",
			settings:     Settings{Default: "po-d"},
			targets:      []Target{{InstanceID: "i-a"}},
			create:       func(string, []string) error { return fmt.Errorf("bind: %w", context.Canceled) },
			want:         []string{"i-a RETRY_LATER po-d BindError"},
			wantDescribe: [][]string{{"i-a"}},
			wantCreate:   []string{"po-d:i-a"},
		},
		{
			// HBR documents this refusal of a repeated binding; the instance
			// was bound by someone else between the two calls.
			name:         "re-bound to the same policy is already protected",
			settings:     Settings{Default: "po-d"},
			targets:      []Target{{InstanceID: "i-a"}},
			create:       func(string, []string) error { return rebound },
			want:         []string{"i-a ALREADY_PROTECTED po-d"},
			wantDescribe: [][]string{{"i-a"}},
			wantCreate:   []string{"po-d:i-a"},
		},
		{
			name:       "fresh and re-bound to the same policy is already protected",
			settings:   Settings{Default: "po-d"},
			targets:    []Target{{InstanceID: "i-a", Fresh: true}},
			create:     func(string, []string) error { return rebound },
			want:       []string{"i-a ALREADY_PROTECTED po-d"},
			wantCreate: []string{"po-d:i-a"},
		},
		{
			name:         "re-bound among several: the listing names it, the others are bound",
			settings:     Settings{Default: "po-d"},
			targets:      []Target{{InstanceID: "i-a", Fresh: true}, {InstanceID: "i-b", Fresh: true}, {InstanceID: "i-c", Fresh: true}},
			describe:     func([]string) (map[string]string, error) { return map[string]string{"i-b": "po-d"}, nil },
			create:       refuse(map[string]error{"i-b": rebound}),
			want:         []string{"i-a PROTECTED po-d", "i-b ALREADY_PROTECTED po-d", "i-c PROTECTED po-d"},
			wantDescribe: [][]string{{"i-a", "i-b", "i-c"}},
			wantCreate:   []string{"po-d:i-a,i-b,i-c", "po-d:i-a,i-c"},
		},
		{
			name:         "bound elsewhere between the calls: found, the others bound",
			settings:     Settings{Default: "po-d"},
			targets:      []Target{{InstanceID: "i-a"}, {InstanceID: "i-b"}, {InstanceID: "i-c"}},
			describe:     listings(map[string]string{}, map[string]string{"i-b": "po-x"}),
			create:       refuse(map[string]error{"i-b": conflict}),
			want:         []string{"i-a PROTECTED po-d", "i-b ALREADY_PROTECTED po-x", "i-c PROTECTED po-d"},
			wantDescribe: [][]string{{"i-a", "i-b", "i-c"}, {"i-a", "i-b", "i-c"}},
			wantCreate:   []string{"po-d:i-a,i-b,i-c", "po-d:i-a,i-c"},
		},
		{
			name:         "one instance that cannot be bound fails alone",
			settings:     Settings{Default: "po-d"},
			targets:      []Target{{InstanceID: "i-a"}, {InstanceID: "i-b"}, {InstanceID: "i-bad"}, {InstanceID: "i-c"}},
			create:       refuse(map[string]error{"i-bad": refused}),
			want:         []string{"i-a PROTECTED po-d", "i-b PROTECTED po-d", "i-bad BIND_FAILED po-d DataSourceNotSupported", "i-c PROTECTED po-d"},
			wantDescribe: [][]string{{"i-a", "i-b", "i-bad", "i-c"}, {"i-a", "i-b", "i-bad", "i-c"}},
			wantCreate: []string{"po-d:i-a,i-b,i-bad,i-c",
				"po-d:i-a,i-b", "po-d:i-bad,i-c", "po-d:i-bad", "po-d:i-c"},
		},
		{
			name:         "a listing that fails after a refusal: halves bound anyway",
			settings:     Settings{Default: "po-d"},
			targets:      []Target{{InstanceID: "i-a", Fresh: true}, {InstanceID: "i-b", Fresh: true}},
			describe:     func([]string) (map[string]string, error) { return nil, throttled },
			create:       refuse(map[string]error{"i-a": rebound}),
			want:         []string{"i-a ALREADY_PROTECTED po-d", "i-b PROTECTED po-d"},
			wantDescribe: [][]string{{"i-a", "i-b"}},
			wantCreate:   []string{"po-d:i-a,i-b", "po-d:i-a", "po-d:i-b"},
		},
		{
			name:     "a transient failure while splitting retries only that part",
			settings: Settings{Default: "po-d"},
			targets:  []Target{{InstanceID: "i-bad"}, {InstanceID: "i-a"}, {InstanceID: "i-b"}, {InstanceID: "i-c"}},
			create: func(_ string, ids []string) error {
				if strings.Join(ids, ",") == "i-b,i-c" {
					return throttled
				}
				return refuse(map[string]error{"i-bad": refused})("", ids)
			},
			want:         []string{"i-bad BIND_FAILED po-d DataSourceNotSupported", "i-a PROTECTED po-d", "i-b RETRY_LATER po-d Throttling.User", "i-c RETRY_LATER po-d Throttling.User"},
			wantDescribe: [][]string{{"i-bad", "i-a", "i-b", "i-c"}, {"i-bad", "i-a", "i-b", "i-c"}},
			wantCreate:   []string{"po-d:i-bad,i-a,i-b,i-c", "po-d:i-bad,i-a", "po-d:i-bad", "po-d:i-a", "po-d:i-b,i-c"},
		},
		{
			name:         "an unknown policy fails every instance in one call",
			settings:     Settings{Default: "po-gone"},
			targets:      []Target{{InstanceID: "i-a", Fresh: true}, {InstanceID: "i-b", Fresh: true}, {InstanceID: "i-c", Fresh: true}},
			create:       func(string, []string) error { return noPolicy },
			want:         []string{"i-a BIND_FAILED po-gone PolicyNotExists", "i-b BIND_FAILED po-gone PolicyNotExists", "i-c BIND_FAILED po-gone PolicyNotExists"},
			wantDescribe: [][]string{{"i-a", "i-b", "i-c"}},
			wantCreate:   []string{"po-gone:i-a,i-b,i-c"},
		},
		{
			name:         "an unknown policy: an instance bound elsewhere is still named",
			settings:     Settings{Default: "po-gone"},
			targets:      []Target{{InstanceID: "i-a", Fresh: true}, {InstanceID: "i-b", Fresh: true}, {InstanceID: "i-c", Fresh: true}},
			describe:     func([]string) (map[string]string, error) { return map[string]string{"i-b": "po-x"}, nil },
			create:       func(string, []string) error { return noPolicy },
			want:         []string{"i-a BIND_FAILED po-gone PolicyNotExists", "i-b ALREADY_PROTECTED po-x", "i-c BIND_FAILED po-gone PolicyNotExists"},
			wantDescribe: [][]string{{"i-a", "i-b", "i-c"}},
			wantCreate:   []string{"po-gone:i-a,i-b,i-c"},
		},
		{
			name:         "a repeated instance keeps one verdict while splitting",
			settings:     Settings{Default: "po-d"},
			targets:      []Target{{InstanceID: "i-bad", JobID: "j-1"}, {InstanceID: "i-a"}, {InstanceID: "i-bad", JobID: "j-2"}},
			create:       refuse(map[string]error{"i-bad": refused}),
			want:         []string{"i-bad BIND_FAILED po-d DataSourceNotSupported", "i-a PROTECTED po-d", "i-bad BIND_FAILED po-d DataSourceNotSupported"},
			wantDescribe: [][]string{{"i-bad", "i-a"}, {"i-bad", "i-a"}},
			wantCreate:   []string{"po-d:i-bad,i-a", "po-d:i-bad", "po-d:i-a"},
		},
		{
			name:         "duplicate instance sent once",
			settings:     Settings{Default: "po-d"},
			targets:      []Target{{InstanceID: "i-a", JobID: "j-1"}, {InstanceID: "i-a", JobID: "j-2"}},
			want:         []string{"i-a PROTECTED po-d", "i-a PROTECTED po-d"},
			wantDescribe: [][]string{{"i-a"}},
			wantCreate:   []string{"po-d:i-a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &fakeBinder{DescribeFn: tt.describe, CreateFn: tt.create}
			s := service(b, tt.settings)
			s.Audit = tt.audit
			got := s.Protect(context.Background(), "cn-hangzhou", tt.targets)
			require.Len(t, got, len(tt.targets))
			assert.Equal(t, tt.want, verdicts(got))
			assert.Equal(t, tt.wantDescribe, b.describe)
			assert.Equal(t, tt.wantCreate, b.create)
			for i, r := range got {
				assert.Equal(t, tt.targets[i], r.Target, "results[i] is for targets[i]")
				if r.Verdict == BindFailed || r.Verdict == RetryLater {
					assert.Error(t, r.Err)
				} else {
					assert.NoError(t, r.Err)
				}
			}
		})
	}
}

func TestProtectBatchesLargeSets(t *testing.T) {
	b := &fakeBinder{}
	var targets []Target
	for i := range 250 {
		targets = append(targets, Target{InstanceID: fmt.Sprintf("i-%03d", i)})
	}
	got := service(b, Settings{Default: "po-d"}).Protect(context.Background(), "cn-hangzhou", targets)
	for _, r := range got {
		require.Equal(t, Protected, r.Verdict)
	}
	require.Len(t, b.describe, 3)
	assert.Len(t, b.describe[0], MaxBatch)
	assert.Len(t, b.describe[2], 50)
	assert.Len(t, b.create, 3, "one call per policy and 100 instances")
}

// TestProtectPinsFailuresOnInstances: however many instances of a chunk
// HBR refuses, each ends with its own verdict, and finding out costs at
// most one listing and 2n-1 more binding calls for n instances.
func TestProtectPinsFailuresOnInstances(t *testing.T) {
	tests := []struct {
		name  string
		fresh bool
		bad   func(n int) error // the refusal of instance n, or nil
	}{
		{name: "one of a hundred", bad: func(n int) error { return when(n == 57, refused) }},
		{name: "every seventh", bad: func(n int) error { return when(n%7 == 3, refused) }},
		{name: "all of them", bad: func(int) error { return refused }},
		{name: "half re-bound, fresh", fresh: true, bad: func(n int) error { return when(n%2 == 0, rebound) }},
		{name: "mixed refusals, fresh", fresh: true, bad: func(n int) error {
			switch n % 10 {
			case 1:
				return refused
			case 2:
				return rebound
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			targets := make([]Target, MaxBatch)
			bad := map[string]error{}
			for n := range targets {
				targets[n] = Target{InstanceID: fmt.Sprintf("i-%03d", n), Fresh: tt.fresh}
				if err := tt.bad(n); err != nil {
					bad[targets[n].InstanceID] = err
				}
			}
			b := &fakeBinder{CreateFn: refuse(bad)}
			got := service(b, Settings{Default: "po-d"}).Protect(context.Background(), "cn-hangzhou", targets)

			for _, r := range got {
				switch err := bad[r.Target.InstanceID]; {
				case err == nil:
					assert.Equal(t, Protected, r.Verdict, r.Target.InstanceID)
				case fault.CodeOf(err) == CodeAlreadyBound:
					assert.Equal(t, AlreadyProtected, r.Verdict, r.Target.InstanceID)
					assert.Equal(t, "po-d", r.PolicyID)
				default:
					assert.Equal(t, BindFailed, r.Verdict, r.Target.InstanceID)
					assert.Equal(t, fault.CodeOf(err), r.Code)
					assert.ErrorIs(t, r.Err, err)
				}
			}
			wantDescribe := 2
			if tt.fresh {
				wantDescribe = 1
			}
			assert.Len(t, b.describe, wantDescribe, "one listing after the refusal")
			assert.LessOrEqual(t, len(b.create), 2*MaxBatch, "the first call and at most 2n-1 more")
			seen := map[string]bool{}
			for _, c := range b.create {
				assert.False(t, seen[c], "no call is repeated: %s", c)
				seen[c] = true
			}
		})
	}
}

// when returns err if cond holds, else nil.
func when(cond bool, err error) error {
	if cond {
		return err
	}
	return nil
}

func TestProtectWithoutClient(t *testing.T) {
	s := &Service{Settings: Settings{Default: "po-d"}, HBR: func(context.Context, string) (Binder, error) {
		return nil, fault.Invalidf("hbr.New", "bad region")
	}}
	got := s.Protect(context.Background(), "cn-hangzhou", []Target{{InstanceID: "i-a"}})
	assert.Equal(t, []string{"i-a BIND_FAILED po-d BindError"}, verdicts(got))
}

func TestVerdictOutcome(t *testing.T) {
	for v, want := range map[Verdict]outcome.Kind{
		Protected: outcome.Protected, AlreadyProtected: outcome.AlreadyProtected,
		BindFailed: outcome.BindFailed, WouldProtect: outcome.WouldProtect,
	} {
		got, ok := v.Outcome()
		assert.True(t, ok, v)
		assert.Equal(t, want, got)
	}
	for _, v := range []Verdict{RetryLater, NoPolicy} {
		_, ok := v.Outcome()
		assert.False(t, ok, v)
	}
}
