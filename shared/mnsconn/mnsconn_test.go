package mnsconn_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ali_mns "github.com/aliyun/aliyun-mns-go-sdk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/mnsconn"
)

const (
	testAK     = "LTAI-conn"
	testSecret = "conn-secret"
	testToken  = "STS.conn-token"
	testQueue  = "conn-jobs"
	opNew      = "test.New"
	opSend     = "test.Send"
)

var testCred = cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: testSecret}

// dial builds a Conn to endpoint or fails the test.
func dial(t *testing.T, cfg mnsconn.Config, cred cloudauth.Credentials) *mnsconn.Conn {
	t.Helper()
	c, err := mnsconn.New(opNew, cfg, cred)
	require.NoError(t, err)
	return c
}

// send sends one message to queue through c: the SDK call every test of Do
// makes.
func send(ctx context.Context, c *mnsconn.Conn, queue string) (string, error) {
	var resp ali_mns.MessageSendResponse
	err := c.Do(ctx, opSend, "queue "+queue, func(mc ali_mns.MNSClient) error {
		var err error
		resp, err = ali_mns.NewMNSQueue(queue, mc).SendMessage(ali_mns.MessageSendRequest{MessageBody: "eA==", Priority: 8})
		return err
	})
	return resp.MessageId, err
}

// checkFault checks an error's classification, and that it leaks no secret.
func checkFault(t *testing.T, err error, op string, kind fault.Kind, code string) {
	t.Helper()
	var fe *fault.Error
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, op, fe.Op, "op")
	assert.Equal(t, kind, fault.KindOf(err), "kind of %v", err)
	assert.Equal(t, code, fault.CodeOf(err), "code of %v", err)
	assert.NotContains(t, err.Error(), testSecret)
	assert.NotContains(t, err.Error(), testToken)
}

func TestNewChecksEndpointAndCredentials(t *testing.T) {
	t.Parallel()
	const public = "https://1234567890.mns.cn-hangzhou.aliyuncs.com"
	tests := []struct {
		name    string
		cfg     mnsconn.Config
		cred    cloudauth.Credentials
		wantErr bool
	}{
		{name: "public endpoint", cfg: mnsconn.Config{Endpoint: public}},
		{name: "internal endpoint", cfg: mnsconn.Config{Endpoint: "https://1234567890.mns.cn-hangzhou-internal.aliyuncs.com"}},
		{name: "trailing slash", cfg: mnsconn.Config{Endpoint: public + "/"}},
		{name: "loopback IP", cfg: mnsconn.Config{Endpoint: "http://127.0.0.1:8080"}},
		{name: "loopback without port", cfg: mnsconn.Config{Endpoint: "http://127.0.0.1"}},
		{name: "localhost", cfg: mnsconn.Config{Endpoint: "http://localhost:8080"}},
		{name: "IPv6 loopback", cfg: mnsconn.Config{Endpoint: "http://[::1]:8080"}},
		{name: "loopback with account and region", cfg: mnsconn.Config{Endpoint: "http://127.0.0.1:1", AccountID: "42", Region: "cn-beijing"}},
		{name: "STS token", cfg: mnsconn.Config{Endpoint: public}, cred: cloudauth.Credentials{AccessKeyID: "a", AccessKeySecret: "b", SecurityToken: "c"}},
		{name: "timeout", cfg: mnsconn.Config{Endpoint: public, Timeout: time.Minute}},

		{name: "empty endpoint", wantErr: true},
		{name: "http to a real host", cfg: mnsconn.Config{Endpoint: "http://1234567890.mns.cn-hangzhou.aliyuncs.com"}, wantErr: true},
		{name: "http to a LAN address", cfg: mnsconn.Config{Endpoint: "http://10.0.0.5:8080"}, wantErr: true},
		{name: "https to loopback", cfg: mnsconn.Config{Endpoint: "https://127.0.0.1:8080"}, wantErr: true},
		{name: "three dots", cfg: mnsconn.Config{Endpoint: "https://mns.cn-hangzhou.aliyuncs.com"}, wantErr: true},
		{name: "five dots", cfg: mnsconn.Config{Endpoint: "https://1234567890.mns.cn.hangzhou.aliyuncs.com"}, wantErr: true},
		{name: "no dots", cfg: mnsconn.Config{Endpoint: "https://mns"}, wantErr: true},
		{name: "path", cfg: mnsconn.Config{Endpoint: public + "/queues"}, wantErr: true},
		{name: "query", cfg: mnsconn.Config{Endpoint: public + "?x=1"}, wantErr: true},
		{name: "user info", cfg: mnsconn.Config{Endpoint: "https://u:p@1234567890.mns.cn-hangzhou.aliyuncs.com"}, wantErr: true},
		{name: "ftp", cfg: mnsconn.Config{Endpoint: "ftp://1.mns.cn-hangzhou.aliyuncs.com"}, wantErr: true},
		{name: "garbage", cfg: mnsconn.Config{Endpoint: "://"}, wantErr: true},
		{name: "dotted account on loopback", cfg: mnsconn.Config{Endpoint: "http://127.0.0.1:1", AccountID: "1.2"}, wantErr: true},
		{name: "dotted region on loopback", cfg: mnsconn.Config{Endpoint: "http://127.0.0.1:1", Region: "cn.x"}, wantErr: true},
		{name: "negative timeout", cfg: mnsconn.Config{Endpoint: public, Timeout: -time.Second}, wantErr: true},
		{name: "no access key", cfg: mnsconn.Config{Endpoint: public}, cred: cloudauth.Credentials{AccessKeySecret: "b"}, wantErr: true},
		{name: "no secret", cfg: mnsconn.Config{Endpoint: public}, cred: cloudauth.Credentials{AccessKeyID: "a"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cred := tt.cred
			if cred == (cloudauth.Credentials{}) {
				cred = testCred
			}
			c, err := mnsconn.New(opNew, tt.cfg, cred)
			if !tt.wantErr {
				assert.NoError(t, err)
				assert.NotNil(t, c)
				return
			}
			assert.Nil(t, c)
			checkFault(t, err, opNew, fault.Invalid, "")
		})
	}
}

