package hbr_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/protect"
)

// The binding step calls the adapter through its own interface.
var _ protect.Binder = (*hbr.Client)(nil)

func TestBindAndDescribePolicyBindings(t *testing.T) {
	sim, _, _, base := startSim(t)
	sim.AddPolicy("po-daily", "po-weekly")
	sim.Bind("i-old", "po-weekly", "UDM_ECS", t0)
	c := newClient(t, base, goodCred)
	ctx := context.Background()

	got, err := c.DescribePolicyBindings(ctx, []string{"i-a", "i-b", "i-old"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"i-old": "po-weekly"}, got, "a binding of any source type counts")

	require.NoError(t, c.CreatePolicyBindings(ctx, "po-daily", []string{"i-a", "i-b"}))
	assert.Equal(t, map[string]string{"i-a": "po-daily", "i-b": "po-daily", "i-old": "po-weekly"}, sim.Bindings())
	for _, b := range sim.BindingList() {
		if b.DataSourceID == "i-a" {
			assert.Equal(t, hbr.SourceECSFile, b.SourceType)
		}
	}

	got, err = c.DescribePolicyBindings(ctx, []string{"i-a", "i-b", "i-old", "i-none"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"i-a": "po-daily", "i-b": "po-daily", "i-old": "po-weekly"}, got)

	assert.Equal(t, 1, sim.Calls()["hbr.CreatePolicyBindings"])
	assert.Equal(t, 2, sim.Calls()["hbr.DescribePolicyBindings"])
}

func TestCreatePolicyBindingsErrors(t *testing.T) {
	const op = "hbr.CreatePolicyBindings"
	tests := []struct {
		name     string
		setup    func(sim *hbrsim.Server)
		policy   string
		wantKind fault.Kind
		wantCode string
		wantHTTP int
	}{
		{name: "unknown policy", policy: "po-missing", wantKind: fault.Permanent, wantCode: hbrsim.PolicyNotFoundCode, wantHTTP: 404},
		{name: "bound elsewhere", setup: func(s *hbrsim.Server) { s.Bind("i-b", "po-other", "ECS_FILE", t0) },
			policy: "po-a", wantKind: fault.Permanent, wantCode: hbrsim.BoundElsewhereCode, wantHTTP: 400},
		// [DOC] binding again to the same policy is refused with this code.
		{name: "bound to this policy already", setup: func(s *hbrsim.Server) { s.Bind("i-b", "po-a", "ECS_FILE", t0) },
			policy: "po-a", wantKind: fault.Permanent, wantCode: hbr.CodeAlreadyBound, wantHTTP: 400},
		{name: "throttled", setup: func(s *hbrsim.Server) { s.SetFaults(hbrsim.Faults{ThrottleNext: 1}) },
			policy: "po-a", wantKind: fault.Retryable, wantCode: "Throttling.User", wantHTTP: 400},
		{name: "503", setup: func(s *hbrsim.Server) { s.SetFaults(hbrsim.Faults{ServerErrorNext: 1}) },
			policy: "po-a", wantKind: fault.Retryable, wantCode: "ServiceUnavailable", wantHTTP: 503},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, _, _, base := startSim(t)
			sim.AddPolicy("po-a")
			if tc.setup != nil {
				tc.setup(sim)
			}
			err := newClient(t, base, goodCred).CreatePolicyBindings(context.Background(), tc.policy, []string{"i-a", "i-b"})
			assertFault(t, err, op, tc.wantKind, tc.wantCode)
			var apiErr *hbr.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tc.wantHTTP, apiErr.HTTPStatus)
			assert.NotContains(t, sim.Bindings(), "i-a", "a rejected call binds nothing")
			assert.Equal(t, 1, sim.Calls()["hbr.CreatePolicyBindings"], "exactly one request: no SDK retries")
		})
	}
}

