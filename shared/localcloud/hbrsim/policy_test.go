package hbrsim_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
)

// bindList is a PolicyBindingList of ECS_FILE items for ids.
func bindList(t *testing.T, ids ...string) string {
	t.Helper()
	items := make([]map[string]string, 0, len(ids))
	for _, id := range ids {
		items = append(items, map[string]string{"SourceType": "ECS_FILE", "DataSourceId": id})
	}
	data, err := json.Marshal(items)
	require.NoError(t, err)
	return string(data)
}

func (r *rig) bind(policy string, ids ...string) reply {
	r.t.Helper()
	return r.call("CreatePolicyBindings", map[string]string{"PolicyBindingList": bindList(r.t, ids...)},
		map[string]string{"PolicyId": policy}, nil)
}

func TestCreatePolicyBindings(t *testing.T) {
	r := newRig(t)
	r.sim.AddPolicy("po-a", "po-b")

	got := r.bind("po-a", "i-1", "i-2")
	require.Equal(t, 200, got.Status, got.Body)
	assert.Equal(t, true, got.Body["Success"])
	assert.Equal(t, map[string]string{"i-1": "po-a", "i-2": "po-a"}, r.sim.Bindings())

	fresh := r.bind("po-a", "i-3", "i-3")
	require.Equal(t, 200, fresh.Status, "a data source listed twice in one call is bound once: %v", fresh.Body)
	assert.Equal(t, map[string]string{"i-1": "po-a", "i-2": "po-a", "i-3": "po-a"}, r.sim.Bindings())

	other := r.bind("po-b", "i-4", "i-1")
	assert.Equal(t, 400, other.Status)
	assert.Equal(t, hbrsim.BoundElsewhereCode, other.Code())
	assert.Contains(t, other.Body["Message"], "i-1")
	assert.NotContains(t, r.sim.Bindings(), "i-4", "a rejected call binds nothing")

	unknown := r.bind("po-nope", "i-5")
	assert.Equal(t, 404, unknown.Status)
	assert.Equal(t, hbrsim.PolicyNotFoundCode, unknown.Code())
	assert.NotContains(t, r.sim.Bindings(), "i-5")

	assert.Equal(t, 4, r.sim.Calls()["hbr.CreatePolicyBindings"])
	assert.Equal(t, map[string]string{"i-1": "po-a", "i-2": "po-a", "i-3": "po-a"}, r.sim.Bindings())
	list := r.sim.BindingList()
	require.Len(t, list, 3)
	assert.Equal(t, hbrsim.Binding{PolicyID: "po-a", DataSourceID: "i-1", SourceType: "ECS_FILE", Created: t0}, list[0])
}

// TestRepeatedBinding: HBR documents that binding a data source again to the
// policy it is bound to fails with PolicyAlreadyBoundWithThisDataSource
// (HTTP 400); the emulator must not accept it silently.
func TestRepeatedBinding(t *testing.T) {
	tests := []struct {
		name     string
		policy   string
		ids      []string
		wantHTTP int
		wantCode string
	}{
		{name: "same policy", policy: "po-a", ids: []string{"i-1"}, wantHTTP: 400, wantCode: hbrsim.AlreadyBoundCode},
		{name: "same policy among new ones", policy: "po-a", ids: []string{"i-new", "i-1"}, wantHTTP: 400, wantCode: hbrsim.AlreadyBoundCode},
		{name: "other policy", policy: "po-b", ids: []string{"i-1"}, wantHTTP: 400, wantCode: hbrsim.BoundElsewhereCode},
		{name: "first bad item decides", policy: "po-b", ids: []string{"i-other", "i-1"}, wantHTTP: 400, wantCode: hbrsim.AlreadyBoundCode},
		{name: "new only", policy: "po-a", ids: []string{"i-new"}, wantHTTP: 200, wantCode: "200"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.sim.AddPolicy("po-a", "po-b")
			r.sim.Bind("i-1", "po-a", "ECS_FILE", t0)
			r.sim.Bind("i-other", "po-b", "ECS_FILE", t0)

			got := r.bind(tc.policy, tc.ids...)
			assert.Equal(t, tc.wantHTTP, got.Status, got.Body)
			assert.Equal(t, tc.wantCode, got.Code())
			if tc.wantHTTP != 200 {
				assert.NotContains(t, r.sim.Bindings(), "i-new", "a rejected call binds nothing")
			}
			assert.Equal(t, "po-a", r.sim.Bindings()["i-1"], "an existing binding is never replaced")
		})
	}
}

