package ecssim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ecssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim/rpcsimtest"
)

const testAK, testSecret = rpcsimtest.AccessKeyID, rpcsimtest.AccessKeySecret

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// rig is an emulator behind httptest plus a signing raw client.
type rig struct {
	t      *testing.T
	sim    *ecssim.Server
	caller *rpcsimtest.Caller
}

func newRig(t *testing.T) *rig {
	t.Helper()
	sim := ecssim.New(ecssim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret, Now: func() time.Time { return t0 }, Seed: 2})
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	return &rig{t: t, sim: sim, caller: &rpcsimtest.Caller{URL: ts.URL, Version: ecssim.Version, AccessKeyID: testAK, AccessKeySecret: testSecret}}
}

type reply = rpcsimtest.Reply

// call sends a signed POST with the action's params in the query; a param
// set to "<omit>" is removed (RegionId, say). tamper edits the query after
// signing.
func (r *rig) call(action string, params map[string]string, tamper func(url.Values)) reply {
	r.t.Helper()
	return r.caller.Call(r.t, action, params, nil, tamper)
}

// instanceIDs lists the InstanceId values of a DescribeInstances reply.
func instanceIDs(t *testing.T, rep reply) []string {
	t.Helper()
	require.Equal(t, http.StatusOK, rep.Status, "%v", rep.Body)
	list := rep.Body["Instances"].(map[string]any)["Instance"].([]any)
	out := []string{}
	for _, it := range list {
		out = append(out, it.(map[string]any)["InstanceId"].(string))
	}
	return out
}

func (r *rig) seed(n int, mk func(i int) ecssim.Instance) {
	for i := range n {
		r.sim.SetInstance(mk(i))
	}
}

func TestDescribeInstancesPagingAndFilters(t *testing.T) {
	r := newRig(t)
	r.seed(25, func(i int) ecssim.Instance {
		in := ecssim.Instance{ID: fmt.Sprintf("i-%02d", i), VpcID: "vpc-even", ResourceGroupID: "rg-1"}
		if i%2 == 1 {
			in.VpcID, in.Status = "vpc-odd", ecssim.StatusStopped
		}
		return in
	})
	r.sim.SetInstance(ecssim.Instance{ID: "i-bj", RegionID: "cn-beijing"})

	tests := []struct {
		name      string
		params    map[string]string
		wantIDs   []string
		wantTotal float64
		wantNext  bool
	}{
		{name: "default page", params: nil, wantTotal: 25,
			wantIDs: []string{"i-00", "i-01", "i-02", "i-03", "i-04", "i-05", "i-06", "i-07", "i-08", "i-09"}},
		{name: "page 3 of 10", params: map[string]string{"PageNumber": "3", "PageSize": "10"}, wantTotal: 25,
			wantIDs: []string{"i-20", "i-21", "i-22", "i-23", "i-24"}},
		{name: "page past the end", params: map[string]string{"PageNumber": "9", "PageSize": "10"}, wantTotal: 25, wantIDs: []string{}},
		{name: "ids filter", params: map[string]string{"InstanceIds": `["i-03","i-nope","i-01","i-bj"]`}, wantTotal: 2,
			wantIDs: []string{"i-01", "i-03"}},
		{name: "status filter", params: map[string]string{"Status": "Stopped", "PageSize": "3"}, wantTotal: 12,
			wantIDs: []string{"i-01", "i-03", "i-05"}},
		{name: "vpc filter", params: map[string]string{"VpcId": "vpc-even", "MaxResults": "2"}, wantTotal: 13,
			wantIDs: []string{"i-00", "i-02"}, wantNext: true},
		{name: "resource group filter", params: map[string]string{"ResourceGroupId": "rg-2"}, wantTotal: 0, wantIDs: []string{}},
		{name: "other region", params: map[string]string{"RegionId": "cn-beijing"}, wantTotal: 1, wantIDs: []string{"i-bj"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := r.call("DescribeInstances", tc.params, nil)
			assert.Equal(t, tc.wantIDs, instanceIDs(t, rep))
			assert.Equal(t, tc.wantTotal, rep.Body["TotalCount"])
			assert.Equal(t, tc.wantNext, rep.Body["NextToken"] != "")
			assert.Equal(t, true, rep.Body["Success"])
		})
	}

	// Follow NextToken to the end.
	var got []string
	token := ""
	for range 10 {
		params := map[string]string{"MaxResults": "7"}
		if token != "" {
			params["NextToken"] = token
		}
		rep := r.call("DescribeInstances", params, nil)
		got = append(got, instanceIDs(t, rep)...)
		if token = rep.Body["NextToken"].(string); token == "" {
			break
		}
	}
	assert.Len(t, got, 25)
	assert.Equal(t, "i-00", got[0])
	assert.Equal(t, "i-24", got[24])
}

