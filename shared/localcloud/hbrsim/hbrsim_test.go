package hbrsim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim/rpcsimtest"
)

const testAK, testSecret, testToken = rpcsimtest.AccessKeyID, rpcsimtest.AccessKeySecret, rpcsimtest.SecurityToken

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// rig is an emulator behind httptest plus a signing raw client.
type rig struct {
	t      *testing.T
	sim    *hbrsim.Server
	clock  *rpcsimtest.Clock
	caller *rpcsimtest.Caller
}

func newRig(t *testing.T) *rig {
	t.Helper()
	clk := rpcsimtest.NewClock(t0)
	sim := hbrsim.New(hbrsim.Options{
		AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: testToken,
		Now: clk.Now, Seed: 1,
	})
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	return &rig{t: t, sim: sim, clock: clk, caller: &rpcsimtest.Caller{
		URL: ts.URL, Version: hbrsim.Version, AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: testToken,
	}}
}

type reply = rpcsimtest.Reply

// call sends a signed POST; query and form hold the action's own params.
// tamper, if set, edits the query after signing.
func (r *rig) call(action string, query, form map[string]string, tamper func(url.Values)) reply {
	r.t.Helper()
	return r.caller.Call(r.t, action, query, form, tamper)
}

func (r *rig) install(ids ...string) reply {
	r.t.Helper()
	data, err := json.Marshal(ids)
	require.NoError(r.t, err)
	return r.call("InstallBackupClients", map[string]string{"InstanceIds": string(data)}, nil, nil)
}

func (r *rig) describe(taskID string) reply {
	r.t.Helper()
	return r.call("DescribeTask", map[string]string{"TaskId": taskID}, nil, nil)
}

type result struct {
	InstanceID   string `json:"instanceId"`
	ClientID     string `json:"clientId"`
	ClientStatus string `json:"clientStatus"`
	ErrorCode    string `json:"errorCode"`
}

// results decodes the Result JSON string of a DescribeTask reply.
func results(t *testing.T, r reply) []result {
	t.Helper()
	s, ok := r.Body["Result"].(string)
	require.True(t, ok, "Result must be a JSON string, got %T", r.Body["Result"])
	var out []result
	require.NoError(t, json.Unmarshal([]byte(s), &out), s)
	return out
}

func statuses(r reply) []map[string]any {
	var out []map[string]any
	list, _ := r.Body["InstanceStatuses"].([]any)
	for _, item := range list {
		out = append(out, item.(map[string]any))
	}
	return out
}

func TestTaskLifecycle(t *testing.T) {
	r := newRig(t)
	r.sim.SetDefault(hbrsim.Behavior{InstallDuration: 10 * time.Minute})

	inst := r.install("i-a", "i-b")
	require.Equal(t, 200, inst.Status, inst.Body)
	assert.Equal(t, true, inst.Body["Success"])
	assert.Equal(t, "200", inst.Code())
	taskID, _ := inst.Body["TaskId"].(string)
	assert.Regexp(t, `^t-[a-z0-9]{21}$`, taskID)
	for _, s := range statuses(inst) {
		assert.Equal(t, true, s["ValidInstance"])
		assert.Equal(t, "", s["ErrorCode"])
	}

	tests := []struct {
		at           time.Duration
		wantDesc     string
		wantProgress float64
		wantResult   any // string while running
	}{
		{at: 0, wantDesc: "created", wantProgress: 0, wantResult: ""},
		{at: 5 * time.Minute, wantDesc: "created", wantProgress: 49, wantResult: "{}"},
		{at: 10*time.Minute - time.Second, wantDesc: "created", wantProgress: 98, wantResult: "{}"},
		{at: 10 * time.Minute, wantDesc: "completed", wantProgress: 100},
		{at: time.Hour, wantDesc: "completed", wantProgress: 100},
	}
	for _, tc := range tests {
		r.clock.Set(t0.Add(tc.at))
		d := r.describe(taskID)
		require.Equal(t, 200, d.Status, d.Body)
		assert.Equal(t, tc.wantDesc, d.Body["Description"], "at %v", tc.at)
		assert.Equal(t, tc.wantProgress, d.Body["Progress"], "at %v", tc.at)
		assert.Equal(t, hbrsim.TaskName, d.Body["Name"])
		if tc.wantResult != nil {
			assert.Equal(t, tc.wantResult, d.Body["Result"], "at %v", tc.at)
			assert.Nil(t, d.Body["CompletedTime"], "no CompletedTime while running")
			continue
		}
		assert.Equal(t, float64(t0.Add(10*time.Minute).Unix()), d.Body["CompletedTime"])
		res := results(t, d)
		require.Len(t, res, 2)
		for i, id := range []string{"i-a", "i-b"} {
			assert.Equal(t, id, res[i].InstanceID)
			assert.Equal(t, "ACTIVATED", res[i].ClientStatus)
			assert.Regexp(t, `^c-[a-z0-9]{20}$`, res[i].ClientID)
			assert.Equal(t, "", res[i].ErrorCode)
		}
	}

	tasks := r.sim.Tasks()
	require.Len(t, tasks, 1)
	assert.Equal(t, hbrsim.TaskInfo{ID: taskID, Instances: []string{"i-a", "i-b"}, Created: t0,
		Completed: t0.Add(10 * time.Minute), State: "completed"}, tasks[0])
}

