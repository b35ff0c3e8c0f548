package rpcsim_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim"
)

const (
	testAK     = "LTAI-test-ak"
	testSecret = "test-secret/with+odd=chars"
	testToken  = "sts-token+/=abc"
	testVer    = "2017-09-08"
)

func newServer(t *testing.T, token string) (*rpcsim.Server, *httptest.Server) {
	t.Helper()
	s := rpcsim.New(rpcsim.Options{
		Product: "hbr", Version: testVer,
		AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: token,
		Seed: 7,
	})
	s.Handle("Echo", func(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
		return map[string]any{"Got": req.Params["Word"], "Method": req.Method}, nil
	})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

// signed returns a correctly signed parameter set for action.
func signed(method, action string, extra map[string]string, token string) url.Values {
	v := url.Values{}
	v.Set("Action", action)
	v.Set("Version", testVer)
	v.Set("Format", "JSON")
	v.Set("AccessKeyId", testAK)
	v.Set("SignatureMethod", "HMAC-SHA1")
	v.Set("SignatureVersion", "1.0")
	v.Set("SignatureType", "")
	v.Set("SignatureNonce", strconv.FormatInt(time.Now().UnixNano(), 36)+extra["_nonce"])
	v.Set("Timestamp", time.Now().UTC().Format(rpcsim.TimestampLayout))
	if token != "" {
		v.Set("SecurityToken", token)
	}
	for k, val := range extra {
		if k != "_nonce" {
			v.Set(k, val)
		}
	}
	v.Set("Signature", rpcsim.Sign(method, v, testSecret))
	return v
}

type reply struct {
	Status int
	Body   map[string]any
}

func send(t *testing.T, baseURL, method string, query, form url.Values) reply {
	t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, err := http.NewRequest(method, baseURL+"/?"+query.Encode(), body)
	require.NoError(t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return reply{Status: resp.StatusCode, Body: out}
}

func TestRealSDKIsAccepted(t *testing.T) {
	for _, token := range []string{"", testToken} {
		t.Run("token="+strconv.FormatBool(token != ""), func(t *testing.T) {
			_, ts := newServer(t, token)
			var provider any = credentials.NewStaticAKCredentialsProvider(testAK, testSecret)
			if token != "" {
				provider = credentials.NewStaticSTSCredentialsProvider(testAK, testSecret, token)
			}
			client, err := sdk.NewClientWithOptions("cn-hangzhou", sdk.NewConfig(), provider)
			require.NoError(t, err)
			req := requests.NewCommonRequest()
			req.Method = requests.POST
			req.Scheme = "http"
			req.Domain = strings.TrimPrefix(ts.URL, "http://")
			req.Version = testVer
			req.ApiName = "Echo"
			req.QueryParams["Word"] = "a b*c~d"
			req.FormParams["Other"] = `["x","y"]`
			resp, err := client.ProcessCommonRequest(req)
			require.NoError(t, err)
			var body map[string]any
			require.NoError(t, json.Unmarshal(resp.GetHttpContentBytes(), &body))
			assert.Equal(t, "a b*c~d", body["Got"])
			assert.Equal(t, true, body["Success"])
			assert.Equal(t, "200", body["Code"])
			assert.Equal(t, "successful", body["Message"])
			assert.NotEmpty(t, body["RequestId"])
		})
	}
}

func TestRejections(t *testing.T) {
	tests := []struct {
		name       string
		token      string // server's token
		tamper     func(v url.Values)
		method     string
		wantStatus int
		wantCode   string
	}{
		{name: "tampered param", tamper: func(v url.Values) { v.Set("Word", "evil") },
			wantStatus: 400, wantCode: "SignatureDoesNotMatch"},
		{name: "wrong secret", tamper: func(v url.Values) { v.Set("Signature", rpcsim.Sign("POST", v, "nope")) },
			wantStatus: 400, wantCode: "SignatureDoesNotMatch"},
		{name: "signed for GET sent as POST", tamper: func(v url.Values) { v.Set("Signature", rpcsim.Sign("GET", v, testSecret)) },
			wantStatus: 400, wantCode: "SignatureDoesNotMatch"},
		{name: "unknown access key", tamper: func(v url.Values) { v.Set("AccessKeyId", "other") },
			wantStatus: 404, wantCode: "InvalidAccessKeyId.NotFound"},
		{name: "missing signature", tamper: func(v url.Values) { v.Del("Signature") },
			wantStatus: 400, wantCode: "IncompleteSignature"},
		{name: "missing timestamp", tamper: func(v url.Values) { v.Del("Timestamp") },
			wantStatus: 400, wantCode: "MissingParameter"},
		{name: "missing nonce", tamper: func(v url.Values) { v.Del("SignatureNonce") },
			wantStatus: 400, wantCode: "MissingParameter"},
		{name: "bad timestamp", tamper: func(v url.Values) {
			v.Set("Timestamp", "yesterday")
			v.Set("Signature", rpcsim.Sign("POST", v, testSecret))
		}, wantStatus: 400, wantCode: "InvalidTimeStamp.Format"},
		{name: "old timestamp", tamper: func(v url.Values) {
			v.Set("Timestamp", time.Now().Add(-16*time.Minute).UTC().Format(rpcsim.TimestampLayout))
			v.Set("Signature", rpcsim.Sign("POST", v, testSecret))
		}, wantStatus: 400, wantCode: "InvalidTimeStamp.Expired"},
		{name: "wrong version", tamper: func(v url.Values) { v.Set("Version", "2020-01-01") },
			wantStatus: 404, wantCode: "InvalidVersion"},
		{name: "unknown action", tamper: func(v url.Values) { v.Set("Action", "Nope") },
			wantStatus: 404, wantCode: "InvalidAction.NotFound"},
		{name: "missing token", token: testToken,
			wantStatus: 400, wantCode: "MissingSecurityToken"},
		{name: "wrong token", token: testToken, tamper: func(v url.Values) {
			v.Set("SecurityToken", "other")
			v.Set("Signature", rpcsim.Sign("POST", v, testSecret))
		}, wantStatus: 400, wantCode: "InvalidSecurityToken.MismatchWithAccessKey"},
		{name: "unexpected token", tamper: func(v url.Values) {
			v.Set("SecurityToken", "other")
			v.Set("Signature", rpcsim.Sign("POST", v, testSecret))
		}, wantStatus: 400, wantCode: "InvalidSecurityToken.MismatchWithAccessKey"},
		{name: "PUT", method: http.MethodPut, wantStatus: 405, wantCode: "UnsupportedHTTPMethod"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, ts := newServer(t, tc.token)
			method := cmpOr(tc.method, http.MethodPost)
			v := signed(method, "Echo", map[string]string{"Word": "hi"}, "")
			if tc.tamper != nil {
				tc.tamper(v)
			}
			r := send(t, ts.URL, method, v, nil)
			assert.Equal(t, tc.wantStatus, r.Status)
			assert.Equal(t, tc.wantCode, r.Body["Code"])
			for _, k := range []string{"RequestId", "HostId", "Message", "Recommend"} {
				assert.IsType(t, "", r.Body[k], k)
			}
			assert.Equal(t, "hbr.aliyuncs.com", r.Body["HostId"])
			assert.Equal(t, 1, s.Calls()["hbr."+v.Get("Action")], "rejected calls are counted")
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestSignatureMismatchMessage(t *testing.T) {
	_, ts := newServer(t, "")
	v := signed("POST", "Echo", map[string]string{"Word": "hi"}, "")
	v.Set("Word", "changed")
	r := send(t, ts.URL, "POST", v, nil)
	msg, _ := r.Body["Message"].(string)
	assert.True(t, strings.HasPrefix(msg, "Specified signature is not matched with our calculation."), msg)
	assert.Contains(t, msg, "server string to sign is:POST&%2F&")
}

func TestFormAndQueryAreBothSignedAndMerged(t *testing.T) {
	_, ts := newServer(t, "")
	all := signed("POST", "Echo", map[string]string{"Word": "from form"}, "")
	form := url.Values{"Word": {all.Get("Word")}}
	all.Del("Word")
	r := send(t, ts.URL, "POST", all, form)
	require.Equal(t, 200, r.Status, r.Body)
	assert.Equal(t, "from form", r.Body["Got"])
}

func TestGETIsAccepted(t *testing.T) {
	_, ts := newServer(t, "")
	r := send(t, ts.URL, "GET", signed("GET", "Echo", map[string]string{"Word": "g"}, ""), nil)
	require.Equal(t, 200, r.Status, r.Body)
	assert.Equal(t, "GET", r.Body["Method"])
}

func TestNonceReuse(t *testing.T) {
	_, ts := newServer(t, "")
	v := signed("POST", "Echo", nil, "")
	first := send(t, ts.URL, "POST", v, nil)
	again := send(t, ts.URL, "POST", v, nil)
	assert.Equal(t, 200, first.Status)
	assert.Equal(t, 400, again.Status)
	assert.Equal(t, "SignatureNonceUsed", again.Body["Code"])
}

func TestTimestampCheckedAgainstWallClockNotNow(t *testing.T) {
	var wallOffset atomic.Int64
	s := rpcsim.New(rpcsim.Options{Product: "x", Version: testVer, AccessKeyID: testAK, AccessKeySecret: testSecret,
		Now:       func() time.Time { return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) },
		WallClock: func() time.Time { return time.Now().Add(time.Duration(wallOffset.Load())) }})
	var seenYear atomic.Int64
	s.Handle("Echo", func(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
		seenYear.Store(int64(req.Time.Year()))
		return nil, nil
	})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)

	ok := send(t, ts.URL, "POST", signed("POST", "Echo", nil, ""), nil)
	assert.Equal(t, 200, ok.Status, "a simulated Now far in the past does not affect the Timestamp check")
	assert.Equal(t, int64(2000), seenYear.Load(), "handlers get the simulated time")

	wallOffset.Store(int64(20 * time.Minute))
	late := send(t, ts.URL, "POST", signed("POST", "Echo", map[string]string{"_nonce": "2"}, ""), nil)
	assert.Equal(t, "InvalidTimeStamp.Expired", late.Body["Code"])
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name       string
		faults     rpcsim.Faults
		wantStatus []int
		wantCode   []any
	}{
		{name: "throttle next 2", faults: rpcsim.Faults{ThrottleNext: 2},
			wantStatus: []int{400, 400, 200}, wantCode: []any{"Throttling.User", "Throttling.User", "200"}},
		{name: "server error next", faults: rpcsim.Faults{ServerErrorNext: 1},
			wantStatus: []int{503, 200}, wantCode: []any{"ServiceUnavailable", "200"}},
		{name: "internal error", faults: rpcsim.Faults{ServerErrorNext: 1, ServerErrorStatus: 500},
			wantStatus: []int{500, 200}, wantCode: []any{"InternalError", "200"}},
		{name: "throttle before server error", faults: rpcsim.Faults{ThrottleNext: 1, ServerErrorNext: 1},
			wantStatus: []int{400, 503, 200}, wantCode: []any{"Throttling.User", "ServiceUnavailable", "200"}},
		{name: "throttle rate 1", faults: rpcsim.Faults{ThrottleRate: 1},
			wantStatus: []int{400, 400}, wantCode: []any{"Throttling.User", "Throttling.User"}},
		{name: "server error rate 1", faults: rpcsim.Faults{ServerErrorRate: 1},
			wantStatus: []int{503, 503}, wantCode: []any{"ServiceUnavailable", "ServiceUnavailable"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, ts := newServer(t, "")
			var handled atomic.Int32
			s.Handle("Count", func(rpcsim.Request) (map[string]any, *rpcsim.APIError) {
				handled.Add(1)
				return nil, nil
			})
			s.SetFaults(tc.faults)
			ok := 0
			for i := range tc.wantStatus {
				r := send(t, ts.URL, "POST", signed("POST", "Count", map[string]string{"_nonce": strconv.Itoa(i)}, ""), nil)
				assert.Equal(t, tc.wantStatus[i], r.Status, "call %d", i)
				assert.Equal(t, tc.wantCode[i], r.Body["Code"], "call %d", i)
				if r.Status == 200 {
					ok++
				}
			}
			assert.Equal(t, int32(ok), handled.Load(), "faults apply before the handler")
		})
	}
}

func TestFaultRatesAreSeeded(t *testing.T) {
	run := func() []int {
		s, ts := newServer(t, "")
		s.SetFaults(rpcsim.Faults{ThrottleRate: 0.5})
		var got []int
		for i := range 20 {
			got = append(got, send(t, ts.URL, "POST", signed("POST", "Echo", map[string]string{"_nonce": strconv.Itoa(i)}, ""), nil).Status)
		}
		return got
	}
	a, b := run(), run()
	assert.Equal(t, a, b)
	assert.Contains(t, a, 400)
	assert.Contains(t, a, 200)
}

func TestOnCallAndHandlerErrors(t *testing.T) {
	s, ts := newServer(t, testToken)
	s.Handle("Fail", func(rpcsim.Request) (map[string]any, *rpcsim.APIError) {
		return nil, rpcsim.Errorf(http.StatusConflict, "Busy", "try %s", "later")
	})
	s.Handle("Panic", func(rpcsim.Request) (map[string]any, *rpcsim.APIError) { panic("boom") })
	s.Handle("NotSuccess", func(rpcsim.Request) (map[string]any, *rpcsim.APIError) {
		return map[string]any{"Success": false, "Code": "Nope"}, nil
	})
	var mu sync.Mutex
	var calls []rpcsim.Call
	s.OnCall(func(c rpcsim.Call) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, c)
	})

	fail := send(t, ts.URL, "POST", signed("POST", "Fail", nil, testToken), nil)
	assert.Equal(t, 409, fail.Status)
	assert.Equal(t, "Busy", fail.Body["Code"])
	assert.Equal(t, "try later", fail.Body["Message"])

	p := send(t, ts.URL, "POST", signed("POST", "Panic", nil, testToken), nil)
	assert.Equal(t, 500, p.Status)
	assert.Equal(t, "InternalError", p.Body["Code"])

	ns := send(t, ts.URL, "POST", signed("POST", "NotSuccess", nil, testToken), nil)
	assert.Equal(t, 200, ns.Status)
	assert.Equal(t, false, ns.Body["Success"], "handler-provided envelope fields win")
	assert.Equal(t, "Nope", ns.Body["Code"])

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, calls, 3)
	assert.Equal(t, "Fail", calls[0].Action)
	assert.Equal(t, 409, calls[0].Status)
	assert.Equal(t, "Busy", calls[0].Code)
	assert.Equal(t, "***", calls[0].Params["SecurityToken"], "token masked")
	assert.Equal(t, fail.Body["RequestId"], calls[0].RequestID)
	assert.Nil(t, calls[0].Response)
	assert.Equal(t, "", calls[2].Code)
	assert.Equal(t, false, calls[2].Response["Success"])
	assert.Equal(t, map[string]int{"hbr.Fail": 1, "hbr.Panic": 1, "hbr.NotSuccess": 1}, s.Calls())
}