func TestDescribePolicyBindingsErrors(t *testing.T) {
	sim, _, _, base := startSim(t)
	sim.SetFaults(hbrsim.Faults{ThrottleNext: 1})
	_, err := newClient(t, base, goodCred).DescribePolicyBindings(context.Background(), []string{"i-a"})
	assertFault(t, err, "hbr.DescribePolicyBindings", fault.Retryable, "Throttling.User")
}

func TestPolicyBindingWire(t *testing.T) {
	sim, _, rec, base := startSim(t)
	sim.AddPolicy("po-0001abc")
	c, err := hbr.New(hbr.Config{Region: "cn-hangzhou", Endpoint: base,
		CrossAccountType: "CROSS_ACCOUNT", CrossAccountUserID: 1234567890123, CrossAccountRoleName: "HbrRole"}, goodCred)
	require.NoError(t, err)
	ctx := context.Background()

	require.NoError(t, c.CreatePolicyBindings(ctx, "po-0001abc", []string{"i-a", "i-b"}))
	bind := rec.Last(t)
	assert.Equal(t, "POST", bind.Method)
	assert.Equal(t, "CreatePolicyBindings", bind.Query.Get("Action"))
	assert.Equal(t, "2017-09-08", bind.Query.Get("Version"))
	assert.Equal(t, "po-0001abc", bind.Form.Get("PolicyId"), "PolicyId in the form body")
	assert.False(t, bind.Query.Has("PolicyId"))
	assert.JSONEq(t, `[
		{"SourceType":"ECS_FILE","DataSourceId":"i-a","CrossAccountType":"CROSS_ACCOUNT","CrossAccountUserId":1234567890123,"CrossAccountRoleName":"HbrRole"},
		{"SourceType":"ECS_FILE","DataSourceId":"i-b","CrossAccountType":"CROSS_ACCOUNT","CrossAccountUserId":1234567890123,"CrossAccountRoleName":"HbrRole"}
	]`, bind.Query.Get("PolicyBindingList"), "PolicyBindingList: one query parameter holding the JSON array")
	assert.False(t, bind.Query.Has("PolicyBindingList.1.SourceType"))

	_, err = c.DescribePolicyBindings(ctx, []string{"i-a"})
	require.NoError(t, err)
	list := rec.Last(t)
	assert.Equal(t, "DescribePolicyBindings", list.Query.Get("Action"))
	assert.Equal(t, `["i-a"]`, list.Form.Get("DataSourceIds"), "DataSourceIds in the form body")
	assert.Equal(t, "100", list.Form.Get("MaxResults"))
	assert.False(t, list.Form.Has("NextToken"))
	assert.False(t, list.Query.Has("SourceType"), "no SourceType: a binding of any type counts")

	plain := newClient(t, base, goodCred)
	require.NoError(t, plain.CreatePolicyBindings(ctx, "po-0001abc", []string{"i-c"}))
	assert.JSONEq(t, `[{"SourceType":"ECS_FILE","DataSourceId":"i-c"}]`, rec.Last(t).Query.Get("PolicyBindingList"),
		"cross-account fields only when configured")
}

func TestDescribePolicyBindingsFollowsPages(t *testing.T) {
	var mu sync.Mutex
	var tokens []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, r.ParseForm())
		mu.Lock()
		tok := r.PostForm.Get("NextToken")
		tokens = append(tokens, tok)
		mu.Unlock()
		switch tok {
		case "":
			io.WriteString(w, `{"Success":true,"NextToken":"p2","PolicyBindings":[{"PolicyId":"po-a","DataSourceId":"i-a"},{"PolicyId":"po-x","DataSourceId":"i-unasked"}]}`)
		case "p2":
			io.WriteString(w, `{"Success":true,"NextToken":"","PolicyBindings":[{"PolicyId":"po-b","DataSourceId":"i-b"},{"PolicyId":"po-c","DataSourceId":"i-a"}]}`)
		}
	}))
	t.Cleanup(ts.Close)
	got, err := newClient(t, ts.URL, goodCred).DescribePolicyBindings(context.Background(), []string{"i-a", "i-b"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"i-a": "po-a", "i-b": "po-b"}, got, "first binding listed wins; unasked ones are dropped")
	assert.Equal(t, []string{"", "p2"}, tokens)
}