func TestDescribeInstancesFields(t *testing.T) {
	r := newRig(t)
	r.sim.SetInstance(ecssim.Instance{ID: "i-a", Name: "db", VpcID: "vpc-1", ResourceGroupID: "rg-1", OSType: "windows",
		Tags: map[string]string{"b": "2", "a": "1"}})
	rep := r.call("DescribeInstances", map[string]string{"InstanceIds": `["i-a"]`}, nil)
	require.Equal(t, http.StatusOK, rep.Status)
	in := rep.Body["Instances"].(map[string]any)["Instance"].([]any)[0].(map[string]any)
	assert.Equal(t, "Running", in["Status"])
	assert.Equal(t, "windows", in["OSType"])
	assert.Equal(t, "rg-1", in["ResourceGroupId"])
	assert.Equal(t, "db", in["InstanceName"])
	assert.Equal(t, "vpc", in["InstanceNetworkType"])
	assert.Equal(t, "2026-03-01T12:00Z", in["CreationTime"])
	assert.Equal(t, "vpc-1", in["VpcAttributes"].(map[string]any)["VpcId"])
	assert.Equal(t, []any{
		map[string]any{"TagKey": "a", "TagValue": "1"},
		map[string]any{"TagKey": "b", "TagValue": "2"},
	}, in["Tags"].(map[string]any)["Tag"])
}

func TestBadRequests(t *testing.T) {
	r := newRig(t)
	r.sim.SetInstance(ecssim.Instance{ID: "i-a"})
	var tooMany []string
	for i := range 101 {
		tooMany = append(tooMany, fmt.Sprintf("i-%d", i))
	}
	many, err := json.Marshal(tooMany)
	require.NoError(t, err)
	tags := map[string]string{"ResourceType": "instance", "ResourceId.1": "i-a"}
	for i := 1; i <= 21; i++ {
		tags["Tag."+strconv.Itoa(i)+".Key"] = fmt.Sprintf("k%d", i)
	}
	assistant := map[string]string{}
	for i := 1; i <= 51; i++ {
		assistant["InstanceId."+strconv.Itoa(i)] = fmt.Sprintf("i-%d", i)
	}
	resources := map[string]string{"ResourceType": "instance", "Tag.1.Key": "k"}
	for i := 1; i <= 51; i++ {
		resources["ResourceId."+strconv.Itoa(i)] = fmt.Sprintf("i-%d", i)
	}

	tests := []struct {
		name       string
		action     string
		params     map[string]string
		wantStatus int
		wantCode   string
	}{
		{"ids not json", "DescribeInstances", map[string]string{"InstanceIds": "i-a,i-b"}, 400, "InvalidParameter"},
		{"101 ids", "DescribeInstances", map[string]string{"InstanceIds": string(many)}, 400, "InvalidParameter"},
		{"empty id", "DescribeInstances", map[string]string{"InstanceIds": `["i-a",""]`}, 400, "InvalidParameter"},
		{"bad status", "DescribeInstances", map[string]string{"Status": "running"}, 400, "InvalidParameter"},
		{"bad page size", "DescribeInstances", map[string]string{"PageSize": "101"}, 400, "InvalidParameter"},
		{"bad max results", "DescribeInstances", map[string]string{"MaxResults": "0"}, 400, "InvalidParameter"},
		{"forged token", "DescribeInstances", map[string]string{"NextToken": "i-a"}, 400, "InvalidParameter"},
		{"no region", "DescribeInstances", map[string]string{"RegionId": "<omit>"}, 400, "MissingParameter"},
		{"no resource type", "TagResources", map[string]string{"ResourceId.1": "i-a", "Tag.1.Key": "k"}, 400, "MissingParameter"},
		{"disk resource", "TagResources", map[string]string{"ResourceType": "disk", "ResourceId.1": "d-a", "Tag.1.Key": "k"}, 404, ecssim.CodeResourceTypeNotFound},
		{"no resource", "TagResources", map[string]string{"ResourceType": "instance", "Tag.1.Key": "k"}, 400, "MissingParameter"},
		{"no tag", "TagResources", map[string]string{"ResourceType": "instance", "ResourceId.1": "i-a"}, 400, "MissingParameter"},
		{"21 tags", "TagResources", tags, 400, "InvalidParameter"},
		{"51 resources", "TagResources", resources, 400, "InvalidParameter"},
		{"empty key", "TagResources", map[string]string{"ResourceType": "instance", "ResourceId.1": "i-a", "Tag.1.Key": ""}, 400, ecssim.CodeTagKey},
		{"aliyun key", "TagResources", map[string]string{"ResourceType": "instance", "ResourceId.1": "i-a", "Tag.1.Key": "aliyun:x"}, 400, ecssim.CodeTagKey},
		{"url value", "TagResources", map[string]string{"ResourceType": "instance", "ResourceId.1": "i-a", "Tag.1.Key": "k", "Tag.1.Value": "http://x"}, 400, ecssim.CodeTagValue},
		{"51 assistant ids", "DescribeCloudAssistantStatus", assistant, 400, "InvalidParameter"},
		{"unknown action", "RunInstances", nil, 404, "InvalidAction.NotFound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := r.call(tc.action, tc.params, nil)
			assert.Equal(t, tc.wantStatus, rep.Status, "%v", rep.Body)
			assert.Equal(t, tc.wantCode, rep.Code())
			assert.NotEmpty(t, rep.Body["RequestId"])
			assert.NotEmpty(t, rep.Body["Message"])
		})
	}
	assert.Empty(t, r.sim.Tags("i-a"), "no rejected call wrote a tag")
}

