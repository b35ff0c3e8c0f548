package hbr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim/rpcsimtest"
)

const testAK, testSecret, testToken = rpcsimtest.AccessKeyID, rpcsimtest.AccessKeySecret, rpcsimtest.SecurityToken

var (
	goodCred = rpcsimtest.Credentials()
	t0       = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// startSim serves an emulator expecting goodCred, behind a recorder.
func startSim(t *testing.T) (*hbrsim.Server, *rpcsimtest.Clock, *rpcsimtest.Recorder, string) {
	t.Helper()
	clk := rpcsimtest.NewClock(t0)
	sim := hbrsim.New(hbrsim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: testToken, Now: clk.Now, Seed: 3})
	rec, base := rpcsimtest.Serve(t, sim)
	return sim, clk, rec, base
}

// rawServer answers every request with status and body.
func rawServer(t *testing.T, status int, contentType, body string) string {
	t.Helper()
	base, _ := rpcsimtest.Canned(t, status, contentType, body)
	return base
}

func newClient(t *testing.T, endpoint string, cred cloudauth.Credentials) *hbr.Client {
	t.Helper()
	c, err := hbr.New(hbr.Config{Region: "cn-hangzhou", Endpoint: endpoint}, cred)
	require.NoError(t, err)
	return c
}

// assertFault checks the classification of err and that it leaks no secret.
func assertFault(t *testing.T, err error, op string, kind fault.Kind, code string) {
	t.Helper()
	rpcsimtest.AssertFault(t, err, op, kind, code, testSecret, testToken)
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name       string
		cfg        hbr.Config
		cred       cloudauth.Credentials
		wantScheme string
		wantHost   string // "" → Invalid error expected
	}{
		{name: "default endpoint", cfg: hbr.Config{Region: "cn-hangzhou"}, wantScheme: "https", wantHost: "hbr.cn-hangzhou.aliyuncs.com"},
		{name: "bare vpc host", cfg: hbr.Config{Region: "cn-hangzhou", Endpoint: "hbr-vpc.cn-hangzhou.aliyuncs.com"}, wantScheme: "https", wantHost: "hbr-vpc.cn-hangzhou.aliyuncs.com"},
		{name: "region template", cfg: hbr.Config{Region: "ap-southeast-1", Endpoint: "hbr-vpc.{region}.aliyuncs.com"}, wantScheme: "https", wantHost: "hbr-vpc.ap-southeast-1.aliyuncs.com"},
		{name: "https url with port", cfg: hbr.Config{Region: "cn-hangzhou", Endpoint: "https://hbr.example.com:8443/"}, wantScheme: "https", wantHost: "hbr.example.com:8443"},
		{name: "https url template", cfg: hbr.Config{Region: "cn-beijing", Endpoint: "https://hbr.{region}.aliyuncs.com"}, wantScheme: "https", wantHost: "hbr.cn-beijing.aliyuncs.com"},
		{name: "http loopback ip", cfg: hbr.Config{Region: "cn-hangzhou", Endpoint: "http://127.0.0.1:8080"}, wantScheme: "http", wantHost: "127.0.0.1:8080"},
		{name: "http loopback 127/8", cfg: hbr.Config{Region: "cn-hangzhou", Endpoint: "http://127.3.2.1:1"}, wantScheme: "http", wantHost: "127.3.2.1:1"},
		{name: "http localhost", cfg: hbr.Config{Region: "cn-hangzhou", Endpoint: "http://localhost:9"}, wantScheme: "http", wantHost: "localhost:9"},
		{name: "http ipv6 loopback", cfg: hbr.Config{Region: "cn-hangzhou", Endpoint: "http://[::1]:9"}, wantScheme: "http", wantHost: "[::1]:9"},
		{name: "sts-less credentials", cfg: hbr.Config{Region: "cn-hangzhou"}, cred: cloudauth.Credentials{AccessKeyID: "a", AccessKeySecret: "b"}, wantScheme: "https", wantHost: "hbr.cn-hangzhou.aliyuncs.com"},
		{name: "cross account", cfg: hbr.Config{Region: "cn-hangzhou", CrossAccountType: "CROSS_ACCOUNT", CrossAccountUserID: 42, CrossAccountRoleName: "BackupRole"}, wantScheme: "https", wantHost: "hbr.cn-hangzhou.aliyuncs.com"},

		{name: "http to public host", cfg: hbr.Config{Region: "cn-hangzhou", Endpoint: "http://hbr.cn-hangzhou.aliyuncs.com"}},
		{name: "http to private ip", cfg: hbr.Config{Region: "cn-hangzhou", Endpoint: "http://10.0.0.1:80"}},
		{name: "http to localhost lookalike", cfg: hbr.Config{Region: "cn-hangzhou", Endpoint: "http://localhost.evil.com"}},
		{name: "ftp scheme", cfg: hbr.Config{Region: "cn-hangzhou", Endpoint: "ftp://hbr.example.com"}},
		{name: "url with path", cfg: hbr.Config{Region: "cn-hangzhou", Endpoint: "https://hbr.example.com/api"}},
		{name: "url with query", cfg: hbr.Config{Region: "cn-hangzhou", Endpoint: "https://hbr.example.com?x=1"}},
		{name: "url with user", cfg: hbr.Config{Region: "cn-hangzhou", Endpoint: "https://u:p@hbr.example.com"}},
		{name: "bare host with path", cfg: hbr.Config{Region: "cn-hangzhou", Endpoint: "hbr.example.com/x"}},
		{name: "bad port", cfg: hbr.Config{Region: "cn-hangzhou", Endpoint: "hbr.example.com:99999"}},
		{name: "host with space", cfg: hbr.Config{Region: "cn-hangzhou", Endpoint: "hbr example.com"}},
		{name: "empty region", cfg: hbr.Config{}},
		{name: "upper-case region", cfg: hbr.Config{Region: "CN-HANGZHOU"}},
		{name: "region with dot", cfg: hbr.Config{Region: "cn.hangzhou"}},
		{name: "negative timeout", cfg: hbr.Config{Region: "cn-hangzhou", Timeout: -time.Second}},
		{name: "bad cross account type", cfg: hbr.Config{Region: "cn-hangzhou", CrossAccountType: "OTHER"}},
		{name: "negative cross account user", cfg: hbr.Config{Region: "cn-hangzhou", CrossAccountUserID: -1}},
		{name: "bad role name", cfg: hbr.Config{Region: "cn-hangzhou", CrossAccountRoleName: "a role"}},
		{name: "role name with trailing newline", cfg: hbr.Config{Region: "cn-hangzhou", CrossAccountRoleName: "role\n"}},
		{name: "role name of 65 characters", cfg: hbr.Config{Region: "cn-hangzhou", CrossAccountRoleName: strings.Repeat("r", 65)}},
		{name: "missing secret", cfg: hbr.Config{Region: "cn-hangzhou"}, cred: cloudauth.Credentials{AccessKeyID: "a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cred := tc.cred
			if cred == (cloudauth.Credentials{}) && tc.name != "missing secret" {
				cred = goodCred
			}
			c, err := hbr.New(tc.cfg, cred)
			if tc.wantHost == "" {
				assertFault(t, err, "hbr.New", fault.Invalid, "")
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

func TestInstallAndFollowTask(t *testing.T) {
	sim, clk, _, base := startSim(t)
	sim.SetDefault(hbrsim.Behavior{InstallDuration: 2 * time.Minute})
	sim.SetInstance("i-fail", hbrsim.Behavior{FailInstalls: 1, FailCode: "InstallTimeout", InstallDuration: time.Minute})
	c := newClient(t, base, goodCred)
	ctx := context.Background()

	res, err := c.InstallBackupClients(ctx, []string{"i-ok", "i-fail"})
	require.NoError(t, err)
	assert.Regexp(t, `^t-`, res.TaskID)
	assert.NotEmpty(t, res.RequestID)
	assert.Equal(t, []hbr.InstanceStatus{{InstanceID: "i-ok", Valid: true}, {InstanceID: "i-fail", Valid: true}}, res.Statuses)

	task, err := c.DescribeTask(ctx, res.TaskID)
	require.NoError(t, err)
	assert.Equal(t, "created", task.Description)
	assert.False(t, task.Done())
	assert.Empty(t, task.Results)
	assert.False(t, task.ResultUnparsed)
	assert.Zero(t, task.CompletedTime)
	assert.Equal(t, res.TaskID, task.TaskID)

	clk.Advance(2 * time.Minute)
	task, err = c.DescribeTask(ctx, res.TaskID)
	require.NoError(t, err)
	assert.True(t, task.Done())
	assert.Equal(t, "completed", task.Description)
	assert.Equal(t, 100, task.Progress)
	assert.Equal(t, hbrsim.TaskName, task.Name)
	assert.Equal(t, t0.Add(2*time.Minute).Unix(), task.CompletedTime)
	require.Len(t, task.Results, 2)
	assert.Equal(t, "ACTIVATED", task.Results[0].ClientStatus)
	assert.Equal(t, "i-ok", task.Results[0].InstanceID)
	assert.Regexp(t, `^c-`, task.Results[0].ClientID)
	assert.Equal(t, "INSTALL_FAILED", task.Results[1].ClientStatus)
	assert.Equal(t, "InstallTimeout", task.Results[1].ErrorCode)

	clients, err := c.DescribeBackupClients(ctx, []string{"i-ok", "i-fail", "i-none"})
	require.NoError(t, err)
	assert.ElementsMatch(t, []hbr.BackupClient{
		{ClientID: task.Results[0].ClientID, InstanceID: "i-ok", Status: "ACTIVATED", CreatedTime: t0.Unix()},
		{ClientID: task.Results[1].ClientID, InstanceID: "i-fail", Status: "INSTALL_FAILED", CreatedTime: t0.Unix()},
	}, clients, "a client record is created when its first install starts")
}

func TestExpiredTaskIsDone(t *testing.T) {
	sim, clk, _, base := startSim(t)
	sim.SetDefault(hbrsim.Behavior{TaskEnd: "expired", InstallDuration: 15 * time.Minute})
	c := newClient(t, base, goodCred)
	res, err := c.InstallBackupClients(context.Background(), []string{"i-a"})
	require.NoError(t, err)
	clk.Advance(15 * time.Minute)
	task, err := c.DescribeTask(context.Background(), res.TaskID)
	require.NoError(t, err)
	assert.Equal(t, -1, task.Progress)
	assert.Equal(t, "expired", task.Description)
	assert.True(t, task.Done())
	require.Len(t, task.Results, 1)
	assert.Equal(t, "UNKNOWN", task.Results[0].ClientStatus)
}

func TestInstallPerInstanceCodes(t *testing.T) {
	sim, _, _, base := startSim(t)
	sim.SetInstance("i-gone", hbrsim.Behavior{Gone: true})
	sim.SetInstance("i-new", hbrsim.Behavior{ReadyAfter: time.Hour})
	sim.SetInstance("i-stopped", hbrsim.Behavior{InvalidCode: "InstanceNotRunning"})
	c := newClient(t, base, goodCred)

	res, err := c.InstallBackupClients(context.Background(), []string{"i-ok", "i-gone", "i-new", "i-stopped"})
	require.NoError(t, err)
	assert.NotEmpty(t, res.TaskID)
	assert.Equal(t, []hbr.InstanceStatus{
		{InstanceID: "i-ok", Valid: true},
		{InstanceID: "i-gone", ErrorCode: "InstanceNotExists"},
		{InstanceID: "i-new", ErrorCode: "CloudAssistNotRunningOnInstance"},
		{InstanceID: "i-stopped", ErrorCode: "InstanceNotRunning"},
	}, res.Statuses)

	none, err := c.InstallBackupClients(context.Background(), []string{"i-gone", "i-new"})
	require.NoError(t, err)
	assert.Empty(t, none.TaskID, "no valid instance, no task")
	assert.Len(t, none.Statuses, 2)
}

func TestServiceErrors(t *testing.T) {
	const op = "hbr.InstallBackupClients"
	tests := []struct {
		name     string
		setup    func(sim *hbrsim.Server)
		cred     cloudauth.Credentials
		wantKind fault.Kind
		wantCode string
		wantHTTP int
	}{
		{name: "top-level not ready", setup: func(s *hbrsim.Server) { s.SetDefault(hbrsim.Behavior{ReadyAfter: time.Hour}) },
			wantKind: fault.Permanent, wantCode: "CloudAssistNotRunningOnInstance", wantHTTP: 400},
		{name: "top-level not running", setup: func(s *hbrsim.Server) {
			s.SetDefault(hbrsim.Behavior{ReadyAfter: time.Hour, NotReadyCode: "InstanceNotRunning"})
		}, wantKind: fault.Permanent, wantCode: "InstanceNotRunning", wantHTTP: 400},
		{name: "throttled", setup: func(s *hbrsim.Server) { s.SetFaults(hbrsim.Faults{ThrottleNext: 1}) },
			wantKind: fault.Retryable, wantCode: "Throttling.User", wantHTTP: 400},
		{name: "503", setup: func(s *hbrsim.Server) { s.SetFaults(hbrsim.Faults{ServerErrorNext: 1}) },
			wantKind: fault.Retryable, wantCode: "ServiceUnavailable", wantHTTP: 503},
		{name: "500", setup: func(s *hbrsim.Server) { s.SetFaults(hbrsim.Faults{ServerErrorNext: 1, ServerErrorStatus: 500}) },
			wantKind: fault.Retryable, wantCode: "InternalError", wantHTTP: 500},
		{name: "wrong secret", cred: cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: "wrong", SecurityToken: testToken},
			wantKind: fault.Permanent, wantCode: "SignatureDoesNotMatch", wantHTTP: 400},
		{name: "unknown access key", cred: cloudauth.Credentials{AccessKeyID: "LTAI-other", AccessKeySecret: testSecret, SecurityToken: testToken},
			wantKind: fault.Permanent, wantCode: "InvalidAccessKeyId.NotFound", wantHTTP: 404},
		{name: "missing token", cred: cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: testSecret},
			wantKind: fault.Permanent, wantCode: "MissingSecurityToken", wantHTTP: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, _, _, base := startSim(t)
			if tc.setup != nil {
				tc.setup(sim)
			}
			cred := tc.cred
			if cred == (cloudauth.Credentials{}) {
				cred = goodCred
			}
			_, err := newClient(t, base, cred).InstallBackupClients(context.Background(), []string{"i-a"})
			assertFault(t, err, op, tc.wantKind, tc.wantCode)
			var apiErr *hbr.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tc.wantHTTP, apiErr.HTTPStatus)
			assert.NotEmpty(t, apiErr.RequestID)
			assert.Empty(t, sim.Tasks(), "a rejected call creates no task")
			assert.Equal(t, 1, sim.Calls()["hbr.InstallBackupClients"], "exactly one request: no SDK retries")
		})
	}
}

