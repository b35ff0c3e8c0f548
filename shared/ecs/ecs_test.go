package ecs_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ecssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim/rpcsimtest"
)

const testAK, testSecret, testToken = rpcsimtest.AccessKeyID, rpcsimtest.AccessKeySecret, rpcsimtest.SecurityToken

var (
	goodCred = rpcsimtest.Credentials()
	t0       = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// startSim serves an emulator expecting goodCred behind a recorder.
func startSim(t *testing.T) (*ecssim.Server, *rpcsimtest.Clock, *rpcsimtest.Recorder, string) {
	t.Helper()
	clk := rpcsimtest.NewClock(t0)
	sim := ecssim.New(ecssim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: testToken, Now: clk.Now, Seed: 5})
	rec, base := rpcsimtest.Serve(t, sim)
	return sim, clk, rec, base
}

func newClient(t *testing.T, endpoint string, cred cloudauth.Credentials) *ecs.Client {
	t.Helper()
	c, err := ecs.New(ecs.Config{Region: "cn-hangzhou", Endpoint: endpoint}, cred)
	require.NoError(t, err)
	return c
}

// rawServer answers every request with status and a JSON body, counting
// requests.
func rawServer(t *testing.T, status int, body string) (string, *atomic.Int64) {
	t.Helper()
	return rpcsimtest.Canned(t, status, "application/json", body)
}

// assertFault checks the classification of err and that it leaks no secret.
func assertFault(t *testing.T, err error, op string, kind fault.Kind, code string) {
	t.Helper()
	rpcsimtest.AssertFault(t, err, op, kind, code, testSecret, testToken)
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name       string
		cfg        ecs.Config
		cred       cloudauth.Credentials
		wantScheme string
		wantHost   string // "" → Invalid
	}{
		{name: "default endpoint", cfg: ecs.Config{Region: "cn-hangzhou"}, wantScheme: "https", wantHost: "ecs.cn-hangzhou.aliyuncs.com"},
		{name: "region template", cfg: ecs.Config{Region: "cn-shanghai", Endpoint: "ecs-vpc.{region}.aliyuncs.com"}, wantScheme: "https", wantHost: "ecs-vpc.cn-shanghai.aliyuncs.com"},
		{name: "https url", cfg: ecs.Config{Region: "cn-hangzhou", Endpoint: "https://ecs.example.com:8443"}, wantScheme: "https", wantHost: "ecs.example.com:8443"},
		{name: "loopback http", cfg: ecs.Config{Region: "cn-hangzhou", Endpoint: "http://127.0.0.1:9"}, wantScheme: "http", wantHost: "127.0.0.1:9"},
		{name: "no token", cfg: ecs.Config{Region: "cn-hangzhou"}, cred: cloudauth.Credentials{AccessKeyID: "a", AccessKeySecret: "b"}, wantScheme: "https", wantHost: "ecs.cn-hangzhou.aliyuncs.com"},

		{name: "http to public host", cfg: ecs.Config{Region: "cn-hangzhou", Endpoint: "http://ecs.cn-hangzhou.aliyuncs.com"}},
		{name: "path in url", cfg: ecs.Config{Region: "cn-hangzhou", Endpoint: "https://ecs.example.com/x"}},
		{name: "empty region", cfg: ecs.Config{}},
		{name: "hostile region", cfg: ecs.Config{Region: "cn-hangzhou/../x"}},
		{name: "negative timeout", cfg: ecs.Config{Region: "cn-hangzhou", Timeout: -time.Second}},
		{name: "missing secret", cfg: ecs.Config{Region: "cn-hangzhou"}, cred: cloudauth.Credentials{AccessKeyID: "a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cred := tc.cred
			if cred == (cloudauth.Credentials{}) {
				cred = goodCred
			}
			c, err := ecs.New(tc.cfg, cred)
			if tc.wantHost == "" {
				assertFault(t, err, "ecs.New", fault.Invalid, "")
				assert.Nil(t, c)
				return
			}
			require.NoError(t, err)
			scheme, host := c.Endpoint()
			assert.Equal(t, tc.wantScheme, scheme)
			assert.Equal(t, tc.wantHost, host)
		})
	}
}

