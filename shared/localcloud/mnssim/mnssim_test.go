package mnssim_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	ali_mns "github.com/aliyun/aliyun-mns-go-sdk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
)

const (
	testAK     = "LTAI-test-key"
	testSecret = "test-secret"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 27, 13, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func bodies(msgs []mnssim.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Body
	}
	return out
}

func TestReceiveOrdersByPriorityThenEnqueueAndHonoursDelay(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := mnssim.New(mnssim.Options{Now: clock.Now})
	s.CreateQueue("jobs")
	ctx := context.Background()

	for _, m := range []struct {
		body     string
		delay    time.Duration
		priority int
	}{
		{"b-8", 0, 8},
		{"a-1", 0, 1},
		{"c-8", 0, 8},
		{"delayed-1", 10 * time.Second, 1},
		{"d-16", 0, 16},
	} {
		_, err := s.Send("jobs", m.body, m.delay, m.priority)
		require.NoError(t, err)
	}
	visible, delayed, inflight := s.Depth("jobs")
	assert.Equal(t, [3]int{4, 1, 0}, [3]int{visible, delayed, inflight})

	got, err := s.Receive(ctx, "jobs", 3, time.Minute, 0)
	require.NoError(t, err)
	assert.Equal(t, []string{"a-1", "b-8", "c-8"}, bodies(got))
	for _, m := range got {
		assert.Equal(t, 1, m.DequeueCount)
		assert.NotEmpty(t, m.ReceiptHandle)
		assert.Equal(t, clock.Now().Add(time.Minute), m.VisibleAt)
	}

	clock.Advance(10 * time.Second)
	got, err = s.Receive(ctx, "jobs", 10, time.Minute, 0)
	require.NoError(t, err)
	assert.Equal(t, []string{"delayed-1", "d-16"}, bodies(got), "the delayed message is visible now and outranks priority 16")

	got, err = s.Receive(ctx, "jobs", 10, time.Minute, 0)
	require.NoError(t, err)
	assert.Empty(t, got, "everything is in flight")
	visible, delayed, inflight = s.Depth("jobs")
	assert.Equal(t, [3]int{0, 0, 5}, [3]int{visible, delayed, inflight})

	clock.Advance(time.Minute)
	got, err = s.Receive(ctx, "jobs", 1, time.Minute, 0)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "a-1", got[0].Body, "visibility ended: redelivered")
	assert.Equal(t, 2, got[0].DequeueCount)
}

func TestReceiptHandles(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := mnssim.New(mnssim.Options{Now: clock.Now})
	s.CreateQueue("q")
	ctx := context.Background()

	_, err := s.Send("q", "one", 0, 0)
	require.NoError(t, err)
	got, err := s.Receive(ctx, "q", 1, 30*time.Second, 0)
	require.NoError(t, err)
	require.Len(t, got, 1)
	h1 := got[0].ReceiptHandle

	changed, err := s.ChangeVisibility("q", h1, 60*time.Second)
	require.NoError(t, err)
	h2 := changed.ReceiptHandle
	require.NotEqual(t, h1, h2)

	tests := []struct {
		name   string
		queue  string
		handle string
		want   error
	}{
		{"old handle after change", "q", h1, mnssim.ErrMessageNotExist},
		{"never issued", "q", "not-a-handle!", mnssim.ErrReceiptHandle},
		{"unknown queue", "nope", h2, mnssim.ErrQueueNotExist},
	}
	for _, tt := range tests {
		assert.ErrorIs(t, s.Delete(tt.queue, tt.handle), tt.want, tt.name)
	}
	require.NoError(t, s.Delete("q", h2))
	assert.ErrorIs(t, s.Delete("q", h2), mnssim.ErrMessageNotExist, "a handle works once")
	assert.Empty(t, s.Messages("q"))

	// A handle expires with its invisibility window.
	_, err = s.Send("q", "two", 0, 0)
	require.NoError(t, err)
	got, err = s.Receive(ctx, "q", 1, 30*time.Second, 0)
	require.NoError(t, err)
	require.Len(t, got, 1)
	clock.Advance(31 * time.Second)
	assert.ErrorIs(t, s.Delete("q", got[0].ReceiptHandle), mnssim.ErrMessageNotExist)

	// A delayed message's send handle can delete it before delivery.
	delayed, err := s.Send("q", "three", time.Hour, 0)
	require.NoError(t, err)
	require.NoError(t, s.Delete("q", delayed.ReceiptHandle))

	_, err = s.ChangeVisibility("q", h2, 0)
	assert.ErrorIs(t, err, mnssim.ErrInvalidArgument)
}

