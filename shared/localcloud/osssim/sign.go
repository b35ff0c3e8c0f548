package osssim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
)

// The OSS V4 signature, as alibabacloud-oss-go-sdk-v2 v1.6.1 computes it in
// the Authorization header (oss/signer/v4.go, authHeader; [CODE], read
// 2026). The SDK sets x-oss-date (DatetimeLayout, UTC), Date,
// x-oss-security-token (STS only) and x-oss-content-sha256:UNSIGNED-PAYLOAD,
// then:
//
//	CanonicalRequest = METHOD "\n"
//	  escape("/" + bucket + "/" + key) "\n"      (just "/" with no bucket;
//	                                              "/bucket/" for bucket ops;
//	                                              escape keeps A-Za-z0-9-._~/
//	                                              and writes %XX otherwise)
//	  canonical query "\n"                        (the raw query as sent, "+"
//	                                              read as "%20", split on "&",
//	                                              sorted by name, "k=v", or
//	                                              "k" when v is empty)
//	  canonical headers "\n"                      (every x-oss-*,
//	                                              content-type, content-md5
//	                                              and additional header,
//	                                              lower-case, sorted,
//	                                              "k:v1,v2\n" with values
//	                                              trimmed)
//	  additional headers ";"-joined "\n"
//	  x-oss-content-sha256 value (UNSIGNED-PAYLOAD)
//	Scope        = yyyymmdd "/" region "/oss/aliyun_v4_request"
//	StringToSign = "OSS4-HMAC-SHA256\n" x-oss-date "\n" Scope "\n"
//	               hex(sha256(CanonicalRequest))
//	SigningKey   = HMAC(HMAC(HMAC(HMAC("aliyun_v4"+secret, yyyymmdd),
//	               region), "oss"), "aliyun_v4_request")   (HMAC-SHA256)
//	Signature    = hex(HMAC(SigningKey, StringToSign))
//	Authorization: OSS4-HMAC-SHA256 Credential=<ak>/<Scope>
//	               [,AdditionalHeaders=<a;b>],Signature=<hex>
//
// The canonical URI is built from the bucket and key whatever the
// addressing style, so path-style and virtual-hosted requests sign alike.

const (
	// Algorithm names the V4 signature in the Authorization header.
	Algorithm = "OSS4-HMAC-SHA256"
	// DatetimeLayout is the format of the x-oss-date header.
	DatetimeLayout = "20060102T150405Z"
	// UnsignedPayload is the x-oss-content-sha256 value the SDK sends.
	UnsignedPayload = "UNSIGNED-PAYLOAD"
	// Product is the service name in the signing scope.
	Product = "oss"

	dateLayout   = "20060102"
	scopeTail    = "aliyun_v4_request"
	hdrDate      = "X-Oss-Date"
	hdrSHA256    = "X-Oss-Content-Sha256"
	hdrToken     = "X-Oss-Security-Token"
	hdrAuthorize = "Authorization"
)

// Sign signs r in place as the SDK does: it sets x-oss-date and Date from at,
// x-oss-security-token when cred has a token, x-oss-content-sha256 and the
// Authorization header. bucket and key name the resource ("" for none); they
// must match r's URL. Tests use it to craft requests, or to tamper with one
// after signing.
func Sign(r *http.Request, cred cloudauth.Credentials, region, bucket, key string, at time.Time) {
	at = at.UTC()
	r.Header.Set(hdrDate, at.Format(DatetimeLayout))
	r.Header.Set("Date", at.Format(http.TimeFormat))
	if cred.SecurityToken != "" {
		r.Header.Set(hdrToken, cred.SecurityToken)
	}
	r.Header.Set(hdrSHA256, UnsignedPayload)
	date := at.Format(dateLayout)
	scope := date + "/" + region + "/" + Product + "/" + scopeTail
	canon := canonicalRequest(r.Method, canonicalURI(bucket, key), r.URL.RawQuery, r.Header, r.Host, nil)
	sig := signature(signingKey(cred.AccessKeySecret, date, region, Product), stringToSign(at.Format(DatetimeLayout), scope, canon))
	r.Header.Set(hdrAuthorize, Algorithm+" Credential="+cred.AccessKeyID+"/"+scope+",Signature="+sig)
}

// authorization is a parsed V4 Authorization header.
type authorization struct {
	accessKeyID string
	date        string // yyyymmdd from the scope
	region      string
	product     string
	tail        string
	additional  []string
	signature   string
}

