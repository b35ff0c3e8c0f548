package notify_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/mnssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/notify"
)

const (
	testAK     = "LTAI-notify"
	testSecret = "notify-secret"
	testToken  = "STS.notify-token"
	testTopic  = "hbr-outcomes"
)

var testCred = cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: testToken}

// startSim starts an authenticating emulator with the test topic.
func startSim(t *testing.T) (*mnssim.Server, string) {
	t.Helper()
	s := mnssim.New(mnssim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: testToken})
	base, err := s.Start()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	s.CreateTopic(testTopic)
	return s, base
}

func newPublisher(t *testing.T, cfg notify.Config, cred cloudauth.Credentials) *notify.Publisher {
	t.Helper()
	if cfg.Topic == "" {
		cfg.Topic = testTopic
	}
	p, err := notify.New(cfg, cred)
	require.NoError(t, err)
	return p
}

func assertFault(t *testing.T, err error, op string, kind fault.Kind, code string) {
	t.Helper()
	var fe *fault.Error
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, op, fe.Op, "op")
	assert.Equal(t, kind, fault.KindOf(err), "kind of %v", err)
	assert.Equal(t, code, fault.CodeOf(err), "code of %v", err)
	assert.NotContains(t, err.Error(), testSecret)
	assert.NotContains(t, err.Error(), testToken)
}

func TestPublishStoresBase64BodyAndTag(t *testing.T) {
	t.Parallel()
	sim, base := startSim(t)
	var mu sync.Mutex
	var hooked []string
	sim.OnPublish(func(m mnssim.TopicMessage) {
		mu.Lock()
		defer mu.Unlock()
		hooked = append(hooked, m.ID)
	})
	p := newPublisher(t, notify.Config{Endpoint: base}, testCred)
	body := []byte(`{"instanceId":"i-a","outcome":"installed"}` + "\n\x00<&>")

	id, err := p.Publish(context.Background(), body, "installed")
	require.NoError(t, err)
	got := sim.Published(testTopic)
	require.Len(t, got, 1)
	assert.Equal(t, id, got[0].ID)
	assert.Equal(t, base64.StdEncoding.EncodeToString(body), got[0].Body)
	assert.Equal(t, "installed", got[0].Tag)

	_, err = p.Publish(context.Background(), []byte("x"), "")
	require.NoError(t, err)
	assert.Equal(t, "", sim.Published(testTopic)[1].Tag)
	mu.Lock()
	assert.Len(t, hooked, 2)
	mu.Unlock()
}

func TestConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     notify.Config
		cred    cloudauth.Credentials
		wantErr bool
	}{
		{name: "public endpoint", cfg: notify.Config{Endpoint: "https://123.mns.cn-hangzhou.aliyuncs.com", Topic: "t"}},
		{name: "internal endpoint", cfg: notify.Config{Endpoint: "https://123.mns.cn-hangzhou-internal.aliyuncs.com/", Topic: "t"}},
		{name: "loopback", cfg: notify.Config{Endpoint: "http://127.0.0.1:1", Topic: "t", AccountID: "42", Region: "cn-beijing"}},
		{name: "localhost", cfg: notify.Config{Endpoint: "http://localhost:1", Topic: "t"}},
		{name: "256-character topic", cfg: notify.Config{Endpoint: "http://127.0.0.1:1", Topic: "t" + strings.Repeat("x", 255)}},

		{name: "empty endpoint", cfg: notify.Config{Topic: "t"}, wantErr: true},
		{name: "http to public", cfg: notify.Config{Endpoint: "http://123.mns.cn-hangzhou.aliyuncs.com", Topic: "t"}, wantErr: true},
		{name: "three dots", cfg: notify.Config{Endpoint: "https://mns.cn-hangzhou.aliyuncs.com", Topic: "t"}, wantErr: true},
		{name: "https loopback", cfg: notify.Config{Endpoint: "https://127.0.0.1:1", Topic: "t"}, wantErr: true},
		{name: "path", cfg: notify.Config{Endpoint: "https://123.mns.cn-hangzhou.aliyuncs.com/topics", Topic: "t"}, wantErr: true},
		{name: "bad account", cfg: notify.Config{Endpoint: "http://127.0.0.1:1", Topic: "t", AccountID: "a.b"}, wantErr: true},
		{name: "no topic", cfg: notify.Config{Endpoint: "http://127.0.0.1:1"}, wantErr: true},
		{name: "topic with slash", cfg: notify.Config{Endpoint: "http://127.0.0.1:1", Topic: "a/b"}, wantErr: true},
		{name: "topic starting with digit", cfg: notify.Config{Endpoint: "http://127.0.0.1:1", Topic: "9t"}, wantErr: true},
		{name: "257-character topic", cfg: notify.Config{Endpoint: "http://127.0.0.1:1", Topic: "t" + strings.Repeat("x", 256)}, wantErr: true},
		{name: "negative timeout", cfg: notify.Config{Endpoint: "http://127.0.0.1:1", Topic: "t", Timeout: -time.Second}, wantErr: true},
		{name: "no credentials", cfg: notify.Config{Endpoint: "http://127.0.0.1:1", Topic: "t"}, cred: cloudauth.Credentials{AccessKeyID: "a"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred := tt.cred
			if cred == (cloudauth.Credentials{}) {
				cred = testCred
			}
			p, err := notify.New(tt.cfg, cred)
			if tt.wantErr {
				assertFault(t, err, "notify.New", fault.Invalid, "")
				assert.Nil(t, p)
				return
			}
			require.NoError(t, err)
			assert.NotNil(t, p)
		})
	}
}

