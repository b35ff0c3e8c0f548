package handler

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/fc-runtime-go-sdk/fccontext"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fclog"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ecssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/osssim"
)

// TestLogsCarryRequestFieldsNotSecrets runs the install and poller handlers
// with their real SDK clients against the emulators, with the invocation's
// STS credentials in the FC context, at DEBUG level, through the paths that
// log the most: an install, a poll, a malformed message, and every call
// refused because the credentials are wrong (the SDK's error text, which
// quotes the request, ends up in outcome details). The secret and the token
// must appear nowhere in the output; the records must carry their fields.
func TestLogsCarryRequestFieldsNotSecrets(t *testing.T) {
	const (
		keyID  = "LTAI5tSecretsTestKeyId"
		secret = "s3cr3t-AccessKeySecret-d41d8cd98f00"
		token  = "CAIS-sts-SecurityToken-9e107d9d372bb6826bd81d3542a419d6"
	)
	hbrSrv := hbrsim.New(hbrsim.Options{AccessKeyID: keyID, AccessKeySecret: secret, SecurityToken: token})
	hbrURL, err := hbrSrv.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = hbrSrv.Close() })
	ecsSrv := ecssim.New(ecssim.Options{AccessKeyID: keyID, AccessKeySecret: secret, SecurityToken: token, Region: "cn-hangzhou"})
	ecsURL, err := ecsSrv.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = ecsSrv.Close() })
	mns := mnssim.New(mnssim.Options{AccessKeyID: keyID, AccessKeySecret: secret, SecurityToken: token})
	mns.CreateQueue("jobs")
	mns.CreateQueue("installs")
	mns.CreateQueue("dlq")
	oss := osssim.New(osssim.Options{Principals: callers.Set{{Name: "fn",
		Credentials: cloudauth.Credentials{AccessKeyID: keyID, AccessKeySecret: secret, SecurityToken: token}}}})
	oss.CreateBucket("ledger-secrets")
	ossURL, err := oss.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = oss.Close() })
	mnsURL, err := mns.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = mns.Close() })

	env := map[string]string{
		"FC_REGION": "cn-hangzhou", "FC_ACCOUNT_ID": "1234567890123456", "QUEUE_NAME": "jobs",
		"DLQ_NAME": "dlq", "MNS_ENDPOINT": mnsURL, "HBR_ENDPOINT": hbrURL, "ECS_ENDPOINT": ecsURL,
		"INSTALL_QUEUE_NAME": "installs", "OSS_ENDPOINT": ossURL, "LEDGER_BUCKET": "ledger-secrets",
		"LOG_LEVEL": "debug", "INSTALL_COALESCE_DELAY": "0", "FIRST_POLL_DELAY": "1",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	require.NoError(t, err)
	var buf bytes.Buffer
	d := DepsFrom(cfg)
	d.Cloud = SDKCloud{Config: cfg, Getenv: func(string) string { return "" }}
	d.Logger = fclog.New(&buf, "debug")
	d.Sleep = func(time.Duration) {}

	invoke := func(sec, tok string) context.Context {
		return fccontext.NewContext(context.Background(), &fccontext.FcContext{RequestID: "req-secrets-1",
			Credentials: fccontext.Credentials{AccessKeyId: keyID, AccessKeySecret: sec, SecurityToken: tok}})
	}
	running := func(id string) []byte {
		return []byte(`{"id":"ev-` + id + `","source":"acs.ecs","type":"ecs:Instance:StateChange",
"aliyunregionid":"cn-hangzhou","data":{"resourceId":"` + id + `","state":"Running"}}`)
	}

	// An install with good credentials, then its poll.
	_, err = NewInstall(d).Handle(invoke(secret, token), running("i-secrets01"))
	require.NoError(t, err)
	msgs, err := mns.Receive(context.Background(), "jobs", 10, time.Minute, 3*time.Second)
	require.NoError(t, err)
	require.NotEmpty(t, msgs, "the install queued its poll")
	stream, err := json.Marshal([]map[string]any{{"id": "m1", "source": "MNS-poller", "type": "mns:Queue:SendMessage",
		"data": map[string]any{"messageId": msgs[0].ID, "messageBody": msgs[0].Body}},
		{"id": "m2", "source": "MNS-poller", "type": "mns:Queue:SendMessage",
			"data": map[string]any{"messageId": "bad", "messageBody": base64.StdEncoding.EncodeToString([]byte("{not json"))}}})
	require.NoError(t, err)
	_, _ = NewPoller(d).Handle(invoke(secret, token), stream)

	// Every call refused: the SDK's errors, with the request they quote.
	// The ledger refuses them first: nothing is claimed, so nothing is
	// installed, and the invocation fails for the platform to retry.
	wrongSecret, wrongToken := "wr0ng-AccessKeySecret-0cc175b9c0f1b6a8", "CAIS-wrong-SecurityToken-92eb5ffee6ae2fec3ad71c777531578f"
	_, errToken := NewInstall(d).Handle(invoke(wrongSecret, wrongToken), running("i-secrets02"))
	require.Error(t, errToken)

	// A wrong secret with the right token: a signature mismatch, whose
	// error text quotes the string to sign.
	_, errSecret := NewInstall(d).Handle(invoke(wrongSecret, token), running("i-secrets03"))
	require.Error(t, errSecret)
	assert.Equal(t, 1, hbrSrv.Installs("i-secrets01"))
	assert.Zero(t, hbrSrv.Installs("i-secrets02")+hbrSrv.Installs("i-secrets03"), "nothing is installed without a claim")

	out := buf.String()
	require.Contains(t, out, `"msg":"install failed"`, "the refused invocations say why")
	for _, s := range []string{secret, token, wrongSecret, wrongToken} {
		for _, text := range []string{out, errToken.Error(), errSecret.Error()} {
			assert.NotContains(t, text, s, "a secret in the logs or an error")
			// Nor any long piece of one (a truncated or URL-encoded copy).
			assert.NotContains(t, text, s[:16])
		}
	}
	outcomes := map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "every line is JSON: %s", line)
		if m["msg"] != "outcome" {
			continue
		}
		outcomes[m["instanceId"].(string)] = m["outcome"]
		for _, k := range []string{"requestId", "jobId", "instanceId", "region", "outcome", "reason", "code", "taskId", "clientId", "attempts", "elapsedSeconds"} {
			assert.Contains(t, m, k, "outcome records carry %s", k)
		}
	}
	assert.Equal(t, map[string]any{"i-secrets01": "INSTALLED"}, outcomes, "every path the test means to take was taken")
	assert.Contains(t, out, `"msg":"malformed message"`)
	assert.NotContains(t, out, "dead letter not sent")
}