func TestPolicyBindingValidation(t *testing.T) {
	many := make([]string, hbrsim.MaxBindingItems+1)
	for i := range many {
		many[i] = fmt.Sprintf(`{"SourceType":"ECS_FILE","DataSourceId":"i-%d"}`, i)
	}
	tests := []struct {
		name     string
		action   string
		query    map[string]string
		form     map[string]string
		wantHTTP int
		wantCode string
	}{
		{"bind without policy", "CreatePolicyBindings", map[string]string{"PolicyBindingList": `[{"SourceType":"ECS_FILE","DataSourceId":"i-a"}]`}, nil, 400, "MissingParameter"},
		{"bind without list", "CreatePolicyBindings", nil, map[string]string{"PolicyId": "po-a"}, 400, "MissingParameter"},
		{"bind list not json", "CreatePolicyBindings", map[string]string{"PolicyBindingList": "i-a"}, map[string]string{"PolicyId": "po-a"}, 400, "InvalidParameter"},
		{"bind flat ids", "CreatePolicyBindings", map[string]string{"PolicyBindingList": `["i-a"]`}, map[string]string{"PolicyId": "po-a"}, 400, "InvalidParameter"},
		{"bind empty list", "CreatePolicyBindings", map[string]string{"PolicyBindingList": `[]`}, map[string]string{"PolicyId": "po-a"}, 400, "InvalidParameter"},
		{"bind too many", "CreatePolicyBindings", map[string]string{"PolicyBindingList": "[" + strings.Join(many, ",") + "]"}, map[string]string{"PolicyId": "po-a"}, 400, "InvalidParameter"},
		{"bind without source type", "CreatePolicyBindings", map[string]string{"PolicyBindingList": `[{"DataSourceId":"i-a"}]`}, map[string]string{"PolicyId": "po-a"}, 400, "MissingParameter"},
		{"bind unknown source type", "CreatePolicyBindings", map[string]string{"PolicyBindingList": `[{"SourceType":"DISK","DataSourceId":"i-a"}]`}, map[string]string{"PolicyId": "po-a"}, 400, "InvalidParameter"},
		{"bind mixed source types", "CreatePolicyBindings", map[string]string{"PolicyBindingList": `[{"SourceType":"ECS_FILE","DataSourceId":"i-a"},{"SourceType":"UDM_ECS","DataSourceId":"i-b"}]`}, map[string]string{"PolicyId": "po-a"}, 400, "InvalidParameter"},
		{"bind without data source", "CreatePolicyBindings", map[string]string{"PolicyBindingList": `[{"SourceType":"ECS_FILE"}]`}, map[string]string{"PolicyId": "po-a"}, 400, "MissingParameter"},
		{"bind bad cross type", "CreatePolicyBindings", map[string]string{"PolicyBindingList": `[{"SourceType":"ECS_FILE","DataSourceId":"i-a","CrossAccountType":"X"}]`}, map[string]string{"PolicyId": "po-a"}, 400, "InvalidParameter"},
		{"bind ok", "CreatePolicyBindings", map[string]string{"PolicyBindingList": `[{"SourceType":"ECS_FILE","DataSourceId":"i-a"}]`}, map[string]string{"PolicyId": "po-a"}, 200, "200"},
		{"list results 9", "DescribePolicyBindings", nil, map[string]string{"MaxResults": "9"}, 400, "InvalidParameter"},
		{"list results 101", "DescribePolicyBindings", nil, map[string]string{"MaxResults": "101"}, 400, "InvalidParameter"},
		{"list bad token", "DescribePolicyBindings", nil, map[string]string{"NextToken": "zzz"}, 400, "InvalidParameter"},
		{"list bad ids", "DescribePolicyBindings", nil, map[string]string{"DataSourceIds": "i-a"}, 400, "InvalidParameter"},
		{"list bad source type", "DescribePolicyBindings", map[string]string{"SourceType": "DISK"}, nil, 400, "InvalidParameter"},
		{"list all", "DescribePolicyBindings", nil, nil, 200, "200"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.sim.AddPolicy("po-a")
			got := r.call(tc.action, tc.query, tc.form, nil)
			assert.Equal(t, tc.wantHTTP, got.Status, got.Body)
			assert.Equal(t, tc.wantCode, got.Code())
			assert.IsType(t, "", got.Body["Message"])
		})
	}
}

func TestDescribePolicyBindingsFiltersAndPages(t *testing.T) {
	r := newRig(t)
	r.sim.AddPolicy("po-a")
	var ids []string
	for i := range 25 {
		ids = append(ids, fmt.Sprintf("i-%02d", i))
	}
	require.Equal(t, 200, r.bind("po-a", ids...).Status)
	r.sim.Bind("i-other", "po-b", "UDM_ECS", t0)

	var got []string
	token := ""
	pages := 0
	for {
		form := map[string]string{"MaxResults": "10", "PolicyId": "po-a"}
		if token != "" {
			form["NextToken"] = token
		}
		rep := r.call("DescribePolicyBindings", nil, form, nil)
		require.Equal(t, 200, rep.Status, rep.Body)
		pages++
		assert.EqualValues(t, 25, rep.Body["TotalCount"])
		for _, b := range rep.Body["PolicyBindings"].([]any) {
			m := b.(map[string]any)
			assert.Equal(t, "po-a", m["PolicyId"])
			assert.Equal(t, "ECS_FILE", m["SourceType"])
			assert.Regexp(t, `^pd-`, m["PolicyBindingId"])
			got = append(got, m["DataSourceId"].(string))
		}
		token, _ = rep.Body["NextToken"].(string)
		if token == "" {
			break
		}
	}
	assert.Equal(t, 3, pages)
	assert.Equal(t, ids, got)

	rep := r.call("DescribePolicyBindings", map[string]string{"SourceType": "UDM_ECS"},
		map[string]string{"DataSourceIds": `["i-other","i-00","i-none"]`}, nil)
	require.Equal(t, 200, rep.Status, rep.Body)
	list := rep.Body["PolicyBindings"].([]any)
	require.Len(t, list, 1)
	assert.Equal(t, "po-b", list[0].(map[string]any)["PolicyId"])
	assert.NotContains(t, rep.Body, "NextToken")
}
