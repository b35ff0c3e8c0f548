package rpcsim

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/url"
	"slices"
	"strings"
)

// Sign returns the Alibaba Cloud RPC signature (SignatureVersion 1.0,
// HMAC-SHA1) of params for an HTTP method, as the core SDK computes it: the
// Signature parameter is ignored, every other key is used with its first
// value. Tests use it to craft or tamper with requests.
func Sign(method string, params url.Values, secret string) string {
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(StringToSign(method, params)))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// StringToSign returns METHOD&%2F&escape(canonical query) for params, without
// the Signature parameter.
func StringToSign(method string, params url.Values) string {
	canon := make(url.Values, len(params))
	for k, v := range params {
		if k == "Signature" || len(v) == 0 {
			continue
		}
		canon.Set(k, v[0])
	}
	enc := canon.Encode()
	enc = strings.ReplaceAll(enc, "+", "%20")
	enc = strings.ReplaceAll(enc, "*", "%2A")
	enc = strings.ReplaceAll(enc, "%7E", "~")
	return strings.ToUpper(method) + "&%2F&" + url.QueryEscape(enc)
}

// signParams is Sign for the one-value-per-key parameters a request was
// parsed into, without building url.Values twice on every request.
func signParams(method string, p map[string]string, secret string) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		if k != "Signature" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var canon strings.Builder
	for i, k := range keys { // as url.Values.Encode
		if i > 0 {
			canon.WriteByte('&')
		}
		canon.WriteString(url.QueryEscape(k))
		canon.WriteByte('=')
		canon.WriteString(url.QueryEscape(p[k]))
	}
	enc := percentReplacer.Replace(canon.String())
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(strings.ToUpper(method) + "&%2F&" + url.QueryEscape(enc)))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// percentReplacer makes a QueryEscape'd string percent-encoded the way the
// signature wants: "+" → "%20", "*" → "%2A", "%7E" → "~".
var percentReplacer = strings.NewReplacer("+", "%20", "*", "%2A", "%7E", "~")