func TestUnknownTask(t *testing.T) {
	_, _, _, base := startSim(t)
	_, err := newClient(t, base, goodCred).DescribeTask(context.Background(), "t-doesnotexist")
	assertFault(t, err, "hbr.DescribeTask", fault.Permanent, hbrsim.TaskNotFoundCode)
}

func TestMalformedResponses(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		wantKind    fault.Kind
		wantCode    string
	}{
		{name: "success false", status: 200, contentType: "application/json",
			body:     `{"RequestId":"r1","Success":false,"Code":"InstanceNotRunning","Message":"nope"}`,
			wantKind: fault.Permanent, wantCode: "InstanceNotRunning"},
		{name: "success false throttled", status: 200, contentType: "application/json",
			body:     `{"RequestId":"r1","Success":false,"Code":"Throttling","Message":"slow down"}`,
			wantKind: fault.Retryable, wantCode: "Throttling"},
		{name: "numeric code 400", status: 400, contentType: "application/json",
			body:     `{"RequestId":"r2","Code":400,"Message":"numeric"}`,
			wantKind: fault.Permanent, wantCode: "400"},
		{name: "numeric code 503", status: 503, contentType: "application/json",
			body:     `{"RequestId":"r3","Code":503,"Message":"numeric"}`,
			wantKind: fault.Retryable, wantCode: "503"},
		{name: "html 502", status: 502, contentType: "text/html",
			body:     "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>",
			wantKind: fault.Retryable, wantCode: ""},
		{name: "html 403", status: 403, contentType: "text/html", body: "<html>denied</html>",
			wantKind: fault.Permanent, wantCode: ""},
		{name: "200 not json", status: 200, contentType: "text/plain", body: "ok",
			wantKind: fault.Permanent, wantCode: ""},
		{name: "200 wrong shape", status: 200, contentType: "application/json",
			body:     `{"RequestId":"r4","TaskId":"t-1","InstanceStatuses":"oops"}`,
			wantKind: fault.Permanent, wantCode: ""},
		{name: "signature echo with token", status: 400, contentType: "application/json",
			body:     `{"RequestId":"r5","Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation. server string to sign is:POST&%2F&SecurityToken%3D` + testToken + `"}`,
			wantKind: fault.Permanent, wantCode: "SignatureDoesNotMatch"},
		{name: "message echoing the token", status: 403, contentType: "application/json",
			body:     `{"RequestId":"r6","Code":"Forbidden.RAM","Message":"token ` + testToken + ` is not allowed"}`,
			wantKind: fault.Permanent, wantCode: "Forbidden.RAM"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := rawServer(t, tc.status, tc.contentType, tc.body)
			c := newClient(t, base, goodCred)
			var err error
			require.NotPanics(t, func() {
				_, err = c.InstallBackupClients(context.Background(), []string{"i-a"})
			})
			assertFault(t, err, "hbr.InstallBackupClients", tc.wantKind, tc.wantCode)
		})
	}
}