func TestClientsFollowTasks(t *testing.T) {
	r := newRig(t)
	r.sim.SetDefault(hbrsim.Behavior{InstallDuration: time.Minute})
	list := func() map[string]string {
		d := r.call("DescribeBackupClients", map[string]string{"ClientType": "ECS_CLIENT"},
			map[string]string{"InstanceIds": `["i-a","i-b","i-c"]`}, nil)
		require.Equal(t, 200, d.Status, d.Body)
		out := map[string]string{}
		for _, c := range d.Body["Clients"].([]any) {
			m := c.(map[string]any)
			assert.Equal(t, "ECS_CLIENT", m["ClientType"])
			out[m["InstanceId"].(string)] = m["Status"].(string)
		}
		return out
	}
	assert.Empty(t, list(), "no client before any install")
	require.Equal(t, 200, r.install("i-a", "i-b").Status)
	assert.Equal(t, map[string]string{"i-a": "INSTALLING", "i-b": "INSTALLING"}, list())
	r.clock.Set(t0.Add(time.Minute))
	assert.Equal(t, map[string]string{"i-a": "ACTIVATED", "i-b": "ACTIVATED"}, list())
}

func TestInstallStatuses(t *testing.T) {
	tests := []struct {
		name      string
		behaviors map[string]hbrsim.Behavior
		ids       []string
		wait      time.Duration // clock advance before installing (after the instance was first seen)
		wantHTTP  int
		wantCode  string   // top-level code on error
		wantCodes []string // per-instance ErrorCode
		wantTask  bool
	}{
		{name: "gone and invalid alongside a valid one",
			behaviors: map[string]hbrsim.Behavior{"i-gone": {Gone: true}, "i-win": {InvalidCode: "UnsupportedOs"}},
			ids:       []string{"i-ok", "i-gone", "i-win"}, wantHTTP: 200,
			wantCodes: []string{"", "InstanceNotExists", "UnsupportedOs"}, wantTask: true},
		{name: "single not ready is a top-level error",
			behaviors: map[string]hbrsim.Behavior{"i-new": {ReadyAfter: time.Minute}},
			ids:       []string{"i-new"}, wantHTTP: 400, wantCode: "CloudAssistNotRunningOnInstance"},
		{name: "single not running is a top-level error",
			behaviors: map[string]hbrsim.Behavior{"i-new": {ReadyAfter: time.Minute, NotReadyCode: "InstanceNotRunning"}},
			ids:       []string{"i-new"}, wantHTTP: 400, wantCode: "InstanceNotRunning"},
		{name: "two not ready: statuses, no task",
			behaviors: map[string]hbrsim.Behavior{"i-1": {ReadyAfter: time.Minute}, "i-2": {ReadyAfter: time.Minute}},
			ids:       []string{"i-1", "i-2"}, wantHTTP: 200,
			wantCodes: []string{"CloudAssistNotRunningOnInstance", "CloudAssistNotRunningOnInstance"}},
		{name: "single gone: statuses, no task",
			behaviors: map[string]hbrsim.Behavior{"i-gone": {Gone: true}},
			ids:       []string{"i-gone"}, wantHTTP: 200, wantCodes: []string{"InstanceNotExists"}},
		{name: "duplicates are reported once",
			ids: []string{"i-x", "i-x"}, wantHTTP: 200, wantCodes: []string{""}, wantTask: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			for id, b := range tc.behaviors {
				r.sim.SetInstance(id, b)
			}
			got := r.install(tc.ids...)
			require.Equal(t, tc.wantHTTP, got.Status, got.Body)
			if tc.wantCode != "" {
				assert.Equal(t, tc.wantCode, got.Code())
				assert.Empty(t, r.sim.Tasks())
				return
			}
			var codes []string
			for _, s := range statuses(got) {
				codes = append(codes, s["ErrorCode"].(string))
				assert.Equal(t, s["ErrorCode"] == "", s["ValidInstance"])
			}
			assert.Equal(t, tc.wantCodes, codes)
			assert.Equal(t, tc.wantTask, got.Body["TaskId"] != "", "TaskId %v", got.Body["TaskId"])
			assert.Len(t, r.sim.Tasks(), map[bool]int{true: 1}[tc.wantTask])
		})
	}
}