func TestStartClose(t *testing.T) {
	s := rpcsim.New(rpcsim.Options{Product: "hbr", Version: testVer, AccessKeyID: testAK, AccessKeySecret: testSecret})
	s.Handle("Echo", func(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
		return map[string]any{"Got": req.Params["Word"]}, nil
	})
	base, err := s.Start()
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(base, "http://127.0.0.1:"), base)
	_, err = s.Start()
	assert.Error(t, err, "second Start")
	r := send(t, base, "POST", signed("POST", "Echo", map[string]string{"Word": "up"}, ""), nil)
	assert.Equal(t, "up", r.Body["Got"])
	require.NoError(t, s.Close())
	_, err = http.Post(base+"/", "text/plain", nil)
	assert.Error(t, err, "closed server refuses connections")
}

func TestSignMatchesSDKEscaping(t *testing.T) {
	// Values exercising the +/%20, */%2A and %7E/~ fix-ups must verify
	// whether sent in the query or the form.
	_, ts := newServer(t, "")
	v := signed("POST", "Echo", map[string]string{"Word": "sp ace*star~tilde+plus/slash"}, "")
	r := send(t, ts.URL, "POST", v, nil)
	require.Equal(t, 200, r.Status, r.Body)
	assert.Equal(t, "sp ace*star~tilde+plus/slash", r.Body["Got"])
}

