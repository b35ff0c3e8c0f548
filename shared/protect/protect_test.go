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
	tagged    = Settings{Default: "po-default", Rules: []Rule{
		{Key: "env", Value: "prod", PolicyID: "po-prod"},
		{Key: "backup", AnyValue: true, PolicyID: "po-any"},
	}}
)

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
			wantDescribe: [][]string{{"i-p", "i-d"}},
			wantCreate:   []string{"po-prod:i-p", "po-default:i-d"},
		},
		{
			name:         "unclassified error is final with a code",
			settings:     Settings{Default: "po-d"},
			targets:      []Target{{InstanceID: "i-a"}},
			create:       func(string, []string) error { return errors.New("boom") },
			want:         []string{"i-a BIND_FAILED po-d BindError"},
			wantDescribe: [][]string{{"i-a"}},
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