func TestSuccessAbsentIsTolerated(t *testing.T) {
	base := rawServer(t, 200, "application/json",
		`{"RequestId":"r","TaskId":"t-1","InstanceStatuses":{"InstanceStatus":[{"InstanceId":"i-a","ValidInstance":"true","ErrorCode":""}]}}`)
	res, err := newClient(t, base, goodCred).InstallBackupClients(context.Background(), []string{"i-a"})
	require.NoError(t, err)
	assert.Equal(t, hbr.InstallResult{TaskID: "t-1", RequestID: "r",
		Statuses: []hbr.InstanceStatus{{InstanceID: "i-a", Valid: true}}}, res)
}

func TestDescribeTaskDecoding(t *testing.T) {
	tests := []struct {
		name         string
		body         string
		wantResults  []hbr.ClientResult
		wantUnparsed bool
		wantProgress int
		wantDone     bool
		wantTime     int64
	}{
		{name: "empty result", body: `{"Description":"created","Progress":0,"Result":""}`},
		{name: "braces result", body: `{"Description":"created","Progress":10,"Result":"{}"}`, wantProgress: 10},
		{name: "null result", body: `{"Description":"created","Progress":"20","Result":"null"}`, wantProgress: 20},
		{name: "result absent", body: `{"Description":"running"}`},
		{name: "array result", body: `{"Description":"completed","Progress":100,"CompletedTime":1772366400,"Result":"[{\"instanceId\":\"i-a\",\"clientId\":\"c-1\",\"clientStatus\":\"ACTIVATED\",\"errorCode\":\"\"}]"}`,
			wantResults:  []hbr.ClientResult{{InstanceID: "i-a", ClientID: "c-1", ClientStatus: "ACTIVATED"}},
			wantProgress: 100, wantDone: true, wantTime: 1772366400},
		{name: "unwrapped array result", body: `{"Description":"Completed","Progress":100,"CompletedTime":"1772366400","Result":[{"instanceId":"i-a","clientStatus":"INSTALL_FAILED","errorCode":"X"}]}`,
			wantResults:  []hbr.ClientResult{{InstanceID: "i-a", ClientStatus: "INSTALL_FAILED", ErrorCode: "X"}},
			wantProgress: 100, wantDone: true, wantTime: 1772366400},
		{name: "object result", body: `{"Description":"completed","Progress":100,"Result":"{\"total\":1}"}`,
			wantUnparsed: true, wantProgress: 100, wantDone: true},
		{name: "garbage result", body: `{"Description":"created","Progress":5,"Result":"not json"}`,
			wantUnparsed: true, wantProgress: 5},
		{name: "broken array", body: `{"Description":"created","Progress":5,"Result":"[{\"instanceId\":1}]"}`,
			wantUnparsed: true, wantProgress: 5},
		{name: "failed progress", body: `{"Description":"weird","Progress":-1}`, wantProgress: -1, wantDone: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := rawServer(t, 200, "application/json", tc.body)
			task, err := newClient(t, base, goodCred).DescribeTask(context.Background(), "t-1")
			require.NoError(t, err)
			assert.Equal(t, tc.wantResults, task.Results)
			assert.Equal(t, tc.wantUnparsed, task.ResultUnparsed)
			assert.Equal(t, tc.wantProgress, task.Progress)
			assert.Equal(t, tc.wantDone, task.Done())
			assert.Equal(t, tc.wantTime, task.CompletedTime)
		})
	}
}