func TestLatencyIsSplitAroundTheAction(t *testing.T) {
	const latency = 80 * time.Millisecond
	s := rpcsim.New(rpcsim.Options{Product: "hbr", Version: testVer, AccessKeyID: testAK, AccessKeySecret: testSecret, Latency: latency})
	var ran atomic.Int64 // when the handler ran, UnixNano
	s.Handle("Echo", func(rpcsim.Request) (map[string]any, *rpcsim.APIError) {
		ran.Store(time.Now().UnixNano())
		return nil, nil
	})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)

	start := time.Now()
	r := send(t, ts.URL, "POST", signed("POST", "Echo", nil, ""), nil)
	end := time.Now()

	require.Equal(t, http.StatusOK, r.Status, r.Body)
	action := time.Unix(0, ran.Load())
	assert.GreaterOrEqual(t, action.Sub(start), latency/2, "the action takes effect after half the round trip")
	assert.GreaterOrEqual(t, end.Sub(action), latency/2, "the answer takes the other half")
}

func TestPrincipalsAreAcceptedAndNamed(t *testing.T) {
	set := callers.Set{
		{Name: "install", Credentials: cloudauth.Credentials{AccessKeyID: "ak-install", AccessKeySecret: "sk-install", SecurityToken: "tok-install"}},
		{Name: "poller", Credentials: cloudauth.Credentials{AccessKeyID: "ak-poller", AccessKeySecret: "sk-poller"}},
	}
	s := rpcsim.New(rpcsim.Options{Product: "hbr", Version: testVer, AccessKeyID: testAK, AccessKeySecret: testSecret, Principals: set})
	s.Handle("Echo", func(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
		return map[string]any{"Principal": req.Principal}, nil
	})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	for _, p := range append(callers.Set{{Name: "", Credentials: cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: testSecret}}}, set...) {
		provider := credentials.NewStaticAKCredentialsProvider(p.Credentials.AccessKeyID, p.Credentials.AccessKeySecret)
		var cred any = provider
		if p.Credentials.SecurityToken != "" {
			cred = credentials.NewStaticSTSCredentialsProvider(p.Credentials.AccessKeyID, p.Credentials.AccessKeySecret, p.Credentials.SecurityToken)
		}
		client, err := sdk.NewClientWithOptions("cn-hangzhou", sdk.NewConfig(), cred)
		require.NoError(t, err)
		req := requests.NewCommonRequest()
		req.Method, req.Scheme, req.Domain = requests.POST, "http", strings.TrimPrefix(ts.URL, "http://")
		req.Version, req.ApiName = testVer, "Echo"
		resp, err := client.ProcessCommonRequest(req)
		require.NoError(t, err, "principal %q", p.Name)
		var body map[string]any
		require.NoError(t, json.Unmarshal(resp.GetHttpContentBytes(), &body))
		assert.Equal(t, p.Name, body["Principal"], "Request.Principal")
	}
	assert.Equal(t, map[string]map[string]int{"": {"hbr.Echo": 1}, "install": {"hbr.Echo": 1}, "poller": {"hbr.Echo": 1}}, s.CallsBy())
	assert.Equal(t, map[string]int{"hbr.Echo": 3}, s.Calls())
}