func TestTagResourcesIsAllOrNothing(t *testing.T) {
	r := newRig(t)
	r.sim.SetInstances(ecssim.Instance{ID: "i-a"}, ecssim.Instance{ID: "i-full", Tags: map[string]string{}})
	for i := range ecssim.MaxTagsPerInstance {
		rep := r.call("TagResources", map[string]string{"ResourceType": "instance", "ResourceId.1": "i-full",
			"Tag.1.Key": fmt.Sprintf("k%d", i), "Tag.1.Value": "v"}, nil)
		require.Equal(t, http.StatusOK, rep.Status)
	}

	rep := r.call("TagResources", map[string]string{"ResourceType": "instance", "ResourceId.1": "i-a", "ResourceId.2": "i-gone", "Tag.1.Key": "k"}, nil)
	assert.Equal(t, http.StatusNotFound, rep.Status)
	assert.Equal(t, ecssim.CodeResourceNotFound, rep.Code())
	assert.Empty(t, r.sim.Tags("i-a"))

	rep = r.call("TagResources", map[string]string{"ResourceType": "instance", "ResourceId.1": "i-a", "ResourceId.2": "i-full", "Tag.1.Key": "new"}, nil)
	assert.Equal(t, http.StatusBadRequest, rep.Status)
	assert.Equal(t, ecssim.CodeTagCount, rep.Code())
	assert.Empty(t, r.sim.Tags("i-a"))

	rep = r.call("TagResources", map[string]string{"ResourceType": "instance", "ResourceId.1": "i-a", "ResourceId.2": "i-full",
		"Tag.1.Key": "k3", "Tag.1.Value": "x", "Tag.2.Key": "k3", "Tag.2.Value": "y"}, nil)
	require.Equal(t, http.StatusOK, rep.Status, "overwriting an existing key stays within the limit")
	assert.Equal(t, map[string]string{"k3": "y"}, r.sim.Tags("i-a"))
	assert.Equal(t, "y", r.sim.Tags("i-full")["k3"])

	rep = r.call("TagResources", map[string]string{"RegionId": "cn-beijing", "ResourceType": "instance", "ResourceId.1": "i-a", "Tag.1.Key": "k"}, nil)
	assert.Equal(t, ecssim.CodeResourceNotFound, rep.Code(), "instances are regional")
}