func TestTaskDone(t *testing.T) {
	tests := []struct {
		desc     string
		progress int
		want     bool
	}{
		{"created", 0, false},
		{"created", 99, false},
		{"running", 50, false},
		{"", 0, false},
		{"completed", 100, true},
		{"COMPLETED", 100, true},
		{"expired", -1, true},
		{"Cancelled", 30, true},
		{"created", -1, true},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, hbr.Task{Description: tc.desc, Progress: tc.progress}.Done(), "%q/%d", tc.desc, tc.progress)
	}
}

func TestInvalidArgumentsMakeNoCall(t *testing.T) {
	sim, _, _, base := startSim(t)
	c := newClient(t, base, goodCred)
	many := make([]string, 21)
	for i := range many {
		many[i] = fmt.Sprintf("i-%02d", i)
	}
	tests := []struct {
		name string
		call func() error
		op   string
	}{
		{"21 ids", func() error { _, err := c.InstallBackupClients(context.Background(), many); return err }, "hbr.InstallBackupClients"},
		{"no ids", func() error { _, err := c.InstallBackupClients(context.Background(), nil); return err }, "hbr.InstallBackupClients"},
		{"hostile id", func() error {
			_, err := c.InstallBackupClients(context.Background(), []string{`i-a","i-b`})
			return err
		}, "hbr.InstallBackupClients"},
		{"empty id", func() error { _, err := c.InstallBackupClients(context.Background(), []string{""}); return err }, "hbr.InstallBackupClients"},
		{"empty task id", func() error { _, err := c.DescribeTask(context.Background(), ""); return err }, "hbr.DescribeTask"},
		{"task id with slash", func() error { _, err := c.DescribeTask(context.Background(), "t/1"); return err }, "hbr.DescribeTask"},
		{"task id with trailing newline", func() error { _, err := c.DescribeTask(context.Background(), "t-1\n"); return err }, "hbr.DescribeTask"},
		{"task id of 129 characters", func() error {
			_, err := c.DescribeTask(context.Background(), strings.Repeat("t", 129))
			return err
		}, "hbr.DescribeTask"},
		{"describe no ids", func() error { _, err := c.DescribeBackupClients(context.Background(), nil); return err }, "hbr.DescribeBackupClients"},
		{"describe 101 ids", func() error {
			_, err := c.DescribeBackupClients(context.Background(), make([]string, 101))
			return err
		}, "hbr.DescribeBackupClients"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assertFault(t, tc.call(), tc.op, fault.Invalid, "")
		})
	}
	_, err := c.DescribeTask(context.Background(), "t-ä")
	assert.ErrorContains(t, err, `must match ^[A-Za-z0-9._:-]{1,128}$`)
	assert.Empty(t, sim.Calls())
}