func TestInvalidInputSendsNothing(t *testing.T) {
	t.Parallel()
	sim, base := startSim(t)
	p := newPublisher(t, notify.Config{Endpoint: base}, testCred)
	tests := []struct {
		name string
		body []byte
		tag  string
	}{
		{"empty body", nil, ""},
		{"body over the limit once encoded", make([]byte, 49153), ""},
		{"tag too long", []byte("x"), strings.Repeat("t", 17)},
		{"tag with newline", []byte("x"), "a\nb"},
		{"tag not utf-8", []byte("x"), "\xff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Publish(context.Background(), tt.body, tt.tag)
			assertFault(t, err, "mns.PublishMessage", fault.Invalid, "")
		})
	}
	_, err := p.Publish(context.Background(), make([]byte, 49152), strings.Repeat("標", 16))
	require.NoError(t, err, "65536 bytes encoded and a 16-character tag are within the limits")
	assert.Equal(t, 1, sim.Calls()["mns.PublishMessage"])
}

func TestServiceErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		topic    string
		cred     cloudauth.Credentials
		faults   mnssim.Faults
		wantKind fault.Kind
		wantCode string
	}{
		{name: "topic missing", topic: "nope", wantKind: fault.Permanent, wantCode: "TopicNotExist"},
		{name: "500", faults: mnssim.Faults{SendFailNext: 1}, wantKind: fault.Retryable, wantCode: "InternalError"},
		{name: "503", faults: mnssim.Faults{SendFailNext: 1, Status: 503}, wantKind: fault.Retryable, wantCode: "ServiceUnavailable"},
		{name: "wrong secret", cred: cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: "nope", SecurityToken: testToken},
			wantKind: fault.Permanent, wantCode: "SignatureDoesNotMatch"},
		{name: "wrong token", cred: cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: "other"},
			wantKind: fault.Permanent, wantCode: "AccessDenied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, base := startSim(t)
			sim.SetTopicFaults(tt.faults)
			cred := tt.cred
			if cred == (cloudauth.Credentials{}) {
				cred = testCred
			}
			p := newPublisher(t, notify.Config{Endpoint: base, Topic: tt.topic}, cred)
			_, err := p.Publish(context.Background(), []byte("x"), "")
			assertFault(t, err, "mns.PublishMessage", tt.wantKind, tt.wantCode)
			assert.Empty(t, sim.Published(testTopic))
		})
	}
}

func TestUnreachableAndUnparsable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	_, err = newPublisher(t, notify.Config{Endpoint: "http://" + addr}, testCred).Publish(context.Background(), []byte("x"), "")
	assertFault(t, err, "mns.PublishMessage", fault.Retryable, "")

	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html><body>502 Bad Gateway</body></html>")
	}))
	t.Cleanup(html.Close)
	_, err = newPublisher(t, notify.Config{Endpoint: html.URL}, testCred).Publish(context.Background(), []byte("x"), "")
	assertFault(t, err, "mns.PublishMessage", fault.Retryable, "")
}

func TestContext(t *testing.T) {
	t.Parallel()
	sim, base := startSim(t)
	p := newPublisher(t, notify.Config{Endpoint: base}, testCred)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Publish(ctx, []byte("x"), "")
	assertFault(t, err, "mns.PublishMessage", fault.Permanent, "")
	assert.True(t, fault.IsContext(err))
	assert.Empty(t, sim.Calls(), "no request sent")

	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() {
		close(release)
		hang.Close()
	})
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-arrived
		cancel()
	}()
	_, err = newPublisher(t, notify.Config{Endpoint: hang.URL}, testCred).Publish(ctx, []byte("x"), "")
	assertFault(t, err, "mns.PublishMessage", fault.Permanent, "")
	assert.ErrorIs(t, err, context.Canceled)
}

func TestConcurrentPublishes(t *testing.T) {
	t.Parallel()
	sim, base := startSim(t)
	p := newPublisher(t, notify.Config{Endpoint: base}, testCred)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			if _, err := p.Publish(context.Background(), []byte(fmt.Sprintf(`{"n":%d}`, i)), "t"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.Len(t, sim.Published(testTopic), 8)
}
