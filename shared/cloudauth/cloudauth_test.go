package cloudauth

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/aliyun/fc-runtime-go-sdk/fccontext"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromContextPrefersTheInvocation(t *testing.T) {
	ctx := fccontext.NewContext(context.Background(), &fccontext.FcContext{
		Credentials: fccontext.Credentials{AccessKeyId: "STS.ctx", AccessKeySecret: "ctx-secret", SecurityToken: "ctx-token"},
	})
	env := envOf(map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "env", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret"})
	c, err := FromContext(ctx, env)
	require.NoError(t, err)
	assert.Equal(t, "STS.ctx", c.AccessKeyID)
	assert.Equal(t, "ctx-token", c.SecurityToken)

	c, err = FromContext(context.Background(), env)
	require.NoError(t, err)
	assert.Equal(t, "env", c.AccessKeyID)

	_, err = FromContext(context.Background(), envOf(nil))
	require.Error(t, err)
	assert.True(t, fault.Is(err, fault.Invalid))
}

func TestSecretsNeverPrint(t *testing.T) {
	c := Credentials{AccessKeyID: "STS.NTabcdef", AccessKeySecret: "very-secret", SecurityToken: "token-xyz"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", slog.Any("cred", c))
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), buf.String()} {
		assert.NotContains(t, s, "very-secret")
		assert.NotContains(t, s, "token-xyz")
		assert.NotContains(t, s, "NTabcdef")
	}
}