func TestContext(t *testing.T) {
	sim, _, _, base := startSim(t)
	c := newClient(t, base, goodCred)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.InstallBackupClients(cancelled, []string{"i-a"})
	assertFault(t, err, "hbr.InstallBackupClients", fault.Permanent, "")
	assert.ErrorIs(t, err, context.Canceled)

	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	_, err = c.DescribeTask(expired, "t-1")
	assertFault(t, err, "hbr.DescribeTask", fault.Retryable, "")
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	assert.Empty(t, sim.Calls(), "no request sent")
}

// hangingServer accepts requests and holds them until the test ends,
// signalling each arrival.
func hangingServer(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	arrived := make(chan struct{}, 8)
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() {
		close(release)
		ts.Close()
	})
	return ts.URL, arrived
}

func TestCancelDuringCall(t *testing.T) {
	base, arrived := hangingServer(t)
	c := newClient(t, base, goodCred)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-arrived
		cancel()
	}()
	_, err := c.InstallBackupClients(ctx, []string{"i-a"})
	assertFault(t, err, "hbr.InstallBackupClients", fault.Permanent, "")
	assert.ErrorIs(t, err, context.Canceled)
}

func TestDeadlineDuringCall(t *testing.T) {
	base, _ := hangingServer(t)
	c := newClient(t, base, goodCred)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.DescribeTask(ctx, "t-1")
	assertFault(t, err, "hbr.DescribeTask", fault.Retryable, "")
}

