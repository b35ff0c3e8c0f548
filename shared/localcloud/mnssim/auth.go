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

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
)

// keyIndex maps each accepted access key id to its principal: the single
// pair as the principal named "", then the set (the first holder of a key id
// wins). It is empty when the server does not authenticate.
func keyIndex(opts Options) map[string]callers.Principal {
	keys := make(map[string]callers.Principal, len(opts.Principals)+1)
	if opts.AccessKeyID != "" || opts.AccessKeySecret != "" {
		keys[opts.AccessKeyID] = callers.Principal{Credentials: cloudauth.Credentials{
			AccessKeyID: opts.AccessKeyID, AccessKeySecret: opts.AccessKeySecret, SecurityToken: opts.SecurityToken}}
	}
	for _, p := range opts.Principals {
		if _, dup := keys[p.Credentials.AccessKeyID]; !dup && p.Credentials.AccessKeyID != "" {
			keys[p.Credentials.AccessKeyID] = p
		}
	}
	return keys
}

// anyone is the principal of every request to a server that does not
// authenticate.
var anyone = &callers.Principal{}

// claimed returns the principal whose access key id the request's
// Authorization header names (nil when none does), without checking the
// signature; every request is anyone's when the server does not
// authenticate.
func (s *Server) claimed(r *http.Request) *callers.Principal {
	if len(s.keys) == 0 {
		return anyone
	}
	cred, ok := strings.CutPrefix(r.Header.Get("Authorization"), "MNS ")
	ak, _, found := strings.Cut(cred, ":")
	if !ok || !found || ak == "" {
		return nil
	}
	if p, ok := s.keys[ak]; ok {
		return &p
	}
	return nil
}

// authenticate checks a request as MNS does (sdk-notes §3.4): the
// Authorization header "MNS <ak>:<signature>" over the string-to-sign built
// from the raw resource, the Date within 15 minutes, the Content-MD5 of the
// body and, when the principal has one, the security-token header. who is
// the principal the header names (see claimed), nil for an unknown key.
func (s *Server) authenticate(r *http.Request, resource string, body []byte, who *callers.Principal) *apiError {
	if len(s.keys) == 0 {
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
	if who == nil || ak != who.Credentials.AccessKeyID {
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
	want := signature(r.Method, r.Header, resource, who.Credentials.AccessKeySecret)
	if subtle.ConstantTimeCompare([]byte(want), []byte(sig)) != 1 {
		return &apiError{http.StatusForbidden, "SignatureDoesNotMatch",
			"The request signature we calculated does not match the signature you provided. Check your key and signing method."}
	}
	if md := r.Header.Get("Content-MD5"); md != "" && md != contentMD5(body) {
		return &apiError{http.StatusBadRequest, "InvalidDegist", "The Content-MD5 you specified is invalid."}
	}
	if token := who.Credentials.SecurityToken; token != "" &&
		subtle.ConstantTimeCompare([]byte(r.Header.Get("security-token")), []byte(token)) != 1 {
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
