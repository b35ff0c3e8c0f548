// Package cloudauth supplies the Alibaba Cloud credentials for one invocation:
// the STS triplet Function Compute hands each invocation in its context, or the
// ALIBABA_CLOUD_* environment variables as a fallback.
//
// Credentials hold secrets. Their String and LogValue methods redact them, so
// passing them to fmt or slog by mistake does not leak anything.
package cloudauth

import (
	"context"
	"log/slog"

	"github.com/aliyun/fc-runtime-go-sdk/fccontext"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

// Credentials is an access key pair with an optional STS security token.
type Credentials struct {
	AccessKeyID     string
	AccessKeySecret string
	SecurityToken   string
}

// String redacts the secret and token.
func (c Credentials) String() string {
	return "Credentials{AccessKeyID:" + maskID(c.AccessKeyID) + ", AccessKeySecret:***, SecurityToken:***}"
}

// GoString redacts like String, for %#v.
func (c Credentials) GoString() string { return c.String() }

// LogValue implements slog.LogValuer with redaction.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("accessKeyId", maskID(c.AccessKeyID)))
}

// Valid reports whether the key pair is present.
func (c Credentials) Valid() bool { return c.AccessKeyID != "" && c.AccessKeySecret != "" }

func maskID(id string) string {
	if len(id) <= 4 {
		return "***"
	}
	return id[:4] + "***"
}

// FromContext returns the invocation's credentials from the Function Compute
// context, falling back to ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET
// and ALIBABA_CLOUD_SECURITY_TOKEN read through getenv. It returns an Invalid
// error when neither source has a key pair (usually: the function has no role).
func FromContext(ctx context.Context, getenv func(string) string) (Credentials, error) {
	if fctx, ok := fccontext.FromContext(ctx); ok && fctx != nil {
		c := Credentials{
			AccessKeyID:     fctx.Credentials.AccessKeyId,
			AccessKeySecret: fctx.Credentials.AccessKeySecret,
			SecurityToken:   fctx.Credentials.SecurityToken,
		}
		if c.Valid() {
			return c, nil
		}
	}
	c := Credentials{
		AccessKeyID:     getenv("ALIBABA_CLOUD_ACCESS_KEY_ID"),
		AccessKeySecret: getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
		SecurityToken:   getenv("ALIBABA_CLOUD_SECURITY_TOKEN"),
	}
	if !c.Valid() {
		return Credentials{}, fault.Invalidf("cloudauth.FromContext",
			"no credentials: the invocation carries none and ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET are unset; give the function a role")
	}
	return c, nil
}