func TestDescribeInstances(t *testing.T) {
	sim, _, rec, base := startSim(t)
	sim.SetInstances(
		ecssim.Instance{ID: "i-a", Name: "web-1", VpcID: "vpc-1", ResourceGroupID: "rg-1",
			Tags: map[string]string{"env": "prod", "owner": "张三", "empty": ""}},
		ecssim.Instance{ID: "i-b", Status: ecssim.StatusStopped, OSType: "windows"},
		ecssim.Instance{ID: "i-other-region", RegionID: "cn-beijing"},
	)
	c := newClient(t, base, goodCred)

	got, err := c.DescribeInstances(context.Background(), []string{"i-b", "i-missing", "i-a", "i-b", "i-other-region"})
	require.NoError(t, err)
	assert.Equal(t, []ecs.Instance{
		{ID: "i-b", Status: "Stopped", OSType: "windows"},
		{ID: "i-a", Status: "Running", OSType: "linux", VpcID: "vpc-1", ResourceGroupID: "rg-1", Name: "web-1",
			Tags: map[string]string{"env": "prod", "owner": "张三", "empty": ""}},
	}, got, "input order, duplicates and unknown IDs dropped, other regions invisible")

	reqs := rec.Params()
	require.Len(t, reqs, 1)
	assert.Equal(t, "POST", rec.All()[0].Method)
	assert.Equal(t, "DescribeInstances", reqs[0].Get("Action"))
	assert.Equal(t, "2014-05-26", reqs[0].Get("Version"))
	assert.Equal(t, "cn-hangzhou", reqs[0].Get("RegionId"))
	assert.Equal(t, `["i-b","i-missing","i-a","i-other-region"]`, reqs[0].Get("InstanceIds"))
	assert.Equal(t, "100", reqs[0].Get("MaxResults"))
	assert.Equal(t, testToken, reqs[0].Get("SecurityToken"))

	none, err := c.DescribeInstances(context.Background(), nil)
	require.NoError(t, err)
	assert.Empty(t, none)
	assert.Len(t, rec.Params(), 1, "an empty list makes no call")
}

func TestDescribeInstancesChunks(t *testing.T) {
	sim, _, _, base := startSim(t)
	all := ids("i-", 250)
	for _, id := range all {
		sim.SetInstance(ecssim.Instance{ID: id})
	}
	got, err := newClient(t, base, goodCred).DescribeInstances(context.Background(), all)
	require.NoError(t, err)
	require.Len(t, got, 250)
	for i, in := range got {
		assert.Equal(t, all[i], in.ID)
	}
	assert.Equal(t, 3, sim.Calls()["ecs.DescribeInstances"], "100 + 100 + 50")
}

func TestListInstances(t *testing.T) {
	sim, _, rec, base := startSim(t)
	for _, id := range ids("i-run-", 230) {
		sim.SetInstance(ecssim.Instance{ID: id})
	}
	for _, id := range ids("i-stop-", 7) {
		sim.SetInstance(ecssim.Instance{ID: id, Status: ecssim.StatusStopped})
	}
	c := newClient(t, base, goodCred)

	running, err := c.ListInstances(context.Background(), ecs.StatusRunning)
	require.NoError(t, err)
	assert.Len(t, running, 230)
	for _, in := range running {
		assert.Equal(t, "Running", in.Status)
	}
	reqs := rec.Params()
	require.Len(t, reqs, 3, "pages of 100")
	assert.Equal(t, "Running", reqs[0].Get("Status"))
	assert.False(t, reqs[0].Has("NextToken"))
	assert.NotEmpty(t, reqs[1].Get("NextToken"))
	assert.False(t, reqs[0].Has("InstanceIds"))

	everything, err := c.ListInstances(context.Background(), "")
	require.NoError(t, err)
	assert.Len(t, everything, 237)

	_, err = c.ListInstances(context.Background(), "running; drop")
	assertFault(t, err, "ecs.DescribeInstances", fault.Invalid, "")
	assert.Len(t, rec.Params(), 6, "an invalid status makes no call")
}

func TestListInstancesStopsWhenTheTokenDoesNotAdvance(t *testing.T) {
	base, calls := rawServer(t, 200, `{"RequestId":"r","Instances":{"Instance":[{"InstanceId":"i-a","Status":"Running"}]},"NextToken":"again"}`)
	_, err := newClient(t, base, goodCred).ListInstances(context.Background(), ecs.StatusRunning)
	assertFault(t, err, "ecs.DescribeInstances", fault.Permanent, "")
	assert.EqualValues(t, 2, calls.Load(), "the second answer repeats the token")
}

