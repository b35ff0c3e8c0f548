package openapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/openapi"
)

var cred = cloudauth.Credentials{AccessKeyID: "LTAI-openapi", AccessKeySecret: "openapi-secret"}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name   string
		cfg    openapi.Config
		wantOp string // "" → valid
	}{
		{name: "valid", cfg: openapi.Config{Product: "ecs", Version: "2014-05-26", Region: "cn-hangzhou"}},
		{name: "no product", cfg: openapi.Config{Version: "v", Region: "cn-hangzhou"}, wantOp: "openapi.New"},
		{name: "upper-case product", cfg: openapi.Config{Product: "ECS", Version: "v", Region: "cn-hangzhou"}, wantOp: "openapi.New"},
		{name: "no version", cfg: openapi.Config{Product: "ram", Region: "cn-hangzhou"}, wantOp: "ram.New"},
		{name: "bad region", cfg: openapi.Config{Product: "ram", Version: "v", Region: "x y"}, wantOp: "ram.New"},
		{name: "http to public", cfg: openapi.Config{Product: "ram", Version: "v", Region: "cn-hangzhou", Endpoint: "http://ram.aliyuncs.com"}, wantOp: "ram.New"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := openapi.New(tc.cfg, cred)
			if tc.wantOp == "" {
				require.NoError(t, err)
				scheme, host := c.Endpoint()
				assert.Equal(t, "https", scheme)
				assert.Equal(t, "ecs.cn-hangzhou.aliyuncs.com", host)
				assert.Equal(t, "ecs.DescribeInstances", c.Op("DescribeInstances"))
				return
			}
			var fe *fault.Error
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tc.wantOp, fe.Op)
			assert.True(t, fault.Is(err, fault.Invalid))
		})
	}
}

func TestCallPlacesParamsAndSigns(t *testing.T) {
	sim := rpcsim.New(rpcsim.Options{Product: "demo", Version: "2020-01-01", AccessKeyID: cred.AccessKeyID, AccessKeySecret: cred.AccessKeySecret})
	var mu sync.Mutex
	var query, form url.Values
	sim.Handle("Echo", func(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
		return map[string]any{"Got": req.Params["A"] + "/" + req.Params["B"]}, nil
	})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		query = r.URL.Query()
		form, _ = url.ParseQuery(string(body))
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)

	c, err := openapi.New(openapi.Config{Product: "demo", Version: "2020-01-01", Region: "cn-hangzhou", Endpoint: ts.URL}, cred)
	require.NoError(t, err)
	body, requestID, err := c.Call(context.Background(), openapi.Request{Action: "Echo",
		Query: map[string]string{"A": "in query"}, Form: map[string]string{"B": `["in","form"]`}})
	require.NoError(t, err)
	assert.NotEmpty(t, requestID)
	var out struct{ Got string }
	require.NoError(t, openapi.Decode("demo.Echo", requestID, body, &out))
	assert.Equal(t, `in query/["in","form"]`, out.Got)

	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, "in query", query.Get("A"))
	assert.False(t, query.Has("B"))
	assert.Equal(t, `["in","form"]`, form.Get("B"))

	err = openapi.Decode("demo.Echo", "r-1", []byte(`{"Got":1}`), &out)
	require.Error(t, err)
	assert.True(t, fault.Is(err, fault.Permanent))
}

func TestTolerantTypes(t *testing.T) {
	var v struct {
		S1, S2, S3 openapi.String
		I1, I2, I3 openapi.Int
		B1, B2, B3 openapi.Bool
		L1         openapi.List[int]
		L2         openapi.List[int]
		L3         openapi.List[int]
		L4         openapi.List[int]
	}
	require.NoError(t, json.Unmarshal([]byte(`{
		"S1":"x","S2":400,"S3":null,
		"I1":7,"I2":"8","I3":"",
		"B1":true,"B2":"TRUE","B3":null,
		"L1":[1,2],"L2":{"Item":[3]},"L3":{"Item":"none"},"L4":null}`), &v))
	assert.Equal(t, openapi.String("x"), v.S1)
	assert.Equal(t, openapi.String("400"), v.S2)
	assert.Equal(t, openapi.String(""), v.S3)
	assert.Equal(t, openapi.Int(7), v.I1)
	assert.Equal(t, openapi.Int(8), v.I2)
	assert.Equal(t, openapi.Int(0), v.I3)
	assert.True(t, bool(v.B1))
	assert.True(t, bool(v.B2))
	assert.False(t, bool(v.B3))
	assert.Equal(t, openapi.List[int]{1, 2}, v.L1)
	assert.Equal(t, openapi.List[int]{3}, v.L2)
	assert.Empty(t, v.L3)
	assert.Empty(t, v.L4)

	var bad struct{ I openapi.Int }
	assert.Error(t, json.Unmarshal([]byte(`{"I":"seven"}`), &bad))
}
