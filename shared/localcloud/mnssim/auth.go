package mnssim

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"sort"
	"strings"
	"time"
)

// authenticate checks a request as MNS does (sdk-notes §3.4): the
// Authorization header "MNS <ak>:<signature>" over the string-to-sign built
// from the raw resource, the Date within 15 minutes, the Content-MD5 of the
// body and, when configured, the security-token header.
func (s *Server) authenticate(r *http.Request, resource string, body []byte) *apiError {
	if s.opts.AccessKeyID == "" && s.opts.AccessKeySecret == "" {
		return nil
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return &apiError{http.StatusBadRequest, "MissingAuthorizationHeader", "Authorization header is required."}
	}
	cred, ok := strings.CutPrefix(auth, "MNS ")
	ak, sig, found := strings.Cut(cred, ":")
	if !ok || !found || ak == "" || sig == "" {
		return &apiError{http.StatusBadRequest, "InvalidAuthorizationHeader", "The Authorization header format is invalid."}
	}
	if ak != s.opts.AccessKeyID {
		return &apiError{http.StatusForbidden, "InvalidAccessKeyId", "The AccessKey Id you provided is not exist."}
	}
	date := r.Header.Get("Date")
	if date == "" {
		return &apiError{http.StatusBadRequest, "MissingDateHeader", "Date header is required."}
	}
	at, err := http.ParseTime(date)
	if err != nil {
		return &apiError{http.StatusBadRequest, "InvalidDateHeader", "The Date header format is invalid."}
	}
	// The SDK stamps Date from the real clock, so compare with the real clock.
	if skew := time.Since(at); skew > dateSkew || skew < -dateSkew {
		return &apiError{http.StatusRequestTimeout, "TimeExpired", "The http request you sent is expired."}
	}
	if r.Header.Get("x-mns-version") == "" {
		return &apiError{http.StatusBadRequest, "MissingVersionHeader", "Version header is required."}
	}
	want := signature(r.Method, r.Header, resource, s.opts.AccessKeySecret)
	if subtle.ConstantTimeCompare([]byte(want), []byte(sig)) != 1 {
		return &apiError{http.StatusForbidden, "SignatureDoesNotMatch",
			"The request signature we calculated does not match the signature you provided. Check your key and signing method."}
	}
	if md := r.Header.Get("Content-MD5"); md != "" && md != contentMD5(body) {
		return &apiError{http.StatusBadRequest, "InvalidDegist", "The Content-MD5 you specified is invalid."}
	}
	if s.opts.SecurityToken != "" &&
		subtle.ConstantTimeCompare([]byte(r.Header.Get("security-token")), []byte(s.opts.SecurityToken)) != 1 {
		return &apiError{http.StatusForbidden, "AccessDenied", "The security token you provided is invalid or missing."}
	}
	return nil
}

// signature computes the MNS request signature:
// base64(HMAC-SHA1(secret, METHOD\nContent-MD5\nContent-Type\nDate\n<x-mns-* headers>\n/resource)).
func signature(method string, h http.Header, resource, secret string) string {
	var mns []string
	for name, values := range h {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "x-mns-") && len(values) > 0 {
			mns = append(mns, lower+":"+strings.TrimSpace(values[0]))
		}
	}
	sort.Strings(mns)
	toSign := method + "\n" +
		h.Get("Content-MD5") + "\n" +
		h.Get("Content-Type") + "\n" +
		h.Get("Date") + "\n" +
		strings.Join(mns, "\n") + "\n" +
		resource
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(toSign))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// contentMD5 is the SDK's Content-MD5: base64 of the lower-case hex digest.
func contentMD5(body []byte) string {
	sum := md5.Sum(body)
	return base64.StdEncoding.EncodeToString([]byte(hex.EncodeToString(sum[:])))
}