func TestDescribePolicyBindingsIsBounded(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		fmt.Fprintf(w, `{"Success":true,"NextToken":"t%d","PolicyBindings":[{"PolicyId":"po-a","DataSourceId":"i-a"}]}`, n)
	}))
	t.Cleanup(ts.Close)
	_, err := newClient(t, ts.URL, goodCred).DescribePolicyBindings(context.Background(), []string{"i-a"})
	assertFault(t, err, "hbr.DescribePolicyBindings", fault.Permanent, "")
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 10, calls)
}

func TestPolicyBindingArgumentsMakeNoCall(t *testing.T) {
	sim, _, _, base := startSim(t)
	c := newClient(t, base, goodCred)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		op   string
	}{
		{"empty policy", func() error { return c.CreatePolicyBindings(ctx, "", []string{"i-a"}) }, "hbr.CreatePolicyBindings"},
		{"policy without prefix", func() error { return c.CreatePolicyBindings(ctx, "abc", []string{"i-a"}) }, "hbr.CreatePolicyBindings"},
		{"policy with quote", func() error { return c.CreatePolicyBindings(ctx, `po-a"`, []string{"i-a"}) }, "hbr.CreatePolicyBindings"},
		{"policy prefix only", func() error { return c.CreatePolicyBindings(ctx, "po-", []string{"i-a"}) }, "hbr.CreatePolicyBindings"},
		{"no ids", func() error { return c.CreatePolicyBindings(ctx, "po-a", nil) }, "hbr.CreatePolicyBindings"},
		{"hostile id", func() error { return c.CreatePolicyBindings(ctx, "po-a", []string{`i-a"}`}) }, "hbr.CreatePolicyBindings"},
		{"101 ids", func() error { return c.CreatePolicyBindings(ctx, "po-a", make([]string, 101)) }, "hbr.CreatePolicyBindings"},
		{"describe no ids", func() error { _, err := c.DescribePolicyBindings(ctx, nil); return err }, "hbr.DescribePolicyBindings"},
		{"describe bad id", func() error { _, err := c.DescribePolicyBindings(ctx, []string{"i a"}); return err }, "hbr.DescribePolicyBindings"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assertFault(t, tc.call(), tc.op, fault.Invalid, "")
		})
	}
	assert.Empty(t, sim.Calls())
}

func TestValidPolicyID(t *testing.T) {
	for id, want := range map[string]bool{
		"po-000abc123": true, "po-A1": true, "po-" + strings.Repeat("a", 61): true,
		"po-": false, "po-a-b": false, "PO-abc": false, "po-a\n": false, "": false, "po-" + strings.Repeat("a", 62): false,
	} {
		assert.Equal(t, want, hbr.ValidPolicyID(id), "%q", id)
	}
}

// raceBinder is the real client, with a hook run once right after the
// first DescribePolicyBindings call: someone else binding an instance
// between the step's listing and its binding.
type raceBinder struct {
	*hbr.Client
	once  sync.Once
	after func()
}

func (r *raceBinder) DescribePolicyBindings(ctx context.Context, ids []string) (map[string]string, error) {
	got, err := r.Client.DescribePolicyBindings(ctx, ids)
	if r.after != nil {
		r.once.Do(r.after)
	}
	return got, err
}