func TestRequestTimeout(t *testing.T) {
	base, _ := hangingServer(t)
	c, err := hbr.New(hbr.Config{Region: "cn-hangzhou", Endpoint: base, Timeout: 200 * time.Millisecond}, goodCred)
	require.NoError(t, err)
	_, err = c.DescribeTask(context.Background(), "t-1")
	assertFault(t, err, "hbr.DescribeTask", fault.Retryable, "")
	var netErr net.Error
	require.ErrorAs(t, err, &netErr)
	assert.True(t, netErr.Timeout())
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	_, err = newClient(t, "http://"+addr, goodCred).InstallBackupClients(context.Background(), []string{"i-a"})
	assertFault(t, err, "hbr.InstallBackupClients", fault.Retryable, "")
	var urlErr *url.Error
	require.ErrorAs(t, err, &urlErr)
	assert.NotContains(t, urlErr.URL, "Signature", "signed query stripped from the error")
	assert.NotContains(t, err.Error(), testAK)
}

func TestWire(t *testing.T) {
	_, _, rec, base := startSim(t)
	c, err := hbr.New(hbr.Config{Region: "cn-hangzhou", Endpoint: base,
		CrossAccountType: "CROSS_ACCOUNT", CrossAccountUserID: 1234567890123, CrossAccountRoleName: "HbrRole"}, goodCred)
	require.NoError(t, err)
	ctx := context.Background()

	res, err := c.InstallBackupClients(ctx, []string{"i-a", "i-b"})
	require.NoError(t, err)
	inst := rec.Last(t)
	assert.Equal(t, "POST", inst.Method)
	assert.Equal(t, `["i-a","i-b"]`, inst.Query.Get("InstanceIds"))
	assert.Equal(t, "InstallBackupClients", inst.Query.Get("Action"))
	assert.Equal(t, "2017-09-08", inst.Query.Get("Version"))
	assert.Equal(t, "CROSS_ACCOUNT", inst.Query.Get("CrossAccountType"))
	assert.Equal(t, "1234567890123", inst.Query.Get("CrossAccountUserId"))
	assert.Equal(t, "HbrRole", inst.Query.Get("CrossAccountRoleName"))
	assert.Equal(t, "cn-hangzhou", inst.Query.Get("RegionId"))
	assert.Equal(t, testToken, inst.Query.Get("SecurityToken"))

	_, err = c.DescribeTask(ctx, res.TaskID)
	require.NoError(t, err)
	desc := rec.Last(t)
	assert.Equal(t, "POST", desc.Method)
	assert.Equal(t, res.TaskID, desc.Query.Get("TaskId"))
	assert.Equal(t, "DescribeTask", desc.Query.Get("Action"))

	_, err = c.DescribeBackupClients(ctx, []string{"i-a"})
	require.NoError(t, err)
	list := rec.Last(t)
	assert.Equal(t, "POST", list.Method)
	assert.Equal(t, `["i-a"]`, list.Form.Get("InstanceIds"), "InstanceIds in the form body")
	assert.False(t, list.Query.Has("InstanceIds"))
	assert.Equal(t, "ECS_CLIENT", list.Query.Get("ClientType"))
	assert.Equal(t, "1", list.Query.Get("PageNumber"))
	assert.Equal(t, "99", list.Query.Get("PageSize"))

	plain := newClient(t, base, goodCred)
	_, err = plain.InstallBackupClients(ctx, []string{"i-c"})
	require.NoError(t, err)
	for _, k := range []string{"CrossAccountType", "CrossAccountUserId", "CrossAccountRoleName"} {
		assert.False(t, rec.Last(t).Query.Has(k), "%s sent only when configured", k)
	}
}