func TestListInstancesHasNoPageCap(t *testing.T) {
	sim, _, _, base := startSim(t)
	var all []ecssim.Instance
	for _, id := range ids("i-many-", 10_250) {
		all = append(all, ecssim.Instance{ID: id})
	}
	sim.SetInstances(all...)
	got, err := newClient(t, base, goodCred).ListInstances(context.Background(), ecs.StatusRunning)
	require.NoError(t, err)
	assert.Len(t, got, 10_250, "more than 100 pages")
	assert.Equal(t, 103, sim.Calls()["ecs.DescribeInstances"])
}

func TestListInstancesPage(t *testing.T) {
	sim, _, _, base := startSim(t)
	for _, id := range ids("i-p-", 150) {
		sim.SetInstance(ecssim.Instance{ID: id})
	}
	c := newClient(t, base, goodCred)
	ctx := context.Background()

	first, err := c.ListInstancesPage(ctx, ecs.StatusRunning, "")
	require.NoError(t, err)
	assert.Len(t, first.Instances, 100)
	require.NotEmpty(t, first.NextToken)
	second, err := c.ListInstancesPage(ctx, ecs.StatusRunning, first.NextToken)
	require.NoError(t, err)
	assert.Len(t, second.Instances, 50)
	assert.Empty(t, second.NextToken)
	assert.NotEqual(t, first.Instances[0].ID, second.Instances[0].ID)

	for name, tok := range map[string]string{"too long": strings.Repeat("a", ecs.MaxTokenLen+1), "control": "a\nb"} {
		t.Run(name, func(t *testing.T) {
			_, err := c.ListInstancesPage(ctx, ecs.StatusRunning, tok)
			assertFault(t, err, "ecs.DescribeInstances", fault.Invalid, "")
		})
	}
	_, err = c.ListInstancesPage(ctx, ecs.StatusRunning, "not-a-token-of-this-service")
	assertFault(t, err, "ecs.DescribeInstances", fault.Permanent, "InvalidParameter")
}

func TestTagInstance(t *testing.T) {
	sim, _, rec, base := startSim(t)
	sim.SetInstance(ecssim.Instance{ID: "i-a", Tags: map[string]string{"env": "prod"}})
	c := newClient(t, base, goodCred)
	ctx := context.Background()

	require.NoError(t, c.TagInstance(ctx, "i-a", "hbr-autoinstall", "installed"))
	require.NoError(t, c.TagInstance(ctx, "i-a", "env", "staging"))
	assert.Equal(t, map[string]string{"env": "staging", "hbr-autoinstall": "installed"}, sim.Tags("i-a"))

	last := rec.Params()[1]
	assert.Equal(t, "TagResources", last.Get("Action"))
	assert.Equal(t, "instance", last.Get("ResourceType"))
	assert.Equal(t, "i-a", last.Get("ResourceId.1"))
	assert.Equal(t, "env", last.Get("Tag.1.Key"))
	assert.Equal(t, "staging", last.Get("Tag.1.Value"))

	err := c.TagInstance(ctx, "i-gone", "k", "v")
	assertFault(t, err, "ecs.TagResources", fault.Permanent, ecssim.CodeResourceNotFound)
	var apiErr *ecs.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusNotFound, apiErr.HTTPStatus)
	assert.NotEmpty(t, apiErr.RequestID)

	for i := range 18 {
		require.NoError(t, c.TagInstance(ctx, "i-a", fmt.Sprintf("k%02d", i), ""))
	}
	assert.Len(t, sim.Tags("i-a"), 20)
	err = c.TagInstance(ctx, "i-a", "one-too-many", "x")
	assertFault(t, err, "ecs.TagResources", fault.Permanent, ecssim.CodeTagCount)
	assert.Len(t, sim.Tags("i-a"), 20, "nothing written")
	require.NoError(t, c.TagInstance(ctx, "i-a", "env", "overwrite-is-fine"))
}

