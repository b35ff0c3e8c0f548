package rpcsim_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim"
)

// BenchmarkServeHTTP is the emulator's side of one signed RPC call as the
// core SDK sends it (query and form parameters, STS token): parse, verify,
// dispatch, answer. Requests are signed before the timer starts.
//
//	go test -run '^$' -bench ServeHTTP -benchmem ./shared/localcloud/rpcsim
func BenchmarkServeHTTP(b *testing.B) {
	s := rpcsim.New(rpcsim.Options{Product: "hbr", Version: testVer, AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: testToken})
	s.Handle("Echo", func(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
		return map[string]any{"TaskId": "t-" + req.Params["Word"], "InstanceStatuses": []map[string]any{{"InstanceId": "i-a", "ValidInstance": true}}}, nil
	})
	s.OnCall(func(rpcsim.Call) {})
	reqs := make([]*http.Request, b.N)
	form := url.Values{"InstanceIds": {`["i-a","i-b"]`}}
	for i := range reqs {
		q := signed("POST", "Echo", map[string]string{"Word": "w", "RegionId": "cn-hangzhou", "_nonce": fmt.Sprint("-", i)}, testToken)
		q.Del("Signature")
		all := url.Values{}
		for k, v := range q {
			all[k] = v
		}
		for k, v := range form {
			all[k] = v
		}
		q.Set("Signature", rpcsim.Sign("POST", all, testSecret))
		r := httptest.NewRequest("POST", "/?"+q.Encode(), strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		reqs[i] = r
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for _, r := range reqs {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}