func TestReadyAfterCountsFromFirstSighting(t *testing.T) {
	r := newRig(t)
	r.sim.SetDefault(hbrsim.Behavior{ReadyAfter: 2 * time.Minute})

	assert.Equal(t, "CloudAssistNotRunningOnInstance", r.install("i-a").Code())
	r.clock.Set(t0.Add(time.Minute))
	assert.Equal(t, "CloudAssistNotRunningOnInstance", r.install("i-a").Code())
	r.clock.Set(t0.Add(2 * time.Minute))
	ok := r.install("i-a")
	assert.Equal(t, 200, ok.Status, ok.Body)
	assert.NotEmpty(t, ok.Body["TaskId"])

	// InstanceSeen lets an ECS emulator start the delay at creation time.
	r.sim.InstanceSeen("i-b", t0)
	assert.Equal(t, 200, r.install("i-b").Status)
}

func TestFailInstalls(t *testing.T) {
	r := newRig(t)
	r.sim.SetInstance("i-f", hbrsim.Behavior{FailInstalls: 1, FailCode: "InstallTimeout"})
	r.sim.SetInstance("i-g", hbrsim.Behavior{FailInstalls: 1})

	first := r.install("i-f", "i-g")
	res := results(t, r.describe(first.Body["TaskId"].(string)))
	require.Len(t, res, 2)
	assert.Equal(t, result{InstanceID: "i-f", ClientID: res[0].ClientID, ClientStatus: "INSTALL_FAILED", ErrorCode: "InstallTimeout"}, res[0])
	assert.Equal(t, "ExecutionFailed", res[1].ErrorCode)

	second := r.install("i-f")
	res2 := results(t, r.describe(second.Body["TaskId"].(string)))
	require.Len(t, res2, 1)
	assert.Equal(t, "ACTIVATED", res2[0].ClientStatus)
	assert.Equal(t, res[0].ClientID, res2[0].ClientID, "client ID is stable")
	assert.Equal(t, 2, r.sim.Installs("i-f"))
	assert.Equal(t, 1, r.sim.Installs("i-g"))
	assert.Equal(t, 0, r.sim.Installs("i-none"))
}