func TestTagInstanceRejectsBadInput(t *testing.T) {
	sim, _, _, base := startSim(t)
	c := newClient(t, base, goodCred)
	tests := []struct {
		name, id, key, value string
	}{
		{"empty key", "i-a", "", "v"},
		{"aliyun prefix", "i-a", "aliyun-x", "v"},
		{"acs prefix", "i-a", "ACS:x", "v"},
		{"url in key", "i-a", "see http://x", "v"},
		{"url in value", "i-a", "k", "https://evil"},
		{"long key", "i-a", strings.Repeat("k", 129), "v"},
		{"long value", "i-a", "k", strings.Repeat("値", 129)},
		{"bad utf-8", "i-a", "k\xff", "v"},
		{"hostile id", `i-a&ResourceId.2=i-b`, "k", "v"},
		{"empty id", "", "k", "v"},
		{"id with trailing newline", "i-a\n", "k", "v"},
		{"id of 129 characters", strings.Repeat("i", 129), "k", "v"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assertFault(t, c.TagInstance(context.Background(), tc.id, tc.key, tc.value), "ecs.TagResources", fault.Invalid, "")
		})
	}
	assert.ErrorContains(t, c.TagInstance(context.Background(), "i-ä", "k", "v"), `must match ^[A-Za-z0-9._:-]{1,128}$`)
	assert.Empty(t, sim.Calls(), "no request sent")
	assert.NoError(t, ecs.CheckTag(strings.Repeat("键", 128), strings.Repeat("値", 128)), "128 characters, not bytes")
}

func TestCloudAssistantReady(t *testing.T) {
	sim, clk, rec, base := startSim(t)
	sim.SetInstances(
		ecssim.Instance{ID: "i-ready"},
		ecssim.Instance{ID: "i-soon", AssistantReadyAt: t0.Add(time.Minute)},
		ecssim.Instance{ID: "i-none", NoAssistant: true},
		ecssim.Instance{ID: "i-stopped", Status: ecssim.StatusStopped},
	)
	c := newClient(t, base, goodCred)
	ask := []string{"i-ready", "i-soon", "i-none", "i-stopped", "i-unknown", "i-ready"}

	got, err := c.CloudAssistantReady(context.Background(), ask)
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{"i-ready": true, "i-soon": false, "i-none": false, "i-stopped": false}, got)
	req := rec.Params()[0]
	assert.Equal(t, "DescribeCloudAssistantStatus", req.Get("Action"))
	assert.Equal(t, "i-ready", req.Get("InstanceId.1"))
	assert.Equal(t, "i-unknown", req.Get("InstanceId.5"))
	assert.False(t, req.Has("InstanceId.6"), "duplicates dropped")

	clk.Advance(time.Minute)
	got, err = c.CloudAssistantReady(context.Background(), []string{"i-soon"})
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{"i-soon": true}, got)

	many := ids("i-", 120)
	for _, id := range many {
		sim.SetInstance(ecssim.Instance{ID: id})
	}
	got, err = c.CloudAssistantReady(context.Background(), many)
	require.NoError(t, err)
	assert.Len(t, got, 120)
	for id, ok := range got {
		assert.True(t, ok, id)
	}
	assert.Equal(t, 2+3, sim.Calls()["ecs.DescribeCloudAssistantStatus"], "50 + 50 + 20")

	_, err = c.CloudAssistantReady(context.Background(), []string{"i-a", "bad id"})
	assertFault(t, err, "ecs.DescribeCloudAssistantStatus", fault.Invalid, "")
}

func TestServiceErrors(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(*ecssim.Server)
		cred     cloudauth.Credentials
		wantKind fault.Kind
		wantCode string
		wantHTTP int
	}{
		{name: "throttled", setup: func(s *ecssim.Server) { s.SetFaults(ecssim.Faults{ThrottleNext: 1}) },
			wantKind: fault.Retryable, wantCode: "Throttling.User", wantHTTP: 400},
		{name: "503", setup: func(s *ecssim.Server) { s.SetFaults(ecssim.Faults{ServerErrorNext: 1}) },
			wantKind: fault.Retryable, wantCode: "ServiceUnavailable", wantHTTP: 503},
		{name: "500", setup: func(s *ecssim.Server) { s.SetFaults(ecssim.Faults{ServerErrorNext: 1, ServerErrorStatus: 500}) },
			wantKind: fault.Retryable, wantCode: "InternalError", wantHTTP: 500},
		{name: "wrong secret", cred: cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: "nope", SecurityToken: testToken},
			wantKind: fault.Permanent, wantCode: "SignatureDoesNotMatch", wantHTTP: 400},
		{name: "wrong token", cred: cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: "other"},
			wantKind: fault.Permanent, wantCode: "InvalidSecurityToken.MismatchWithAccessKey", wantHTTP: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, _, _, base := startSim(t)
			sim.SetInstance(ecssim.Instance{ID: "i-a"})
			if tc.setup != nil {
				tc.setup(sim)
			}
			cred := tc.cred
			if cred == (cloudauth.Credentials{}) {
				cred = goodCred
			}
			err := newClient(t, base, cred).TagInstance(context.Background(), "i-a", "k", "v")
			assertFault(t, err, "ecs.TagResources", tc.wantKind, tc.wantCode)
			var apiErr *ecs.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tc.wantHTTP, apiErr.HTTPStatus)
			assert.Empty(t, sim.Tags("i-a"), "a rejected call writes nothing")
			assert.Equal(t, 1, sim.Calls()["ecs.TagResources"], "exactly one request: no SDK retries")
		})
	}
}

