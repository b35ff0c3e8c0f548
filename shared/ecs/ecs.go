// Package ecs is the adapter over the Elastic Compute Service (ECS) OpenAPI
// 2014-05-26, called through the core Alibaba Cloud Go SDK by way of
// shared/openapi: it describes instances (DescribeInstances, by ID or by
// status for a reconcile sweep), tags an instance (TagResources) and asks
// whether Cloud Assistant is running on instances
// (DescribeCloudAssistantStatus). SDK types do not leak out of it.
//
// Errors are classified once, by shared/openapi, under this package's
// operation names. Every error returned is a *fault.Error whose Op is
// "ecs.<Action>" (or "ecs.New") and whose Code is the service's error code
// when there is one (read it with fault.CodeOf); service errors wrap an
// [*APIError] carrying the HTTP status and RequestId:
//
//   - fault.Invalid: bad configuration or arguments; no request is sent.
//   - fault.Retryable: Code "Throttling", "Throttling.*", "Rejected.Throttling",
//     "ServiceUnavailable", "InternalError", "SDK.TimeoutError"; any HTTP
//     status >= 500; transport failures; the ctx deadline passing before or
//     during the call (the error also wraps context.DeadlineExceeded).
//   - fault.Permanent: everything else, including a cancelled ctx (wraps
//     context.Canceled), Success:false in a 200 response, an unreadable
//     response, a listing that does not end within its page bound, and codes
//     such as "InvalidResourceId.NotFound" that callers may map themselves
//     through fault.CodeOf.
//
// The package never logs, and error texts never contain the access key
// secret or security token.
package ecs

import (
	"net/http"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/openapi"
)

const (
	// Product is the OpenAPI product code.
	Product = "ecs"
	// APIVersion is the ECS OpenAPI version spoken.
	APIVersion = "2014-05-26"
	// DefaultTimeout bounds one request when Config.Timeout is zero.
	DefaultTimeout = openapi.DefaultTimeout
)

// Instance statuses reported by DescribeInstances and accepted by
// ListInstances.
const (
	StatusPending  = "Pending"
	StatusRunning  = "Running"
	StatusStarting = "Starting"
	StatusStopping = "Stopping"
	StatusStopped  = "Stopped"
)

// Config configures a Client.
type Config struct {
	// Region is the region of the instances, e.g. "cn-hangzhou"; required,
	// ^[a-z0-9-]{1,64}$.
	Region string
	// Endpoint: "" → "ecs.<Region>.aliyuncs.com"; a bare host
	// ("ecs-vpc.cn-hangzhou.aliyuncs.com"), a host containing the literal
	// "{region}" placeholder (replaced by Region), or a URL
	// "https://host[:port]". "http://" is accepted only for loopback hosts
	// (127.0.0.0/8, ::1, localhost): that is how the local emulator is
	// reached; anything else must be HTTPS.
	Endpoint string
	// Timeout bounds each request (default 10s); the ctx deadline caps it.
	Timeout time.Duration
	// Transport carries the requests; default http.DefaultTransport (TLS
	// verification on). Share one across clients to reuse connections.
	Transport http.RoundTripper
}

// Client calls ECS. It is safe for concurrent use: calls are serialised,
// because the underlying SDK client is not goroutine-safe. It is cheap to
// build; build one per invocation with that invocation's credentials.
type Client struct {
	api *openapi.Client
}

// New validates cfg and cred and builds a Client. It sends nothing. Errors
// are fault.Invalid with Op "ecs.New".
func New(cfg Config, cred cloudauth.Credentials) (*Client, error) {
	api, err := openapi.New(openapi.Config{
		Product:   Product,
		Version:   APIVersion,
		Region:    cfg.Region,
		Endpoint:  cfg.Endpoint,
		Timeout:   cfg.Timeout,
		Transport: cfg.Transport,
	}, cred)
	if err != nil {
		return nil, err
	}
	return &Client{api: api}, nil
}

// Endpoint returns the resolved scheme and host[:port] requests go to.
func (c *Client) Endpoint() (scheme, host string) { return c.api.Endpoint() }

// APIError is an error reported by the service (or an unreadable response).
// It is wrapped in a *fault.Error; reach it with errors.As.
type APIError = openapi.APIError

// Instance is what this project needs to know about an ECS instance.
type Instance struct {
	ID     string
	Status string // Pending, Running, Starting, Stopping, Stopped
	// OSType is "linux" or "windows".
	OSType          string
	VpcID           string // "" for a classic-network instance
	ResourceGroupID string
	Name            string
	// Tags maps tag key to value; nil when the instance has no tags.
	Tags map[string]string
}
