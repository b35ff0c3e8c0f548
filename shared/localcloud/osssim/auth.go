package osssim

import (
	"crypto/hmac"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
)

// authenticate checks the request's V4 signature, key, token and date, and
// returns the name of the principal that signed it. Checks run in this
// order: Authorization present and V4 (403 AccessDenied), access key known
// (403 InvalidAccessKeyId), x-oss-date present (403 AccessDenied) and within
// MaxClockSkew of the wall clock (403 RequestTimeTooSkewed), scope naming
// Options.Region and "oss" (400 InvalidArgument, [UNVERIFIED] code), STS
// token equal to the principal's (403 InvalidSecurityToken), signature (403
// SignatureDoesNotMatch, whose body carries the server's StringToSign).
func (s *Server) authenticate(q *request) (string, *apiError) {
	r := q.r
	h := r.Header.Get(hdrAuthorize)
	if h == "" {
		if q.query.Has("x-oss-signature") || q.query.Has("Signature") {
			return "", errNotV4
		}
		return "", errAnonymous
	}
	a, ok := parseAuthorization(h)
	if !ok {
		if strings.HasPrefix(h, Algorithm) {
			return "", invalidArgument("The Authorization header is malformed.")
		}
		return "", errNotV4
	}
	p, ok := s.keys[a.accessKeyID]
	if !ok {
		return "", errUnknownKey
	}
	datetime := r.Header.Get(hdrDate)
	at, err := time.Parse(DatetimeLayout, datetime)
	if err != nil {
		return "", errNoDate
	}
	wall := s.opts.WallClock()
	if d := wall.Sub(at); d > MaxClockSkew || d < -MaxClockSkew {
		e := newError(http.StatusForbidden, CodeRequestTimeTooSkewed,
			"The difference between the request time and the current time is too large.")
		return "", e.with("RequestTime", datetime).
			with("ServerTime", wall.UTC().Format(DatetimeLayout)).
			with("MaxAllowedSkewMilliseconds", strconv.FormatInt(MaxClockSkew.Milliseconds(), 10))
	}
	if a.date != datetime[:len(dateLayout)] || a.region != s.opts.Region || a.product != Product || a.tail != scopeTail {
		return "", invalidArgument("Invalid credential scope " + a.scope() + ": want " +
			datetime[:len(dateLayout)] + "/" + s.opts.Region + "/" + Product + "/" + scopeTail + ".")
	}
	if r.Header.Get(hdrToken) != p.Credentials.SecurityToken {
		return "", errBadToken
	}
	canon := canonicalRequest(r.Method, canonicalURI(q.bucket, q.key), r.URL.RawQuery, r.Header, r.Host, a.additional)
	sts := stringToSign(datetime, a.scope(), canon)
	want := signature(s.signingKey(p, a), sts)
	if !hmac.Equal([]byte(want), []byte(a.signature)) {
		e := newError(http.StatusForbidden, CodeSignatureDoesNotMatch,
			"The request signature we calculated does not match the signature you provided. Check your key and signing method.")
		return "", e.with("StringToSign", sts).with("OSSAccessKeyId", a.accessKeyID)
	}
	return p.Name, nil
}

// signingKey returns the principal's signing key for the request's scope,
// derived once per principal and day (four HMACs saved on every request).
func (s *Server) signingKey(p callers.Principal, a authorization) []byte {
	type cacheKey struct{ id, secret, scope string }
	k := cacheKey{p.Credentials.AccessKeyID, p.Credentials.AccessKeySecret, a.scope()}
	if v, ok := s.keyCache.Load(k); ok {
		return v.([]byte)
	}
	key := signingKey(p.Credentials.AccessKeySecret, a.date, a.region, a.product)
	s.keyCache.Store(k, key)
	return key
}