func TestDescribeCloudAssistantStatusListing(t *testing.T) {
	r := newRig(t)
	r.seed(12, func(i int) ecssim.Instance {
		in := ecssim.Instance{ID: fmt.Sprintf("i-%02d", i)}
		if i >= 10 {
			in.OSType = "windows"
		}
		if i == 3 {
			in.AssistantReadyAt = t0.Add(time.Second)
		}
		return in
	})
	rep := r.call("DescribeCloudAssistantStatus", map[string]string{"PageSize": "5", "PageNumber": "1"}, nil)
	require.Equal(t, http.StatusOK, rep.Status)
	set := rep.Body["InstanceCloudAssistantStatusSet"].(map[string]any)["InstanceCloudAssistantStatus"].([]any)
	require.Len(t, set, 5)
	assert.Equal(t, float64(12), rep.Body["TotalCount"])
	assert.Equal(t, "true", set[0].(map[string]any)["CloudAssistantStatus"])
	assert.Equal(t, "false", set[3].(map[string]any)["CloudAssistantStatus"])
	assert.Equal(t, "Linux", set[0].(map[string]any)["OSType"])

	rep = r.call("DescribeCloudAssistantStatus", map[string]string{"OSType": "Windows"}, nil)
	set = rep.Body["InstanceCloudAssistantStatusSet"].(map[string]any)["InstanceCloudAssistantStatus"].([]any)
	require.Len(t, set, 2)
	assert.Equal(t, "i-10", set[0].(map[string]any)["InstanceId"])

	ids := map[string]string{}
	for i := range 12 {
		ids["InstanceId."+strconv.Itoa(i+1)] = fmt.Sprintf("i-%02d", i)
	}
	ids["PageSize"] = "1"
	rep = r.call("DescribeCloudAssistantStatus", ids, nil)
	set = rep.Body["InstanceCloudAssistantStatusSet"].(map[string]any)["InstanceCloudAssistantStatus"].([]any)
	assert.Len(t, set, 12, "with InstanceId.N, PageSize does not apply")
}

func TestSignatureIsChecked(t *testing.T) {
	r := newRig(t)
	r.sim.SetInstance(ecssim.Instance{ID: "i-a"})
	rep := r.call("TagResources", map[string]string{"ResourceType": "instance", "ResourceId.1": "i-a", "Tag.1.Key": "k"},
		func(q url.Values) { q.Set("ResourceId.1", "i-b") })
	assert.Equal(t, http.StatusBadRequest, rep.Status)
	assert.Equal(t, "SignatureDoesNotMatch", rep.Code())
	assert.Empty(t, r.sim.Tags("i-a"))
}

func TestStateAccessors(t *testing.T) {
	clk := t0
	sim := ecssim.New(ecssim.Options{Now: func() time.Time { return clk }})
	sim.SetInstance(ecssim.Instance{ID: "i-a", Tags: map[string]string{"k": "v"}})
	sim.SetInstance(ecssim.Instance{}) // ignored: no ID

	in, ok := sim.Instance("i-a")
	require.True(t, ok)
	assert.Equal(t, ecssim.Instance{ID: "i-a", RegionID: ecssim.DefaultRegion, Status: "Running", OSType: "linux",
		Tags: map[string]string{"k": "v"}, Created: t0}, in)
	in.Tags["k"] = "mutated"
	assert.Equal(t, map[string]string{"k": "v"}, sim.Tags("i-a"), "copies out")

	clk = t0.Add(time.Hour)
	sim.SetInstance(ecssim.Instance{ID: "i-a", Name: "renamed"})
	in, _ = sim.Instance("i-a")
	assert.Equal(t, t0, in.Created, "a replaced instance keeps its creation time")
	assert.Nil(t, in.Tags)

	assert.True(t, sim.SetStatus("i-a", ecssim.StatusStopped))
	assert.False(t, sim.SetStatus("i-b", ecssim.StatusStopped))
	assert.Len(t, sim.Instances(), 1)
	sim.RemoveInstance("i-a")
	_, ok = sim.Instance("i-a")
	assert.False(t, ok)
	assert.Nil(t, sim.Tags("i-a"))
}

func TestStartServesTheRealAdapterAndHooks(t *testing.T) {
	sim := ecssim.New(ecssim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret, Region: "ap-southeast-1"})
	base, err := sim.Start()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, sim.Close()) })
	_, err = sim.Start()
	assert.Error(t, err, "one listener per server")

	var mu sync.Mutex
	var calls []ecssim.Call
	sim.OnCall(func(c ecssim.Call) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, c)
	})
	sim.SetInstance(ecssim.Instance{ID: "i-sg"})

	c, err := ecs.New(ecs.Config{Region: "ap-southeast-1", Endpoint: base}, cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: testSecret})
	require.NoError(t, err)
	require.NoError(t, c.TagInstance(context.Background(), "i-sg", "backup", "on"))
	got, err := c.DescribeInstances(context.Background(), []string{"i-sg"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, map[string]string{"backup": "on"}, got[0].Tags)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, calls, 2)
	assert.Equal(t, "TagResources", calls[0].Action)
	assert.Equal(t, http.StatusOK, calls[0].Status)
	assert.Equal(t, map[string]int{"ecs.TagResources": 1, "ecs.DescribeInstances": 1}, sim.Calls())
	assert.True(t, strings.HasPrefix(base, "http://127.0.0.1:"))
}