// parseAuthorization reads "OSS4-HMAC-SHA256 Credential=…,AdditionalHeaders=…,Signature=…".
func parseAuthorization(h string) (authorization, bool) {
	var a authorization
	rest, ok := strings.CutPrefix(h, Algorithm+" ")
	if !ok {
		return a, false
	}
	var credential string
	for part := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			credential = v
		case "AdditionalHeaders":
			if v != "" {
				a.additional = strings.Split(v, ";")
			}
		case "Signature":
			a.signature = v
		}
	}
	fields := strings.Split(credential, "/")
	if len(fields) != 5 || fields[0] == "" || a.signature == "" {
		return a, false
	}
	a.accessKeyID, a.date, a.region, a.product, a.tail = fields[0], fields[1], fields[2], fields[3], fields[4]
	return a, true
}

func (a authorization) scope() string {
	return a.date + "/" + a.region + "/" + a.product + "/" + a.tail
}

// canonicalURI is "/" + bucket + "/" + key, escaped; "/" with no bucket.
func canonicalURI(bucket, key string) string {
	if bucket == "" {
		return "/"
	}
	return escapePath("/" + bucket + "/" + key)
}

// escapePath percent-encodes every byte but A-Za-z0-9, '-', '.', '_', '~'
// and '/', with upper-case hex.
func escapePath(p string) string {
	const hexDigits = "0123456789ABCDEF"
	clean := true
	for i := 0; i < len(p); i++ {
		if !unreserved(p[i]) {
			clean = false
			break
		}
	}
	if clean {
		return p
	}
	var b strings.Builder
	b.Grow(len(p) + 16)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if unreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '/'
}

// signedHeader reports whether a lower-case header name is always signed.
func signedHeader(low string) bool {
	return strings.HasPrefix(low, "x-oss-") || low == "content-type" || low == "content-md5"
}

// canonicalRequest builds the V4 canonical request. host is used when
// "host" is among the additional headers (it is not in an http.Header).
func canonicalRequest(method, uri, rawQuery string, h http.Header, host string, additional []string) string {
	var b strings.Builder
	b.Grow(256 + len(rawQuery))
	b.WriteString(method)
	b.WriteByte('\n')
	b.WriteString(uri)
	b.WriteByte('\n')
	writeCanonicalQuery(&b, rawQuery)
	b.WriteByte('\n')

	names := make([]string, 0, 8)
	for k := range h {
		low := strings.ToLower(k)
		if signedHeader(low) || slices.Contains(additional, low) {
			names = append(names, low)
		}
	}
	if slices.Contains(additional, "host") && host != "" && !slices.Contains(names, "host") {
		names = append(names, "host")
	}
	slices.Sort(names)
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte(':')
		if k == "host" && len(h.Values(k)) == 0 {
			b.WriteString(host)
		} else {
			for i, v := range h.Values(k) {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(strings.TrimSpace(v))
			}
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(additional, ";"))
	b.WriteByte('\n')
	payload := h.Get(hdrSHA256)
	if payload == "" {
		payload = UnsignedPayload
	}
	b.WriteString(payload)
	return b.String()
}

// writeCanonicalQuery writes the raw query's parameters sorted by name, as
// "k=v" or "k", joined by '&'; "+" counts as "%20" and a repeated name keeps
// its last value (once per occurrence), as the SDK does.
func writeCanonicalQuery(b *strings.Builder, rawQuery string) {
	if rawQuery == "" {
		return
	}
	query := strings.ReplaceAll(rawQuery, "+", "%20")
	type param struct{ k, v string }
	params := make([]param, 0, 8)
	last := make(map[string]string, 8)
	for part := range strings.SplitSeq(query, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		last[k] = v
		params = append(params, param{k: k})
	}
	slices.SortStableFunc(params, func(x, y param) int { return strings.Compare(x.k, y.k) })
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		if v := last[p.k]; v != "" {
			b.WriteByte('=')
			b.WriteString(v)
		}
	}
}

func stringToSign(datetime, scope, canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return Algorithm + "\n" + datetime + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
}

// signingKey derives the V4 signing key of a secret for one day, region
// and product.
func signingKey(secret, date, region, product string) []byte {
	key := hmacSHA256([]byte("aliyun_v4"+secret), date)
	key = hmacSHA256(key, region)
	key = hmacSHA256(key, product)
	return hmacSHA256(key, scopeTail)
}

// signature signs sts with a signing key.
func signature(key []byte, sts string) string {
	return hex.EncodeToString(hmacSHA256(key, sts))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
