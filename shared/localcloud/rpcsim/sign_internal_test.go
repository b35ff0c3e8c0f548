package rpcsim

import (
	"net/url"
	"testing"
)

// FuzzSignParamsMatchesSign checks the request path's signature against the
// exported Sign, which the tests and the SDK agree on.
func FuzzSignParamsMatchesSign(f *testing.F) {
	f.Add("POST", "Word", "a b*c~d+e/f=g%h", "secret+/=")
	f.Add("GET", "InstanceIds", `["i-a","i-b"]`, "s")
	f.Add("post", "Tag.1.Key", "ключ ✓ \u00e9", "")
	f.Add("POST", "Signature", "ignored", "k")
	f.Add("POST", "empty", "", "k")
	f.Fuzz(func(t *testing.T, method, key, value, secret string) {
		p := map[string]string{
			"Action": "Echo", "Version": "2017-09-08", "AccessKeyId": "ak", "SignatureNonce": "n",
			"Timestamp": "2026-01-01T00:00:00Z", "SignatureType": "", "Signature": "x",
		}
		p[key] = value
		values := url.Values{}
		for k, v := range p {
			values.Set(k, v)
		}
		if got, want := signParams(method, p, secret), Sign(method, values, secret); got != want {
			t.Errorf("signParams(%q, %q=%q) = %s, Sign = %s", method, key, value, got, want)
		}
	})
}