func TestMalformedResponses(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		wantKind fault.Kind
		wantCode string
	}{
		{"numeric code", 400, `{"RequestId":"r","Code":400,"Message":"x"}`, fault.Permanent, "400"},
		{"html 502", 502, `<html>bad gateway</html>`, fault.Retryable, ""},
		{"not json", 200, `ok`, fault.Permanent, ""},
		{"wrong shape", 200, `{"Instances":"oops"}`, fault.Permanent, ""},
		{"success false", 200, `{"Success":false,"Code":"Throttling.Api","Message":"slow"}`, fault.Retryable, "Throttling.Api"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base, _ := rawServer(t, tc.status, tc.body)
			var err error
			require.NotPanics(t, func() {
				_, err = newClient(t, base, goodCred).DescribeInstances(context.Background(), []string{"i-a"})
			})
			assertFault(t, err, "ecs.DescribeInstances", tc.wantKind, tc.wantCode)
		})
	}
}

func TestTolerantDecoding(t *testing.T) {
	base, _ := rawServer(t, 200, `{"RequestId":"r","Instances":[{"InstanceId":"i-a","Status":"Running",
		"VpcAttributes":{"VpcId":"vpc-1"},"Tags":[{"Key":"env","Value":"prod"},{"TagKey":"","TagValue":"x"}]}]}`)
	got, err := newClient(t, base, goodCred).DescribeInstances(context.Background(), []string{"i-a"})
	require.NoError(t, err)
	assert.Equal(t, []ecs.Instance{{ID: "i-a", Status: "Running", VpcID: "vpc-1", Tags: map[string]string{"env": "prod"}}}, got)

	base, _ = rawServer(t, 200, `{"RequestId":"r","InstanceCloudAssistantStatusSet":{"InstanceCloudAssistantStatus":[
		{"InstanceId":"i-a","CloudAssistantStatus":true},{"InstanceId":"i-b","CloudAssistantStatus":"TRUE"},{"InstanceId":"i-c","CloudAssistantStatus":"false"},{"InstanceId":"i-x","CloudAssistantStatus":"true"}]}}`)
	ready, err := newClient(t, base, goodCred).CloudAssistantReady(context.Background(), []string{"i-a", "i-b", "i-c"})
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{"i-a": true, "i-b": true, "i-c": false}, ready, "an instance not asked about is ignored")
}

func TestContext(t *testing.T) {
	sim, _, _, base := startSim(t)
	c := newClient(t, base, goodCred)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.DescribeInstances(cancelled, []string{"i-a"})
	assertFault(t, err, "ecs.DescribeInstances", fault.Permanent, "")
	assert.ErrorIs(t, err, context.Canceled)

	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	_, err = c.CloudAssistantReady(expired, []string{"i-a"})
	assertFault(t, err, "ecs.DescribeCloudAssistantStatus", fault.Retryable, "")
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	assert.Empty(t, sim.Calls(), "no request sent")
}

func TestConcurrentUse(t *testing.T) {
	sim, _, _, base := startSim(t)
	c := newClient(t, base, goodCred)
	for _, id := range ids("i-", 8) {
		sim.SetInstance(ecssim.Instance{ID: id})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for _, id := range ids("i-", 8) {
		wg.Go(func() {
			if err := c.TagInstance(context.Background(), id, "k", id); err != nil {
				errs <- err
			}
			if _, err := c.DescribeInstances(context.Background(), []string{id}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	for _, id := range ids("i-", 8) {
		assert.Equal(t, map[string]string{"k": id}, sim.Tags(id))
	}
}
