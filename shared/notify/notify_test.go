package notify_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/notify"
)

const (
	testAK     = "LTAI-notify"
	testSecret = "notify-secret"
	testToken  = "STS.notify-token"
	testTopic  = "hbr-outcomes"
	opPublish  = "mns.PublishMessage"
)

var testCred = cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: testToken}

// publisherTo starts an authenticating emulator holding the test topic and
// returns it with a Publisher to it, for topic (default the test topic) and
// cred (default testCred).
func publisherTo(t *testing.T, topic string, cred cloudauth.Credentials) (*mnssim.Server, *notify.Publisher) {
	t.Helper()
	sim := mnssim.New(mnssim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: testToken})
	base, err := sim.Start()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, sim.Close()) })
	sim.CreateTopic(testTopic)
	if cred == (cloudauth.Credentials{}) {
		cred = testCred
	}
	p, err := notify.New(notify.Config{Endpoint: base, Topic: cmp.Or(topic, testTopic)}, cred)
	require.NoError(t, err)
	return sim, p
}

// classOf returns what a caller may act on in err: the Op of its outermost
// *fault.Error, its kind and its code (the zero value for an unclassified
// error).
func classOf(err error) fault.Error {
	var fe *fault.Error
	if !errors.As(err, &fe) {
		return fault.Error{}
	}
	return fault.Error{Op: fe.Op, Kind: fault.KindOf(err), Code: fault.CodeOf(err)}
}

func TestPublishStoresBase64BodyAndTag(t *testing.T) {
	t.Parallel()
	sim, p := publisherTo(t, "", cloudauth.Credentials{})
	var mu sync.Mutex
	var hooked []string
	sim.OnPublish(func(m mnssim.TopicMessage) {
		mu.Lock()
		defer mu.Unlock()
		hooked = append(hooked, m.ID)
	})
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

// TestConfig checks the topic's own rules, and that every field reaches
// shared/mnsconn, whose tests cover the endpoint rules in full.
func TestConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     notify.Config
		cred    cloudauth.Credentials
		wantErr bool
	}{
		{name: "public endpoint", cfg: notify.Config{Endpoint: "https://123.mns.cn-hangzhou.aliyuncs.com", Topic: "t"}},
		{name: "loopback", cfg: notify.Config{Endpoint: "http://127.0.0.1:1", Topic: "t", AccountID: "42", Region: "cn-beijing"}},
		{name: "256-character topic", cfg: notify.Config{Endpoint: "http://127.0.0.1:1", Topic: "t" + strings.Repeat("x", 255)}},

		{name: "empty endpoint", cfg: notify.Config{Topic: "t"}, wantErr: true},
		{name: "http to public", cfg: notify.Config{Endpoint: "http://123.mns.cn-hangzhou.aliyuncs.com", Topic: "t"}, wantErr: true},
		{name: "bad account", cfg: notify.Config{Endpoint: "http://127.0.0.1:1", Topic: "t", AccountID: "a.b"}, wantErr: true},
		{name: "bad region", cfg: notify.Config{Endpoint: "http://127.0.0.1:1", Topic: "t", Region: "cn.x"}, wantErr: true},
		{name: "no topic", cfg: notify.Config{Endpoint: "http://127.0.0.1:1"}, wantErr: true},
		{name: "topic with slash", cfg: notify.Config{Endpoint: "http://127.0.0.1:1", Topic: "a/b"}, wantErr: true},
		{name: "topic starting with digit", cfg: notify.Config{Endpoint: "http://127.0.0.1:1", Topic: "9t"}, wantErr: true},
		{name: "topic with trailing newline", cfg: notify.Config{Endpoint: "http://127.0.0.1:1", Topic: "t\n"}, wantErr: true},
		{name: "non-ASCII topic", cfg: notify.Config{Endpoint: "http://127.0.0.1:1", Topic: "tö"}, wantErr: true},
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
				assert.Equal(t, fault.Error{Op: "notify.New", Kind: fault.Invalid}, classOf(err))
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
	sim, p := publisherTo(t, "", cloudauth.Credentials{})
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
			assert.Equal(t, fault.Error{Op: opPublish, Kind: fault.Invalid}, classOf(err))
		})
	}
	_, err := p.Publish(context.Background(), make([]byte, 49152), strings.Repeat("標", 16))
	require.NoError(t, err, "65536 bytes encoded and a 16-character tag are within the limits")
	assert.Equal(t, 1, sim.Calls()["mns.PublishMessage"])
}

// TestServiceErrors checks that Publish reaches the emulator through
// shared/mnsconn with its own op; mnsconn's tests cover classification in
// full.
func TestServiceErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		topic  string
		cred   cloudauth.Credentials
		faults mnssim.Faults
		cancel bool // publish with a cancelled context
		want   fault.Error
	}{
		{name: "topic missing", topic: "nope", want: fault.Error{Op: opPublish, Kind: fault.Permanent, Code: "TopicNotExist"}},
		{name: "503", faults: mnssim.Faults{SendFailNext: 1, Status: 503},
			want: fault.Error{Op: opPublish, Kind: fault.Retryable, Code: "ServiceUnavailable"}},
		{name: "wrong token", cred: cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: "other"},
			want: fault.Error{Op: opPublish, Kind: fault.Permanent, Code: "AccessDenied"}},
		{name: "context already cancelled", cancel: true, want: fault.Error{Op: opPublish, Kind: fault.Permanent}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, p := publisherTo(t, tt.topic, tt.cred)
			sim.SetTopicFaults(tt.faults)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			_, err := p.Publish(ctx, []byte("x"), "")
			assert.Equal(t, tt.want, classOf(err), "%v", err)
			assert.Equal(t, tt.cancel, fault.IsContext(err))
			assert.Empty(t, sim.Published(testTopic))
		})
	}
}

func TestConcurrentPublishes(t *testing.T) {
	t.Parallel()
	sim, p := publisherTo(t, "", cloudauth.Credentials{})
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