func TestReceiveWaits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("wakes for a new message", func(t *testing.T) {
		t.Parallel()
		s := mnssim.New(mnssim.Options{})
		s.CreateQueue("q")
		type result struct {
			msgs []mnssim.Message
			err  error
		}
		done := make(chan result, 1)
		go func() {
			msgs, err := s.Receive(ctx, "q", 1, 0, 30*time.Second)
			done <- result{msgs, err}
		}()
		_, err := s.Send("q", "hello", 0, 0)
		require.NoError(t, err)
		r := <-done
		require.NoError(t, r.err)
		assert.Equal(t, []string{"hello"}, bodies(r.msgs))
	})

	t.Run("wakes when a delayed message becomes visible", func(t *testing.T) {
		t.Parallel()
		s := mnssim.New(mnssim.Options{})
		s.CreateQueue("q")
		_, err := s.Send("q", "later", time.Second, 0)
		require.NoError(t, err)
		msgs, err := s.Receive(ctx, "q", 1, 0, 30*time.Second)
		require.NoError(t, err)
		assert.Equal(t, []string{"later"}, bodies(msgs))
	})

	t.Run("empty wait returns nil, nil", func(t *testing.T) {
		t.Parallel()
		s := mnssim.New(mnssim.Options{})
		s.CreateQueue("q")
		msgs, err := s.Receive(ctx, "q", 1, 0, 20*time.Millisecond)
		assert.NoError(t, err)
		assert.Nil(t, msgs)
	})

	t.Run("context cancelled", func(t *testing.T) {
		t.Parallel()
		s := mnssim.New(mnssim.Options{})
		s.CreateQueue("q")
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := s.Receive(cctx, "q", 1, 0, time.Minute)
			done <- err
		}()
		cancel()
		assert.ErrorIs(t, <-done, context.Canceled)
	})

	t.Run("close wakes receivers", func(t *testing.T) {
		t.Parallel()
		s := mnssim.New(mnssim.Options{})
		s.CreateQueue("q")
		done := make(chan error, 1)
		go func() {
			_, err := s.Receive(ctx, "q", 1, 0, time.Minute)
			done <- err
		}()
		require.NoError(t, s.Close())
		assert.ErrorIs(t, <-done, mnssim.ErrClosed)
	})

	t.Run("unknown queue", func(t *testing.T) {
		t.Parallel()
		s := mnssim.New(mnssim.Options{})
		_, err := s.Receive(ctx, "nope", 1, 0, time.Minute)
		assert.ErrorIs(t, err, mnssim.ErrQueueNotExist)
	})
}