func TestTaskEnd(t *testing.T) {
	tests := []struct {
		end          string
		wantProgress float64
		wantSlow     string
	}{
		{end: "expired", wantProgress: -1, wantSlow: "UNKNOWN"},
		{end: "cancelled", wantProgress: 50, wantSlow: "INSTALLING"},
	}
	for _, tc := range tests {
		t.Run(tc.end, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.sim.SetInstance("i-stuck", hbrsim.Behavior{TaskEnd: tc.end, InstallDuration: 15 * time.Minute})
			r.sim.SetInstance("i-fast", hbrsim.Behavior{InstallDuration: time.Minute})
			taskID := r.install("i-fast", "i-stuck").Body["TaskId"].(string)

			r.clock.Set(t0.Add(15*time.Minute - time.Second))
			assert.Equal(t, "created", r.describe(taskID).Body["Description"])

			r.clock.Set(t0.Add(15 * time.Minute))
			d := r.describe(taskID)
			assert.Equal(t, tc.end, d.Body["Description"])
			assert.Equal(t, tc.wantProgress, d.Body["Progress"])
			res := results(t, d)
			require.Len(t, res, 2)
			assert.Equal(t, "ACTIVATED", res[0].ClientStatus)
			assert.Equal(t, tc.wantSlow, res[1].ClientStatus)
			assert.Equal(t, tc.end, r.sim.Tasks()[0].State)
		})
	}
}

func TestValidation(t *testing.T) {
	many := make([]string, 21)
	for i := range many {
		many[i] = fmt.Sprintf(`"i-%d"`, i)
	}
	tests := []struct {
		name     string
		action   string
		query    map[string]string
		form     map[string]string
		wantHTTP int
		wantCode string
	}{
		{"install without ids", "InstallBackupClients", nil, nil, 400, "MissingParameter"},
		{"install ids not json", "InstallBackupClients", map[string]string{"InstanceIds": "i-a"}, nil, 400, "InvalidParameter"},
		{"install ids object", "InstallBackupClients", map[string]string{"InstanceIds": `{"i-a":1}`}, nil, 400, "InvalidParameter"},
		{"install ids empty", "InstallBackupClients", map[string]string{"InstanceIds": `[]`}, nil, 400, "InvalidParameter"},
		{"install ids numbers", "InstallBackupClients", map[string]string{"InstanceIds": `[1]`}, nil, 400, "InvalidParameter"},
		{"install 21 ids", "InstallBackupClients", map[string]string{"InstanceIds": "[" + strings.Join(many, ",") + "]"}, nil, 400, "InvalidParameter"},
		{"install bad cross type", "InstallBackupClients", map[string]string{"InstanceIds": `["i-a"]`, "CrossAccountType": "OTHER"}, nil, 400, "InvalidParameter"},
		{"install cross account ok", "InstallBackupClients", map[string]string{"InstanceIds": `["i-a"]`, "CrossAccountType": "CROSS_ACCOUNT", "CrossAccountUserId": "123", "CrossAccountRoleName": "r"}, nil, 200, "200"},
		{"task without id", "DescribeTask", nil, nil, 400, "MissingParameter"},
		{"unknown task", "DescribeTask", map[string]string{"TaskId": "t-nope"}, nil, 400, hbrsim.TaskNotFoundCode},
		{"clients without type", "DescribeBackupClients", nil, nil, 400, "MissingParameter"},
		{"clients bad type", "DescribeBackupClients", map[string]string{"ClientType": "X"}, nil, 400, "InvalidParameter"},
		{"clients page size 100", "DescribeBackupClients", map[string]string{"ClientType": "ECS_CLIENT", "PageSize": "100"}, nil, 400, "InvalidParameter"},
		{"clients bad filter", "DescribeBackupClients", map[string]string{"ClientType": "ECS_CLIENT"}, map[string]string{"InstanceIds": "x"}, 400, "InvalidParameter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			got := r.call(tc.action, tc.query, tc.form, nil)
			assert.Equal(t, tc.wantHTTP, got.Status, got.Body)
			assert.Equal(t, tc.wantCode, got.Code())
			assert.IsType(t, "", got.Body["Message"])
		})
	}
}

