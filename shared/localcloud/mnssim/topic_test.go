package mnssim_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	ali_mns "github.com/aliyun/aliyun-mns-go-sdk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
)

func TestSDKPublishToTopic(t *testing.T) {
	t.Parallel()
	s, addr := startSim(t, authed())
	s.CreateTopic("outcomes")
	s.CreateTopic("outcomes") // idempotent
	var mu sync.Mutex
	var hooked []mnssim.TopicMessage
	s.OnPublish(func(m mnssim.TopicMessage) {
		mu.Lock()
		defer mu.Unlock()
		hooked = append(hooked, m)
	})

	topic := ali_mns.NewMNSTopic("outcomes", sdkClient(t, addr, clientOpts{}))
	resp, err := topic.PublishMessage(ali_mns.MessagePublishRequest{MessageBody: "eyJvayI6dHJ1ZX0=", MessageTag: "installed"})
	require.NoError(t, err)
	assert.Equal(t, "201", resp.Code)
	assert.NotEmpty(t, resp.RequestId)

	got := s.Published("outcomes")
	require.Len(t, got, 1)
	assert.Equal(t, resp.MessageId, got[0].ID)
	assert.Equal(t, "eyJvayI6dHJ1ZX0=", got[0].Body)
	assert.Equal(t, "installed", got[0].Tag)
	assert.Equal(t, "outcomes", got[0].Topic)
	assert.Equal(t, resp.MessageBodyMD5, got[0].BodyMD5)
	assert.Empty(t, resp.ReceiptHandle)
	mu.Lock()
	assert.Equal(t, got, hooked)
	mu.Unlock()
	assert.Equal(t, 1, s.Calls()["mns.PublishMessage"])

	_, err = ali_mns.NewMNSTopic("missing", sdkClient(t, addr, clientOpts{})).PublishMessage(ali_mns.MessagePublishRequest{MessageBody: "eA=="})
	assert.True(t, ali_mns.ERR_MNS_TOPIC_NOT_EXIST.IsEqual(err), "%v", err)
	assert.Nil(t, s.Published("missing"))
}

func TestSDKPublishThroughDottedPathPrefix(t *testing.T) {
	t.Parallel()
	s, addr := startSim(t, authed())
	s.CreateTopic("t")
	c := ali_mns.NewAliMNSClientWithConfig(ali_mns.AliMNSClientConfig{
		EndPoint: "http://" + addr + "/x.y", AccessKeyId: testAK, AccessKeySecret: testSecret, TimeoutSecond: 10,
	})
	_, err := ali_mns.NewMNSTopic("t", c).PublishMessage(ali_mns.MessagePublishRequest{MessageBody: "eA=="})
	require.NoError(t, err)
	assert.Len(t, s.Published("t"), 1)
}