func TestConcurrentSendAndReceiveDeliverEachMessageOnce(t *testing.T) {
	t.Parallel()
	s := mnssim.New(mnssim.Options{})
	s.CreateQueue("q")
	const senders, perSender = 8, 25
	ctx := context.Background()

	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perSender {
				_, err := s.Send("q", fmt.Sprintf("%d-%d", g, i), 0, 1+i%16)
				assert.NoError(t, err)
			}
		}()
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var consumers sync.WaitGroup
	for range 4 {
		consumers.Add(1)
		go func() {
			defer consumers.Done()
			for {
				msgs, err := s.Receive(ctx, "q", 5, time.Minute, 200*time.Millisecond)
				if !assert.NoError(t, err) || len(msgs) == 0 {
					return
				}
				for _, m := range msgs {
					assert.NoError(t, s.Delete("q", m.ReceiptHandle))
					mu.Lock()
					seen[m.Body]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	consumers.Wait()
	// Consumers stop after 200 ms without messages, which may be before
	// the senders finished on a loaded machine: drain what is left.
	for {
		msgs, err := s.Receive(ctx, "q", 16, time.Minute, 0)
		require.NoError(t, err)
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			seen[m.Body]++
		}
	}
	assert.Len(t, seen, senders*perSender)
	for body, n := range seen {
		assert.Equal(t, 1, n, body)
	}
	assert.Equal(t, senders*perSender, s.Sent("q"))
}

// ---- over HTTP, driven by the real SDK ----

// forward is a fasthttp transport that sends every request to the emulator,
// optionally tampering with it after the SDK signed it.
type forward struct {
	hc     *fasthttp.HostClient
	tamper func(*fasthttp.Request)
}

func (f forward) RoundTrip(_ *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	if f.tamper != nil {
		f.tamper(req)
	}
	return false, f.hc.Do(req, resp)
}

type clientOpts struct {
	ak, secret, token string
	tamper            func(*fasthttp.Request)
}

// startSim starts a server and returns it with its host:port.
func startSim(t *testing.T, opts mnssim.Options) (*mnssim.Server, string) {
	t.Helper()
	s := mnssim.New(opts)
	base, err := s.Start()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	return s, strings.TrimPrefix(base, "http://")
}

// sdkClient returns a real SDK client whose requests reach addr.
func sdkClient(t *testing.T, addr string, o clientOpts) ali_mns.MNSClient {
	t.Helper()
	if o.ak == "" {
		o.ak, o.secret = testAK, testSecret
	}
	c := ali_mns.NewAliMNSClientWithConfig(ali_mns.AliMNSClientConfig{
		EndPoint:        "http://1234567890.mns.cn-hangzhou.aliyuncs.com",
		AccessKeyId:     o.ak,
		AccessKeySecret: o.secret,
		Token:           o.token,
		TimeoutSecond:   35,
	})
	c.SetTransport(forward{hc: &fasthttp.HostClient{Addr: addr}, tamper: o.tamper})
	return c
}

func authed() mnssim.Options {
	return mnssim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret}
}

func TestSDKQueueLifecycle(t *testing.T) {
	t.Parallel()
	s, addr := startSim(t, authed())
	c := sdkClient(t, addr, clientOpts{})

	mgr := ali_mns.NewMNSQueueManager(c)
	require.NoError(t, mgr.CreateSimpleQueue("jobs"))
	err := mgr.CreateSimpleQueue("jobs")
	assert.True(t, ali_mns.ERR_MNS_QUEUE_ALREADY_EXIST_AND_HAVE_SAME_ATTR.IsEqual(err), "%v", err)
	err = mgr.CreateQueue("jobs", 5, 65536, 345600, 30, 0, 2)
	assert.True(t, ali_mns.ERR_MNS_QUEUE_ALREADY_EXIST.IsEqual(err), "%v", err)

	q := ali_mns.NewMNSQueue("jobs", c)
	sent, err := q.SendMessage(ali_mns.MessageSendRequest{MessageBody: "aGVsbG8=", DelaySeconds: 0, Priority: 3})
	require.NoError(t, err)
	sum := md5.Sum([]byte("aGVsbG8="))
	assert.Equal(t, strings.ToUpper(hex.EncodeToString(sum[:])), sent.MessageBodyMD5, "upper-case MD5 of the body as sent")
	assert.Empty(t, sent.ReceiptHandle, "only delayed messages get a handle on send")

	delayed, err := q.SendMessage(ali_mns.MessageSendRequest{MessageBody: "ZGVsYXllZA==", DelaySeconds: 60, Priority: 8})
	require.NoError(t, err)
	assert.NotEmpty(t, delayed.ReceiptHandle)

	attrs, err := mgr.GetQueueAttributes("jobs")
	require.NoError(t, err)
	assert.Equal(t, int64(1), attrs.ActiveMessages)
	assert.Equal(t, int64(1), attrs.DelayMessages)

	peekResp := make(chan ali_mns.MessageReceiveResponse, 1)
	errs := make(chan error, 2)
	q.PeekMessage(peekResp, errs)
	require.Empty(t, errs)
	peeked := <-peekResp
	assert.Equal(t, "aGVsbG8=", peeked.MessageBody)
	assert.Empty(t, peeked.ReceiptHandle)

	recv := make(chan ali_mns.MessageReceiveResponse, 1)
	q.ReceiveMessage(recv, errs, 1)
	require.Empty(t, errs)
	got := <-recv
	assert.Equal(t, sent.MessageId, got.MessageId)
	assert.Equal(t, "aGVsbG8=", got.MessageBody)
	assert.Equal(t, int64(3), got.Priority)
	assert.Equal(t, int64(1), got.DequeueCount)
	assert.Equal(t, sent.MessageBodyMD5, got.MessageBodyMD5)

	changed, err := q.ChangeMessageVisibility(got.ReceiptHandle, 100)
	require.NoError(t, err)
	assert.NotEqual(t, got.ReceiptHandle, changed.ReceiptHandle)
	err = q.DeleteMessage(got.ReceiptHandle)
	assert.True(t, ali_mns.ERR_MNS_MESSAGE_NOT_EXIST.IsEqual(err), "the old handle is invalid: %v", err)
	require.NoError(t, q.DeleteMessage(changed.ReceiptHandle))

	// The delayed message is still delayed: a long poll ends empty.
	q.ReceiveMessage(recv, errs, 1)
	require.Len(t, errs, 1)
	err = <-errs
	assert.True(t, ali_mns.ERR_MNS_MESSAGE_NOT_EXIST.IsEqual(err), "%v", err)

	// Delete the delayed one with its send handle, via batch delete.
	_, err = q.BatchDeleteMessage(delayed.ReceiptHandle)
	require.NoError(t, err)
	visible, delayedN, inflight := s.Depth("jobs")
	assert.Equal(t, [3]int{0, 0, 0}, [3]int{visible, delayedN, inflight})

	require.NoError(t, mgr.DeleteQueue("jobs"))
	_, err = q.SendMessage(ali_mns.MessageSendRequest{MessageBody: "eA==", Priority: 8})
	assert.True(t, ali_mns.ERR_MNS_QUEUE_NOT_EXIST.IsEqual(err), "%v", err)

	calls := s.Calls()
	for _, op := range []string{"mns.CreateQueue", "mns.SendMessage", "mns.GetQueueAttributes", "mns.PeekMessage",
		"mns.ReceiveMessage", "mns.ChangeMessageVisibility", "mns.DeleteMessage", "mns.BatchDeleteMessage", "mns.DeleteQueue"} {
		assert.Positive(t, calls[op], op)
	}
	assert.Equal(t, 2, s.Sent("jobs"))
}

func TestSDKBatchSendAndReceive(t *testing.T) {
	t.Parallel()
	s, addr := startSim(t, authed())
	s.CreateQueue("q")
	var hooked []string
	var mu sync.Mutex
	s.OnSend(func(m mnssim.Message) {
		mu.Lock()
		defer mu.Unlock()
		hooked = append(hooked, m.Body)
	})
	q := ali_mns.NewMNSQueue("q", sdkClient(t, addr, clientOpts{}))

	resp, err := q.BatchSendMessage(
		ali_mns.MessageSendRequest{MessageBody: "MQ==", Priority: 2},
		ali_mns.MessageSendRequest{MessageBody: "Mg==", Priority: 0}, // rejected alone
		ali_mns.MessageSendRequest{MessageBody: "Mw==", Priority: 1},
	)
	assert.True(t, ali_mns.ERR_MNS_BATCH_OP_FAIL.IsEqual(err), "%v", err)
	require.Len(t, resp.Messages, 3)
	assert.NotEmpty(t, resp.Messages[0].MessageId)
	assert.Equal(t, "InvalidArgument", resp.Messages[1].ErrorCode)
	assert.Equal(t, "The value of Priority should between 1 and 16", resp.Messages[1].ErrorMessage)
	assert.NotEmpty(t, resp.Messages[2].MessageId)
	assert.Equal(t, []string{"MQ==", "Mw=="}, hooked)

	out := make(chan ali_mns.BatchMessageReceiveResponse, 1)
	errs := make(chan error, 1)
	q.BatchReceiveMessage(out, errs, 16, 1)
	require.Empty(t, errs)
	got := <-out
	require.Len(t, got.Messages, 2)
	assert.Equal(t, "Mw==", got.Messages[0].MessageBody, "priority 1 first")
	assert.Equal(t, "MQ==", got.Messages[1].MessageBody)
}

func TestSDKThroughDottedPathPrefix(t *testing.T) {
	t.Parallel()
	s, addr := startSim(t, authed())
	s.CreateQueue("q")
	// sdk-notes §3.2 option 2: the path prefix makes the SDK's dot count
	// work; the emulator strips it before verifying the signature.
	c := ali_mns.NewAliMNSClientWithConfig(ali_mns.AliMNSClientConfig{
		EndPoint: "http://" + addr + "/x.y", AccessKeyId: testAK, AccessKeySecret: testSecret, TimeoutSecond: 10,
	})
	q := ali_mns.NewMNSQueue("q", c)
	_, err := q.SendMessage(ali_mns.MessageSendRequest{MessageBody: "eA==", Priority: 8})
	require.NoError(t, err)
	assert.Equal(t, 1, s.Sent("q"))
}

// errorCode decodes the <Code> of an MNS error body.
func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		XMLName xml.Name `xml:"Error"`
		Code    string   `xml:"Code"`
	}
	require.NoError(t, xml.Unmarshal(body, &e), string(body))
	return e.Code
}