func TestDescribeBackupClientsFollowsPages(t *testing.T) {
	sim, _, _, base := startSim(t)
	c := newClient(t, base, goodCred)
	ctx := context.Background()
	var ids []string
	for i := range 100 {
		ids = append(ids, fmt.Sprintf("i-%03d", i))
	}
	for i := 0; i < len(ids); i += hbr.MaxInstallIDs {
		_, err := c.InstallBackupClients(ctx, ids[i:i+hbr.MaxInstallIDs])
		require.NoError(t, err)
	}
	clients, err := c.DescribeBackupClients(ctx, ids)
	require.NoError(t, err)
	assert.Len(t, clients, 100)
	assert.Equal(t, 2, sim.Calls()["hbr.DescribeBackupClients"], "99 + 1")
	for _, cl := range clients {
		assert.Equal(t, "ACTIVATED", cl.Status)
	}
}

func TestDescribeBackupClientsIsBounded(t *testing.T) {
	var page []string
	for i := range 99 {
		page = append(page, fmt.Sprintf(`{"ClientId":"c-%d","InstanceId":"i-a","Status":"ACTIVATED"}`, i))
	}
	var mu sync.Mutex
	calls := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		io.WriteString(w, `{"Success":true,"Clients":[`+strings.Join(page, ",")+`]}`)
	}))
	t.Cleanup(ts.Close)
	_, err := newClient(t, ts.URL, goodCred).DescribeBackupClients(context.Background(), []string{"i-a"})
	assertFault(t, err, "hbr.DescribeBackupClients", fault.Permanent, "")
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 10, calls)
}

func TestConcurrentUse(t *testing.T) {
	sim, _, _, base := startSim(t)
	c := newClient(t, base, goodCred)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Go(func() {
			res, err := c.InstallBackupClients(context.Background(), []string{fmt.Sprintf("i-%d", i)})
			if err != nil {
				errs <- err
				return
			}
			if _, err := c.DescribeTask(context.Background(), res.TaskID); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.Len(t, sim.Tasks(), 8)
}

func TestErrorsAreFaultErrors(t *testing.T) {
	// errors.As on the outermost value, not just somewhere in the chain.
	base := rawServer(t, 400, "application/json", `{"Code":"Throttling.Api","Message":"x"}`)
	_, err := newClient(t, base, goodCred).DescribeTask(context.Background(), "t-1")
	var fe *fault.Error
	require.True(t, errors.As(err, &fe))
	assert.Same(t, fe, err.(*fault.Error))
	assert.True(t, fault.Is(err, fault.Retryable))
}