func TestPublishIsAuthenticatedAndValidated(t *testing.T) {
	t.Parallel()
	valid := `<Message><MessageBody>aGk=</MessageBody><MessageTag>ok</MessageTag></Message>`
	tests := []struct {
		name       string
		opts       mnssim.Options
		client     clientOpts
		resource   string
		body       string
		wantStatus int
		wantCode   string
	}{
		{name: "valid", opts: authed(), body: valid, wantStatus: 201},
		{name: "no tag", opts: authed(), body: `<Message><MessageBody>aGk=</MessageBody></Message>`, wantStatus: 201},
		{name: "token required", opts: mnssim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: "tok"},
			body: valid, wantStatus: 403, wantCode: "AccessDenied"},
		{name: "wrong secret", opts: authed(), client: clientOpts{ak: testAK, secret: "nope"}, body: valid,
			wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		{name: "tampered topic", opts: authed(), body: valid, client: clientOpts{tamper: func(r *fasthttp.Request) {
			r.URI().SetPath("/topics/other/messages")
		}}, wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		{name: "tampered body", opts: authed(), body: valid, client: clientOpts{tamper: func(r *fasthttp.Request) {
			r.SetBodyString(strings.Replace(valid, "aGk=", "aGo=", 1))
		}}, wantStatus: 400, wantCode: "InvalidDegist"},
		{name: "missing body", opts: authed(), body: `<Message><MessageTag>x</MessageTag></Message>`, wantStatus: 400, wantCode: "InvalidArgument"},
		{name: "empty body", opts: authed(), body: `<Message><MessageBody></MessageBody></Message>`, wantStatus: 400, wantCode: "InvalidArgument"},
		{name: "body too large", opts: authed(), body: `<Message><MessageBody>` + strings.Repeat("A", 65537) + `</MessageBody></Message>`,
			wantStatus: 400, wantCode: "InvalidArgument"},
		{name: "body at the limit", opts: authed(), body: `<Message><MessageBody>` + strings.Repeat("A", 65536) + `</MessageBody></Message>`,
			wantStatus: 201},
		{name: "tag too long", opts: authed(), body: `<Message><MessageBody>aGk=</MessageBody><MessageTag>` + strings.Repeat("t", 17) + `</MessageTag></Message>`,
			wantStatus: 400, wantCode: "InvalidArgument"},
		{name: "malformed XML", opts: authed(), body: `<Message><MessageBody>aGk=`, wantStatus: 400, wantCode: "MalformedXML"},
		{name: "missing topic", opts: authed(), resource: "topics/nope/messages", body: valid, wantStatus: 404, wantCode: "TopicNotExist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, addr := startSim(t, tt.opts)
			s.CreateTopic("t")
			if tt.resource == "" {
				tt.resource = "topics/t/messages"
			}
			resp, err := sdkClient(t, addr, tt.client).Send(ali_mns.POST, nil, []byte(tt.body), tt.resource)
			require.NoError(t, err)
			assert.Equal(t, tt.wantStatus, resp.StatusCode(), string(resp.Body()))
			assert.NotEmpty(t, resp.Header.Peek("x-mns-request-id"))
			if tt.wantCode != "" {
				assert.Equal(t, tt.wantCode, errorCode(t, resp.Body()))
				assert.Empty(t, s.Published("t"), "a rejected publish stores nothing")
			}
			assert.Equal(t, 1, s.Calls()["mns.PublishMessage"])
		})
	}
}

func TestTopicFaultsFailPublishesOnly(t *testing.T) {
	t.Parallel()
	s, addr := startSim(t, authed())
	s.CreateTopic("t")
	s.CreateQueue("q")
	s.SetTopicFaults(mnssim.Faults{SendFailNext: 1, Status: 503})
	c := sdkClient(t, addr, clientOpts{})

	_, err := ali_mns.NewMNSQueue("q", c).SendMessage(ali_mns.MessageSendRequest{MessageBody: "eA==", Priority: 8})
	require.NoError(t, err, "queue sends are not affected")

	topic := ali_mns.NewMNSTopic("t", c)
	_, err = topic.PublishMessage(ali_mns.MessagePublishRequest{MessageBody: "eA=="})
	require.Error(t, err)
	assert.Empty(t, s.Published("t"))
	_, err = topic.PublishMessage(ali_mns.MessagePublishRequest{MessageBody: "eA=="})
	require.NoError(t, err)
	assert.Len(t, s.Published("t"), 1)
}

func TestInProcessPublish(t *testing.T) {
	t.Parallel()
	s := mnssim.New(mnssim.Options{})
	_, err := s.Publish("t", "x", "")
	assert.True(t, errors.Is(err, mnssim.ErrTopicNotExist))
	s.CreateTopic("t")
	_, err = s.Publish("t", "", "")
	assert.True(t, errors.Is(err, mnssim.ErrInvalidArgument))
	_, err = s.Publish("t", "x", strings.Repeat("標", 17))
	assert.True(t, errors.Is(err, mnssim.ErrInvalidArgument))
	m, err := s.Publish("t", "x", strings.Repeat("標", 16))
	require.NoError(t, err)
	assert.Equal(t, []mnssim.TopicMessage{m}, s.Published("t"))
	assert.Empty(t, s.Calls(), "in-process calls are not counted")
}