func TestDescribeBackupClientsPages(t *testing.T) {
	r := newRig(t)
	require.Equal(t, 200, r.install("i-c", "i-a", "i-b").Status)
	r.sim.SetInstance("i-container", hbrsim.Behavior{})

	page := func(n, size string, clientType string) (ids []string, total any) {
		d := r.call("DescribeBackupClients", map[string]string{"ClientType": clientType, "PageNumber": n, "PageSize": size}, nil, nil)
		require.Equal(t, 200, d.Status, d.Body)
		for _, c := range d.Body["Clients"].([]any) {
			ids = append(ids, c.(map[string]any)["InstanceId"].(string))
		}
		return ids, d.Body["TotalCount"]
	}
	ids, total := page("1", "2", "ECS_CLIENT")
	assert.Equal(t, []string{"i-a", "i-b"}, ids)
	assert.Equal(t, float64(3), total)
	ids, _ = page("2", "2", "ECS_CLIENT")
	assert.Equal(t, []string{"i-c"}, ids)
	ids, _ = page("3", "2", "ECS_CLIENT")
	assert.Empty(t, ids)
	ids, total = page("1", "10", "CONTAINER_CLIENT")
	assert.Empty(t, ids)
	assert.Equal(t, float64(0), total)
}

func TestThrottledInstallCreatesNoTask(t *testing.T) {
	r := newRig(t)
	r.sim.SetFaults(hbrsim.Faults{ThrottleNext: 1, ServerErrorNext: 1})
	th := r.install("i-a")
	assert.Equal(t, 400, th.Status)
	assert.Equal(t, "Throttling.User", th.Code())
	se := r.install("i-a")
	assert.Equal(t, 503, se.Status)
	assert.Equal(t, "ServiceUnavailable", se.Code())
	assert.Empty(t, r.sim.Tasks())
	assert.Equal(t, 0, r.sim.Installs("i-a"))
	assert.Equal(t, 200, r.install("i-a").Status)
	assert.Equal(t, map[string]int{"hbr.InstallBackupClients": 3}, r.sim.Calls())
}

func TestTamperedRequestIsRejected(t *testing.T) {
	r := newRig(t)
	got := r.call("InstallBackupClients", map[string]string{"InstanceIds": `["i-a"]`}, nil,
		func(q url.Values) { q.Set("InstanceIds", `["i-a","i-evil"]`) })
	assert.Equal(t, 400, got.Status)
	assert.Equal(t, "SignatureDoesNotMatch", got.Code())
	assert.Empty(t, r.sim.Tasks())

	wrongAK := r.call("DescribeTask", map[string]string{"TaskId": "t-x"}, nil,
		func(q url.Values) { q.Set("AccessKeyId", "someone-else") })
	assert.Equal(t, 404, wrongAK.Status)
	assert.Equal(t, "InvalidAccessKeyId.NotFound", wrongAK.Code())
	assert.Equal(t, map[string]int{"hbr.InstallBackupClients": 1, "hbr.DescribeTask": 1}, r.sim.Calls())
}

func TestOnCallCarriesTaskID(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	var calls []hbrsim.Call
	r.sim.OnCall(func(c hbrsim.Call) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, c)
	})
	taskID := r.install("i-a").Body["TaskId"].(string)
	r.describe(taskID)
	r.describe("t-unknown")

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, calls, 3)
	assert.Equal(t, "InstallBackupClients", calls[0].Action)
	assert.Equal(t, taskID, calls[0].TaskID)
	assert.Equal(t, `["i-a"]`, calls[0].Params["InstanceIds"])
	assert.Equal(t, "POST", calls[0].Method)
	assert.Equal(t, t0, calls[0].Time)
	assert.Equal(t, taskID, calls[1].TaskID)
	assert.Equal(t, 200, calls[1].Status)
	assert.Equal(t, "t-unknown", calls[2].TaskID)
	assert.Equal(t, hbrsim.TaskNotFoundCode, calls[2].Code)
}

func TestConcurrentInstalls(t *testing.T) {
	r := newRig(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			got := r.install(fmt.Sprintf("i-%d", i), "i-shared")
			assert.Equal(t, 200, got.Status)
		})
	}
	wg.Wait()
	assert.Len(t, r.sim.Tasks(), 8)
	assert.Equal(t, 8, r.sim.Installs("i-shared"))
	ids := map[string]bool{}
	for _, task := range r.sim.Tasks() {
		ids[task.ID] = true
	}
	assert.Len(t, ids, 8, "task IDs are unique")
}

func TestStart(t *testing.T) {
	sim := hbrsim.New(hbrsim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret})
	base, err := sim.Start()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, sim.Close()) })
	assert.True(t, strings.HasPrefix(base, "http://127.0.0.1:"), base)
	resp, err := http.Get(base + "/?Action=DescribeTask")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, 400, resp.StatusCode, "unsigned request rejected")
}

