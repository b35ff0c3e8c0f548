package mnsconn

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"time"

	ali_mns "github.com/aliyun/aliyun-mns-go-sdk"
	"github.com/valyala/fasthttp"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

// probe is the fasthttp transport given to each SDK client. It forwards the
// request (to the loopback emulator when one is configured, else through
// fasthttp's default transport) and records the HTTP status and the <Code> of
// an error body, which the SDK's errors do not expose. One probe serves one
// SDK call, on that call's goroutine.
type probe struct {
	loopback *fasthttp.HostClient
	timeout  time.Duration
	status   int
	code     string
}

// RoundTrip implements fasthttp.RoundTripper.
func (p *probe) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	var (
		retry bool
		err   error
	)
	if p.loopback != nil {
		// The request keeps its MNS-shaped Host header; only the dialled
		// address changes. Never retried here: sending and publishing are
		// not idempotent.
		err = p.loopback.DoTimeout(req, resp, p.timeout)
	} else {
		// Each call has its own SDK client, so a kept-alive connection
		// would never be reused: close it with the response.
		req.SetConnectionClose()
		retry, err = fasthttp.DefaultTransport.RoundTrip(hc, req, resp)
	}
	if err == nil {
		p.status = resp.StatusCode()
		p.code = ""
		if p.status >= http.StatusMultipleChoices {
			var body struct {
				Code string `xml:"Code"`
			}
			if xml.Unmarshal(resp.Body(), &body) == nil {
				p.code = body.Code
			}
		}
	}
	return retry, err
}

// classify turns an SDK error into a *fault.Error, using the SDK's error
// templates and the HTTP status the probe saw.
func classify(op, subject string, err error, p *probe) error {
	if err == nil {
		return nil
	}
	var panicked *sdkPanic
	if errors.As(err, &panicked) {
		return fault.Wrap(op, fault.Permanent, "", fmt.Errorf("%s: %w", subject, err))
	}
	kind := fault.Permanent
	if retryable(err) || p.status >= http.StatusInternalServerError {
		kind = fault.Retryable
	}
	code := p.code
	if ali_mns.ERR_SEND_REQUEST_FAILED.IsEqual(err) {
		code = "" // no answer: nothing the service said
	}
	return fault.Wrap(op, kind, code, fmt.Errorf("%s: %w", subject, err))
}

// retryable reports the SDK errors a later attempt may cure: transport
// failures and timeouts, throttling, internal errors and responses that could
// not be parsed (a proxy's HTML page, a truncated body).
func retryable(err error) bool {
	return ali_mns.ERR_SEND_REQUEST_FAILED.IsEqual(err) ||
		ali_mns.ERR_MNS_QPS_LIMIT_EXCEEDED.IsEqual(err) ||
		ali_mns.ERR_MNS_INTERNAL_ERROR.IsEqual(err) ||
		ali_mns.ERR_UNMARSHAL_ERROR_RESPONSE_FAILED.IsEqual(err) ||
		ali_mns.ERR_UNMARSHAL_RESPONSE_FAILED.IsEqual(err)
}
