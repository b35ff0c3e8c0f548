package cloudauth_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
)

func TestRedactorRemovesEveryFormOfTheSecrets(t *testing.T) {
	cred := cloudauth.Credentials{AccessKeyID: "LTAIkeyid", AccessKeySecret: "s3cr/t+=", SecurityToken: "tok&en/=="}
	r := cred.Redactor()
	once := url.QueryEscape(cred.AccessKeySecret)
	cases := map[string]string{
		"raw secret":      "sig over " + cred.AccessKeySecret,
		"raw token":       "token " + cred.SecurityToken,
		"query escaped":   "?Signature=x&SecurityToken=" + url.QueryEscape(cred.SecurityToken),
		"escaped twice":   "s=" + url.QueryEscape(once),
		"path escaped":    "/" + url.PathEscape(cred.AccessKeySecret),
		"key id survives": "key LTAIkeyid",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			out := r.Text(in)
			for _, secret := range []string{cred.AccessKeySecret, cred.SecurityToken, once, url.QueryEscape(cred.SecurityToken)} {
				assert.NotContains(t, out, secret)
			}
			if name == "key id survives" {
				assert.Equal(t, in, out)
			}
		})
	}
}

func TestRedactorSnippetIsOneShortLine(t *testing.T) {
	r := cloudauth.Credentials{AccessKeyID: "id", AccessKeySecret: "secret"}.Redactor()
	assert.Equal(t, "a *** b…", r.Snippet("a\n  secret\tb c", 7))
	assert.Equal(t, "a b", r.Snippet("a\n b", 0))
}

func TestRedactorErrorKeepsIdentity(t *testing.T) {
	r := cloudauth.Credentials{AccessKeyID: "id", AccessKeySecret: "secret"}.Redactor()
	assert.NoError(t, r.Error(nil))

	err := r.Error(&net.OpError{Op: "dial", Err: context.DeadlineExceeded, Source: nil, Addr: nil, Net: "tcp secret"})
	assert.NotContains(t, err.Error(), "secret")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	var netErr net.Error
	if assert.True(t, errors.As(err, &netErr)) {
		assert.True(t, netErr.Timeout())
	}
}