// clientsOf lists DescribeBackupClients' Status and CreatedTime per instance.
func (r *rig) clientsOf(ids string) map[string][2]any {
	r.t.Helper()
	d := r.call("DescribeBackupClients", map[string]string{"ClientType": "ECS_CLIENT"}, map[string]string{"InstanceIds": ids}, nil)
	require.Equal(r.t, 200, d.Status, d.Body)
	out := map[string][2]any{}
	for _, c := range d.Body["Clients"].([]any) {
		m := c.(map[string]any)
		out[m["InstanceId"].(string)] = [2]any{m["Status"], m["CreatedTime"]}
	}
	return out
}

func TestReadyAtIsAbsolute(t *testing.T) {
	r := newRig(t)
	r.sim.SetInstance("i-a", hbrsim.Behavior{ReadyAt: t0.Add(90 * time.Second)})
	r.sim.InstanceSeen("i-a", t0.Add(-time.Hour))
	assert.Equal(t, "CloudAssistNotRunningOnInstance", r.install("i-a").Code(), "not ready before the heartbeat, however long seen")
	r.clock.Set(t0.Add(89 * time.Second))
	assert.Equal(t, "CloudAssistNotRunningOnInstance", r.install("i-a").Code())
	r.clock.Set(t0.Add(90 * time.Second))
	assert.Equal(t, 200, r.install("i-a").Status)
}

func TestClientStatusAndCreatedTimeFollowTheInstall(t *testing.T) {
	r := newRig(t)
	r.clock.Set(t0.Add(1500 * time.Millisecond))
	r.sim.SetInstance("i-ok", hbrsim.Behavior{InstallDuration: time.Minute})
	r.sim.SetInstance("i-bad", hbrsim.Behavior{InstallDuration: time.Minute, FailInstalls: 1})
	require.Equal(t, 200, r.install("i-ok", "i-bad").Status)
	created := float64(t0.Add(time.Second).Unix())
	assert.Equal(t, map[string][2]any{"i-ok": {"INSTALLING", created}, "i-bad": {"INSTALLING", created}}, r.clientsOf(`["i-ok","i-bad"]`))
	st, at := r.sim.Client("i-ok")
	assert.Equal(t, "INSTALLING", st)
	assert.Equal(t, t0.Add(time.Second), at, "whole seconds")
	r.clock.Set(t0.Add(61500 * time.Millisecond))
	assert.Equal(t, map[string][2]any{"i-ok": {"ACTIVATED", created}, "i-bad": {"INSTALL_FAILED", created}}, r.clientsOf(`["i-ok","i-bad"]`))
}

func TestSeedClientsInEveryStatus(t *testing.T) {
	for _, status := range hbrsim.ClientStatuses {
		t.Run(status, func(t *testing.T) {
			r := newRig(t)
			r.sim.SetClient("i-a", status, t0.Add(-time.Hour+300*time.Millisecond))
			assert.Equal(t, map[string][2]any{"i-a": {status, float64(t0.Add(-time.Hour).Unix())}}, r.clientsOf(`["i-a"]`))
		})
	}
	assert.Len(t, hbrsim.ClientStatuses, 12)
}

func TestSeededTransitionalClientBecomesActivated(t *testing.T) {
	tests := []struct{ from string }{{"UPGRADING"}, {"REGISTERED"}}
	for _, tt := range tests {
		t.Run(tt.from, func(t *testing.T) {
			r := newRig(t)
			r.sim.SetClientTransition("i-a", tt.from, t0.Add(-time.Hour), "ACTIVATED", 30*time.Second)
			assert.Equal(t, tt.from, r.clientsOf(`["i-a"]`)["i-a"][0])
			r.clock.Set(t0.Add(29 * time.Second))
			assert.Equal(t, tt.from, r.clientsOf(`["i-a"]`)["i-a"][0])
			r.clock.Set(t0.Add(30 * time.Second))
			assert.Equal(t, "ACTIVATED", r.clientsOf(`["i-a"]`)["i-a"][0])
		})
	}
}
