package fclog

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/aliyun/fc-runtime-go-sdk/fccontext"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRequestFieldsButNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "info")
	fctx := &fccontext.FcContext{RequestID: "req-1", RetryCount: 2,
		Credentials: fccontext.Credentials{AccessKeyId: "STS.x", AccessKeySecret: "shh", SecurityToken: "tok"}}
	fctx.Function.Name = "install"
	log.InfoContext(fccontext.NewContext(context.Background(), fctx), "hello")
	log.DebugContext(context.Background(), "hidden at info")
	var m map[string]any
	require.NoError(t, json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &m))
	assert.Equal(t, "req-1", m["requestId"])
	assert.Equal(t, "install", m["function"])
	assert.EqualValues(t, 2, m["retryCount"])
	assert.NotContains(t, buf.String(), "shh")
	assert.NotContains(t, buf.String(), "tok")
}

func TestParseLevel(t *testing.T) {
	assert.Equal(t, "DEBUG", ParseLevel("debug").String())
	assert.Equal(t, "WARN", ParseLevel("Warning").String())
	assert.Equal(t, "INFO", ParseLevel("nonsense").String())
}