func TestDoAgainstEmulator(t *testing.T) {
	t.Parallel()
	withToken := cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: testToken}
	tests := []struct {
		name     string
		simToken string
		cred     cloudauth.Credentials
		queue    string
		faults   mnssim.Faults
		wantKind fault.Kind
		wantCode string // "" with wantKind Permanent: success
	}{
		{name: "access key", cred: testCred},
		{name: "STS token", simToken: testToken, cred: withToken},
		{name: "wrong secret", cred: cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: "wrong"},
			wantKind: fault.Permanent, wantCode: "SignatureDoesNotMatch"},
		{name: "unknown key", cred: cloudauth.Credentials{AccessKeyID: "LTAI-other", AccessKeySecret: testSecret},
			wantKind: fault.Permanent, wantCode: "InvalidAccessKeyId"},
		{name: "token required but missing", simToken: testToken, cred: testCred,
			wantKind: fault.Permanent, wantCode: "AccessDenied"},
		{name: "wrong token", simToken: testToken, cred: cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: "old"},
			wantKind: fault.Permanent, wantCode: "AccessDenied"},
		{name: "missing queue", cred: testCred, queue: "no-such-queue", wantKind: fault.Permanent, wantCode: "QueueNotExist"},
		{name: "500", cred: testCred, faults: mnssim.Faults{SendFailNext: 1}, wantKind: fault.Retryable, wantCode: "InternalError"},
		{name: "503", cred: testCred, faults: mnssim.Faults{SendFailNext: 1, Status: 503}, wantKind: fault.Retryable, wantCode: "ServiceUnavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := mnssim.New(mnssim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: tt.simToken})
			base, err := sim.Start()
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, sim.Close()) })
			sim.CreateQueue(testQueue)
			sim.SetFaults(tt.faults)
			queue := tt.queue
			if queue == "" {
				queue = testQueue
			}

			id, err := send(context.Background(), dial(t, mnsconn.Config{Endpoint: base}, tt.cred), queue)
			if tt.wantCode == "" {
				require.NoError(t, err)
				stored := sim.Messages(testQueue)
				require.Len(t, stored, 1)
				assert.Equal(t, id, stored[0].ID)
				return
			}
			checkFault(t, err, opSend, tt.wantKind, tt.wantCode)
			assert.Zero(t, sim.Sent(testQueue))
		})
	}
}

// canned serves one fixed reply to every request and returns its URL.
func canned(t *testing.T, status int, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("x-mns-request-id", "REQ")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func mnsError(code string) string {
	return `<?xml version="1.0" encoding="UTF-8"?><Error xmlns="http://mns.aliyuncs.com/doc/v1/"><Code>` + code +
		`</Code><Message>m</Message><RequestId>R</RequestId><HostId>h</HostId></Error>`
}

func TestDoClassifiesReplies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		body     string
		wantKind fault.Kind
		wantCode string
	}{
		{"throttled", 400, mnsError("QpsLimitExceeded"), fault.Retryable, "QpsLimitExceeded"},
		{"internal error", 500, mnsError("InternalError"), fault.Retryable, "InternalError"},
		{"HTML from a proxy", 502, "<html><body>Bad Gateway</body></html>", fault.Retryable, ""},
		{"unknown 5xx code", 503, mnsError("ServiceUnavailable"), fault.Retryable, "ServiceUnavailable"},
		{"malformed XML", 400, mnsError("MalformedXML"), fault.Permanent, "MalformedXML"},
		{"invalid argument", 400, mnsError("InvalidArgument"), fault.Permanent, "InvalidArgument"},
		{"access denied", 403, mnsError("AccessDenied"), fault.Permanent, "AccessDenied"},
		{"topic missing", 404, mnsError("TopicNotExist"), fault.Permanent, "TopicNotExist"},
		{"unknown 4xx code", 400, mnsError("SomethingNew"), fault.Permanent, "SomethingNew"},
		{"garbage success body", 201, "not xml", fault.Retryable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, mnsconn.Config{Endpoint: canned(t, tt.status, tt.body)}, testCred)
			_, err := send(context.Background(), c, testQueue)
			checkFault(t, err, opSend, tt.wantKind, tt.wantCode)
			assert.NotNil(t, errors.Unwrap(err), "the SDK error stays in the chain")
		})
	}
}