func TestRequestsAreAuthenticatedAndValidated(t *testing.T) {
	t.Parallel()
	valid := `<Message><MessageBody>aGk=</MessageBody><DelaySeconds>0</DelaySeconds><Priority>8</Priority></Message>`
	tests := []struct {
		name       string
		opts       mnssim.Options
		client     clientOpts
		method     ali_mns.Method
		resource   string
		body       string
		wantStatus int
		wantCode   string
	}{
		{name: "valid", opts: authed(), body: valid, wantStatus: 201},
		{name: "with required token", opts: mnssim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: "tok"},
			client: clientOpts{ak: testAK, secret: testSecret, token: "tok"}, body: valid, wantStatus: 201},
		{name: "token missing", opts: mnssim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: "tok"},
			body: valid, wantStatus: 403, wantCode: "AccessDenied"},
		{name: "token wrong", opts: mnssim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: "tok"},
			client: clientOpts{ak: testAK, secret: testSecret, token: "other"}, body: valid, wantStatus: 403, wantCode: "AccessDenied"},
		{name: "wrong secret", opts: authed(), client: clientOpts{ak: testAK, secret: "nope"}, body: valid,
			wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		{name: "unknown key", opts: authed(), client: clientOpts{ak: "LTAI-other", secret: testSecret}, body: valid,
			wantStatus: 403, wantCode: "InvalidAccessKeyId"},
		{name: "tampered body", opts: authed(), body: valid, client: clientOpts{tamper: func(r *fasthttp.Request) {
			r.SetBodyString(strings.Replace(valid, "aGk=", "aGo=", 1))
		}}, wantStatus: 400, wantCode: "InvalidDegist"},
		{name: "tampered path", opts: authed(), body: valid, client: clientOpts{tamper: func(r *fasthttp.Request) {
			r.URI().SetPath("/queues/other/messages")
		}}, wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		{name: "tampered priority header-free resend", opts: authed(), body: valid, client: clientOpts{tamper: func(r *fasthttp.Request) {
			r.Header.Set("x-mns-version", "2099-01-01")
		}}, wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		{name: "stale date", opts: authed(), body: valid, client: clientOpts{tamper: func(r *fasthttp.Request) {
			r.Header.Set("Date", time.Now().Add(-16*time.Minute).UTC().Format(http.TimeFormat))
		}}, wantStatus: 408, wantCode: "TimeExpired"},
		{name: "no authorization", opts: authed(), body: valid, client: clientOpts{tamper: func(r *fasthttp.Request) {
			r.Header.Del("Authorization")
		}}, wantStatus: 400, wantCode: "MissingAuthorizationHeader"},
		{name: "auth disabled accepts anything", opts: mnssim.Options{}, client: clientOpts{ak: "x", secret: "y"}, body: valid, wantStatus: 201},

		{name: "priority 0", opts: authed(), body: `<Message><MessageBody>aGk=</MessageBody><DelaySeconds>0</DelaySeconds><Priority>0</Priority></Message>`,
			wantStatus: 400, wantCode: "InvalidArgument"},
		{name: "priority 17", opts: authed(), body: `<Message><MessageBody>aGk=</MessageBody><Priority>17</Priority></Message>`,
			wantStatus: 400, wantCode: "InvalidArgument"},
		{name: "delay too long", opts: authed(), body: `<Message><MessageBody>aGk=</MessageBody><DelaySeconds>604801</DelaySeconds><Priority>8</Priority></Message>`,
			wantStatus: 400, wantCode: "InvalidArgument"},
		{name: "body too large", opts: authed(), body: `<Message><MessageBody>` + strings.Repeat("A", 65537) + `</MessageBody><Priority>8</Priority></Message>`,
			wantStatus: 400, wantCode: "InvalidArgument"},
		{name: "body at the limit", opts: authed(), body: `<Message><MessageBody>` + strings.Repeat("A", 65536) + `</MessageBody><Priority>8</Priority></Message>`,
			wantStatus: 201},
		{name: "batch of 17", opts: authed(), body: "<Messages>" + strings.Repeat(`<Message><MessageBody>aGk=</MessageBody><Priority>8</Priority></Message>`, 17) + "</Messages>",
			wantStatus: 400, wantCode: "InvalidArgument"},
		{name: "malformed XML", opts: authed(), body: `<Message><MessageBody>aGk=</MessageBody>`, wantStatus: 400, wantCode: "MalformedXML"},
		{name: "missing queue", opts: authed(), resource: "queues/nope/messages", body: valid, wantStatus: 404, wantCode: "QueueNotExist"},
		{name: "waitseconds over 30", opts: authed(), method: ali_mns.GET, resource: "queues/q/messages?waitseconds=31", wantStatus: 400, wantCode: "InvalidArgument"},
		{name: "bad receipt handle", opts: authed(), method: ali_mns.DELETE, resource: "queues/q/messages?ReceiptHandle=garbage", wantStatus: 400, wantCode: "ReceiptHandleError"},
		{name: "bad queue name", opts: authed(), method: ali_mns.PUT, resource: "queues/9lives", wantStatus: 400, wantCode: "InvalidQueueName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, addr := startSim(t, tt.opts)
			s.CreateQueue("q")
			if tt.method == "" {
				tt.method = ali_mns.POST
			}
			if tt.resource == "" {
				tt.resource = "queues/q/messages"
			}
			var body any
			if tt.body != "" {
				body = []byte(tt.body)
			}
			resp, err := sdkClient(t, addr, tt.client).Send(tt.method, nil, body, tt.resource)
			require.NoError(t, err)
			assert.Equal(t, tt.wantStatus, resp.StatusCode(), string(resp.Body()))
			assert.NotEmpty(t, resp.Header.Peek("x-mns-request-id"))
			if tt.wantCode != "" {
				assert.Equal(t, tt.wantCode, errorCode(t, resp.Body()))
			}
			if tt.wantStatus >= 300 && tt.method == ali_mns.POST {
				assert.Zero(t, s.Sent("q"), "a rejected send stores nothing")
			}
		})
	}
}

func TestFaultsFailSendsAndStoreNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		faults   mnssim.Faults
		wantCode string
		want     func(error) bool
	}{
		{"500", mnssim.Faults{SendFailNext: 1}, "InternalError", ali_mns.ERR_MNS_INTERNAL_ERROR.IsEqual},
		{"503", mnssim.Faults{SendFailNext: 1, Status: 503}, "ServiceUnavailable", ali_mns.ERR_MNS_UNKNOWN_CODE.IsEqual},
		{"rate 1", mnssim.Faults{SendFailRate: 1}, "InternalError", ali_mns.ERR_MNS_INTERNAL_ERROR.IsEqual},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, addr := startSim(t, authed())
			s.CreateQueue("q")
			s.SetFaults(tt.faults)
			q := ali_mns.NewMNSQueue("q", sdkClient(t, addr, clientOpts{}))
			_, err := q.SendMessage(ali_mns.MessageSendRequest{MessageBody: "eA==", Priority: 8})
			assert.True(t, tt.want(err), "%v", err)
			assert.Zero(t, s.Sent("q"))
			s.SetFaults(mnssim.Faults{})
			_, err = q.SendMessage(ali_mns.MessageSendRequest{MessageBody: "eA==", Priority: 8})
			assert.NoError(t, err)
			assert.Equal(t, 1, s.Sent("q"))
			assert.Equal(t, 2, s.Calls()["mns.SendMessage"])
		})
	}
}