// TestProtectOverTheWire runs the binding step on the real client against
// the emulator: HBR's refusals end as per-instance verdicts.
func TestProtectOverTheWire(t *testing.T) {
	tests := []struct {
		name        string
		policy      string
		setup       func(sim *hbrsim.Server)
		race        func(sim *hbrsim.Server)
		targets     []protect.Target
		want        []string // "id VERDICT policy code"
		wantCreates int
		wantBound   map[string]string
	}{
		{
			name:        "re-bound to this policy between listing and binding",
			policy:      "po-a",
			race:        func(s *hbrsim.Server) { s.Bind("i-a", "po-a", hbr.SourceECSFile, t0) },
			targets:     []protect.Target{{InstanceID: "i-a"}},
			want:        []string{"i-a ALREADY_PROTECTED po-a "},
			wantCreates: 1,
			wantBound:   map[string]string{"i-a": "po-a"},
		},
		{
			name:        "bound elsewhere between listing and binding fails no other",
			policy:      "po-a",
			race:        func(s *hbrsim.Server) { s.Bind("i-b", "po-other", hbr.SourceECSFile, t0) },
			targets:     []protect.Target{{InstanceID: "i-a"}, {InstanceID: "i-b"}, {InstanceID: "i-c"}},
			want:        []string{"i-a PROTECTED po-a ", "i-b ALREADY_PROTECTED po-other ", "i-c PROTECTED po-a "},
			wantCreates: 2,
			wantBound:   map[string]string{"i-a": "po-a", "i-b": "po-other", "i-c": "po-a"},
		},
		{
			name:        "fresh and bound to this policy already",
			policy:      "po-a",
			setup:       func(s *hbrsim.Server) { s.Bind("i-b", "po-a", hbr.SourceECSFile, t0) },
			targets:     []protect.Target{{InstanceID: "i-a", Fresh: true}, {InstanceID: "i-b", Fresh: true}, {InstanceID: "i-c", Fresh: true}},
			want:        []string{"i-a PROTECTED po-a ", "i-b ALREADY_PROTECTED po-a ", "i-c PROTECTED po-a "},
			wantCreates: 2,
			wantBound:   map[string]string{"i-a": "po-a", "i-b": "po-a", "i-c": "po-a"},
		},
		{
			name:        "fresh and alone, bound to this policy already",
			policy:      "po-a",
			setup:       func(s *hbrsim.Server) { s.Bind("i-a", "po-a", hbr.SourceECSFile, t0) },
			targets:     []protect.Target{{InstanceID: "i-a", Fresh: true}},
			want:        []string{"i-a ALREADY_PROTECTED po-a "},
			wantCreates: 1,
			wantBound:   map[string]string{"i-a": "po-a"},
		},
		{
			name:        "an unknown policy is refused in one call",
			policy:      "po-gone",
			targets:     []protect.Target{{InstanceID: "i-a", Fresh: true}, {InstanceID: "i-b", Fresh: true}},
			want:        []string{"i-a BIND_FAILED po-gone " + hbrsim.PolicyNotFoundCode, "i-b BIND_FAILED po-gone " + hbrsim.PolicyNotFoundCode},
			wantCreates: 1,
			wantBound:   map[string]string{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, _, _, base := startSim(t)
			sim.AddPolicy("po-a", "po-other")
			if tc.setup != nil {
				tc.setup(sim)
			}
			b := &raceBinder{Client: newClient(t, base, goodCred)}
			if tc.race != nil {
				b.after = func() { tc.race(sim) }
			}
			settings, err := protect.Parse(tc.policy, "")
			require.NoError(t, err)
			s := &protect.Service{Settings: settings, HBR: func(context.Context, string) (protect.Binder, error) { return b, nil }}

			got := s.Protect(context.Background(), "cn-hangzhou", tc.targets)
			var verdicts []string
			for _, r := range got {
				verdicts = append(verdicts, fmt.Sprintf("%s %s %s %s", r.Target.InstanceID, r.Verdict, r.PolicyID, r.Code))
				if r.Verdict == protect.BindFailed {
					assertFault(t, r.Err, "hbr.CreatePolicyBindings", fault.Permanent, r.Code)
				}
			}
			assert.Equal(t, tc.want, verdicts)
			assert.Equal(t, tc.wantCreates, sim.Calls()["hbr.CreatePolicyBindings"])
			assert.Equal(t, tc.wantBound, sim.Bindings())
		})
	}
}