func TestDoConnectionRefusedIsRetryable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	_, err = send(context.Background(), dial(t, mnsconn.Config{Endpoint: "http://" + addr}, testCred), testQueue)
	checkFault(t, err, opSend, fault.Retryable, "")
}

func TestDoRecoversAPanic(t *testing.T) {
	t.Parallel()
	c := dial(t, mnsconn.Config{Endpoint: "http://127.0.0.1:1"}, testCred)
	err := c.Do(context.Background(), opSend, "queue q", func(ali_mns.MNSClient) error { panic("boom") })
	checkFault(t, err, opSend, fault.Permanent, "")
	assert.False(t, fault.IsContext(err))
}

func TestDoReturnsNilOnSuccess(t *testing.T) {
	t.Parallel()
	c := dial(t, mnsconn.Config{Endpoint: "http://127.0.0.1:1"}, testCred)
	ran := false
	err := c.Do(context.Background(), opSend, "queue q", func(ali_mns.MNSClient) error {
		ran = true
		return nil
	})
	require.NoError(t, err)
	assert.True(t, ran, "what call wrote is visible once Do returns")
}

// hanging serves requests that block until the test ends, and signals each
// arrival.
func hanging(t *testing.T) (base string, arrived <-chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	got := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() {
		close(release)
		srv.Close()
	})
	return srv.URL, got
}

func TestDoContext(t *testing.T) {
	t.Parallel()

	t.Run("already cancelled: nothing sent", func(t *testing.T) {
		t.Parallel()
		c := dial(t, mnsconn.Config{Endpoint: "http://127.0.0.1:1"}, testCred)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		called := false
		err := c.Do(ctx, opSend, "queue q", func(ali_mns.MNSClient) error {
			called = true
			return nil
		})
		checkFault(t, err, opSend, fault.Permanent, "")
		assert.ErrorIs(t, err, context.Canceled)
		assert.False(t, called)
	})

	t.Run("cancelled while waiting returns promptly", func(t *testing.T) {
		t.Parallel()
		base, arrived := hanging(t)
		c := dial(t, mnsconn.Config{Endpoint: base, Timeout: time.Minute}, testCred)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-arrived
			cancel()
		}()
		_, err := send(ctx, c, testQueue)
		checkFault(t, err, opSend, fault.Permanent, "")
		assert.ErrorIs(t, err, context.Canceled)
		assert.True(t, fault.IsContext(err))
	})

	t.Run("SDK timeout is retryable", func(t *testing.T) {
		t.Parallel()
		base, _ := hanging(t)
		c := dial(t, mnsconn.Config{Endpoint: base, Timeout: time.Second}, testCred)
		_, err := send(context.Background(), c, testQueue)
		checkFault(t, err, opSend, fault.Retryable, "")
		assert.False(t, fault.IsContext(err))
	})
}

func TestLoopbackKeepsAnMNSShapedHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		account, region   string
		wantHost          string
		endpointLocalhost bool
	}{
		{name: "defaults", wantHost: "1234567890.mns.cn-hangzhou.aliyuncs.com"},
		{name: "configured", account: "5678", region: "eu-central-1", wantHost: "5678.mns.eu-central-1.aliyuncs.com"},
		{name: "localhost", endpointLocalhost: true, wantHost: "1234567890.mns.cn-hangzhou.aliyuncs.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hosts := make(chan string, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hosts <- r.Host
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte(`<Message><MessageId>ID</MessageId><MessageBodyMD5>X</MessageBodyMD5></Message>`))
			}))
			t.Cleanup(srv.Close)
			endpoint := srv.URL
			if tt.endpointLocalhost {
				endpoint = strings.Replace(endpoint, "127.0.0.1", "localhost", 1)
			}
			c := dial(t, mnsconn.Config{Endpoint: endpoint, AccountID: tt.account, Region: tt.region}, testCred)
			id, err := send(context.Background(), c, testQueue)
			require.NoError(t, err)
			assert.Equal(t, "ID", id)
			assert.Equal(t, tt.wantHost, <-hosts)
		})
	}
}

func TestEncodeBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    []byte
		wantErr bool
	}{
		{name: "binary", body: []byte("{\"a\":1}\n\x00<&>")},
		{name: "exactly the limit once encoded", body: make([]byte, 49152)},
		{name: "one byte over once encoded", body: make([]byte, 49153), wantErr: true},
		{name: "empty", body: []byte{}, wantErr: true},
		{name: "nil", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := mnsconn.EncodeBody(tt.body)
			if tt.wantErr {
				assert.Error(t, err)
				assert.Empty(t, got)
				return
			}
			require.NoError(t, err)
			assert.LessOrEqual(t, len(got), mnsconn.MaxBodyBytes)
			raw, err := base64.StdEncoding.DecodeString(got)
			require.NoError(t, err)
			assert.Equal(t, tt.body, raw)
		})
	}
}