func TestStartAndCloseTwice(t *testing.T) {
	t.Parallel()
	s := mnssim.New(mnssim.Options{})
	_, err := s.Start()
	require.NoError(t, err)
	_, err = s.Start()
	assert.Error(t, err)
	assert.NoError(t, s.Close())
	assert.NoError(t, s.Close())
	_, err = s.Start()
	assert.True(t, errors.Is(err, mnssim.ErrClosed))
}

func TestSDKQueueManagementAndRetention(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s, addr := startSim(t, mnssim.Options{AccessKeyID: testAK, AccessKeySecret: testSecret, Now: clock.Now})
	mgr := ali_mns.NewMNSQueueManager(sdkClient(t, addr, clientOpts{}))

	require.NoError(t, mgr.CreateQueue("short-lived", 0, 65536, 60, 30, 0, 2))
	require.NoError(t, mgr.SetQueueAttributes("short-lived", 5, 65536, 120, 45, 1, 2))
	got, err := s.Attributes("short-lived")
	require.NoError(t, err)
	assert.Equal(t, mnssim.QueueAttributes{DelaySeconds: 5, MaximumMessageSize: 65536, MessageRetentionPeriod: 120, VisibilityTimeout: 45, PollingWaitSeconds: 1}, got)

	err = mgr.SetQueueAttributes("missing", 5, 65536, 120, 45, 1, 2)
	assert.True(t, ali_mns.ERR_MNS_QUEUE_NOT_EXIST.IsEqual(err), "%v", err)
	err = mgr.CreateQueue("bad-attrs", 0, 100, 60, 30, 0, 2) // MaximumMessageSize below 1024
	assert.True(t, ali_mns.ERR_MNS_INVALID_ARGUMENT.IsEqual(err), "%v", err)

	list, err := mgr.ListQueue("", 0, "short")
	require.NoError(t, err)
	require.Len(t, list.Queues, 1)
	assert.True(t, strings.HasSuffix(list.Queues[0].QueueURL, "/queues/short-lived"), list.Queues[0].QueueURL)

	// The queue's DelaySeconds applies to a message without its own.
	m, err := s.Send("short-lived", "x", -1, 0)
	require.NoError(t, err)
	assert.Equal(t, 5, m.DelaySeconds)
	_, delayed, _ := s.Depth("short-lived")
	assert.Equal(t, 1, delayed)

	clock.Advance(121 * time.Second)
	visible, delayed, inflight := s.Depth("short-lived")
	assert.Equal(t, [3]int{0, 0, 0}, [3]int{visible, delayed, inflight}, "retention period passed")
}

func TestWakeAfterFakeClockMoves(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := mnssim.New(mnssim.Options{Now: clock.Now})
	s.CreateQueue("q")
	_, err := s.Send("q", "later", time.Hour, 0)
	require.NoError(t, err)

	done := make(chan []mnssim.Message, 1)
	go func() {
		msgs, err := s.Receive(context.Background(), "q", 1, 0, 30*time.Second)
		assert.NoError(t, err)
		done <- msgs
	}()
	clock.Advance(time.Hour)
	s.Wake()
	assert.Equal(t, []string{"later"}, bodies(<-done))
}
