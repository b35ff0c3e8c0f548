// Package ecssim emulates the Elastic Compute Service (ECS) OpenAPI
// 2014-05-26 actions this project uses: DescribeInstances (InstanceIds,
// Status, VpcId and ResourceGroupId filters; NextToken/MaxResults and
// PageNumber/PageSize paging), TagResources (instances only, at most
// MaxTagsPerInstance tags each) and DescribeCloudAssistantStatus. It is built
// on shared/rpcsim, so it speaks the real RPC wire protocol (signature,
// envelopes, string error codes) and the real core SDK, the shared/ecs
// adapter and compiled function binaries can be driven against it, in tests
// and in a long-running demo.
//
// Instances are set with [Server.SetInstance]; Cloud Assistant becomes ready
// at Instance.AssistantReadyAt on the Options.Now clock. Gateway faults are
// injected with [Server.SetFaults]. There are no background goroutines.
//
// Error codes the reference does not document are marked [UNVERIFIED] on the
// constants below. The package returns no classified errors: failures are
// HTTP error responses.
package ecssim

import (
	"cmp"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/idorder"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim"
)

const (
	// Product is the OpenAPI product code.
	Product = "ecs"
	// Version is the only API version served.
	Version = "2014-05-26"
	// DefaultRegion is Options.Region when it is empty.
	DefaultRegion = "cn-hangzhou"

	// MaxDescribeIDs is the documented limit of DescribeInstances'
	// InstanceIds.
	MaxDescribeIDs = 100
	// MaxPageSize is the largest PageSize / MaxResults of DescribeInstances.
	MaxPageSize = 100
	// MaxAssistantIDs is the documented limit of InstanceId.N in
	// DescribeCloudAssistantStatus, and its largest PageSize.
	MaxAssistantIDs = 50
	// MaxTagResources is the documented limit of ResourceId.N in
	// TagResources.
	MaxTagResources = 50
	// MaxTagsPerCall is the documented limit of Tag.N in TagResources.
	MaxTagsPerCall = 20
	// MaxTagsPerInstance is how many tags one instance may carry.
	MaxTagsPerInstance = 20
	// MaxTagLen is the documented length limit, in characters, of a tag
	// key and of a tag value.
	MaxTagLen = 128

	// CodeResourceNotFound (HTTP 404) answers TagResources naming an
	// instance that does not exist in the region. [UNVERIFIED] seen in
	// older ECS tag docs, not on the current TagResources page.
	CodeResourceNotFound = "InvalidResourceId.NotFound"
	// CodeResourceTypeNotFound (HTTP 404) answers a ResourceType other than
	// "instance". [UNVERIFIED] as above.
	CodeResourceTypeNotFound = "InvalidResourceType.NotFound"
	// CodeTagCount (HTTP 400) answers TagResources that would leave an
	// instance with more than MaxTagsPerInstance tags. [UNVERIFIED] the code
	// the AddTags page documents for too many tags.
	CodeTagCount = "InvalidTagCount"
	// CodeTagKey and CodeTagValue (HTTP 400) answer a malformed tag.
	// [UNVERIFIED]
	CodeTagKey   = "InvalidTagKey.Malformed"
	CodeTagValue = "InvalidTagValue.Malformed"
)

// Instance statuses.
const (
	StatusPending  = "Pending"
	StatusRunning  = "Running"
	StatusStarting = "Starting"
	StatusStopping = "Stopping"
	StatusStopped  = "Stopped"
)

// Options configures a Server.
type Options struct {
	// AccessKeyID and AccessKeySecret are a key pair accepted (the
	// principal named ""); Principals adds more.
	AccessKeyID, AccessKeySecret string
	// SecurityToken, if non-empty, must be carried by every request.
	SecurityToken string
	// Principals are further named key pairs accepted (see
	// rpcsim.Options.Principals); calls are attributed to them in CallsBy
	// and Call.Principal.
	Principals callers.Set
	// Latency is how long every answered request takes, half before its
	// action takes effect and half after (see rpcsim.Options.Latency).
	Latency time.Duration
	// Region is the region of instances set without one; default
	// DefaultRegion. A request sees only the instances of its RegionId.
	Region string
	// Now is the simulated clock (Cloud Assistant readiness, creation
	// times). Default time.Now.
	Now func() time.Time
	// WallClock checks request Timestamps (the SDK signs with the real
	// clock). Default time.Now; keep it real when Now is simulated.
	WallClock func() time.Time
	// Seed seeds request IDs and injected-fault randomness.
	Seed int64
}

// Instance is an emulated ECS instance.
type Instance struct {
	// ID is the instance ID, e.g. "i-bp1…"; required.
	ID string
	// RegionID defaults to Options.Region.
	RegionID string
	// Status defaults to "Running".
	Status string
	// OSType is "linux" (default) or "windows".
	OSType          string
	VpcID           string
	ResourceGroupID string
	Name            string
	// Tags are the instance's tags (copied in and out).
	Tags map[string]string
	// Created defaults to Options.Now when the instance is first set.
	Created time.Time
	// AssistantReadyAt: Cloud Assistant reports "true" once Options.Now
	// reaches it (zero: at once), as long as the instance is Running.
	AssistantReadyAt time.Time
	// NoAssistant: Cloud Assistant is not installed; never ready.
	NoAssistant bool
}

// Faults configures gateway fault injection (see rpcsim.Faults): throttling
// is HTTP 400 "Throttling.User", a server error HTTP 503 "ServiceUnavailable"
// (or 500 "InternalError"). Faults apply before the action runs, so a
// throttled TagResources writes nothing.
type Faults = rpcsim.Faults

// Call records one request received by the emulator (see rpcsim.Call).
type Call = rpcsim.Call

// Server is the ECS emulator. It implements http.Handler and is safe for
// concurrent use.
type Server struct {
	rpc    *rpcsim.Server
	now    func() time.Time
	region string

	mu        sync.Mutex
	instances map[string]*Instance
	// order holds the instances' IDs in order, merged in when a listing
	// needs it: a call naming its instances never does, so a launch that
	// adds instances between such calls pays nothing for the order.
	order idorder.Set
}

// sortedIDsLocked returns the instance IDs in order. s.mu is held.
func (s *Server) sortedIDsLocked() []string { return s.order.Sorted() }

// lookupSortedLocked returns the instances among ids (duplicates and
// unknown IDs dropped), sorted by ID: what a scan of the sorted IDs
// filtered by ids would visit, in O(len(ids) log len(ids)). s.mu is held.
func (s *Server) lookupSortedLocked(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if s.instances[id] != nil {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// New returns an emulator with no instances; serve it with Start or as an
// http.Handler.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		now:    opts.Now,
		region: cmp.Or(opts.Region, DefaultRegion),
		rpc: rpcsim.New(rpcsim.Options{
			Product:         Product,
			Version:         Version,
			AccessKeyID:     opts.AccessKeyID,
			AccessKeySecret: opts.AccessKeySecret,
			SecurityToken:   opts.SecurityToken,
			Principals:      opts.Principals,
			Latency:         opts.Latency,
			Now:             opts.Now,
			WallClock:       opts.WallClock,
			Seed:            opts.Seed,
		}),
		instances: make(map[string]*Instance),
	}
	s.rpc.Handle("DescribeInstances", s.describeInstances)
	s.rpc.Handle("TagResources", s.tagResources)
	s.rpc.Handle("DescribeCloudAssistantStatus", s.describeCloudAssistantStatus)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.rpc.ServeHTTP(w, r) }

// Start listens on 127.0.0.1:0 and returns "http://127.0.0.1:PORT".
func (s *Server) Start() (baseURL string, err error) { return s.rpc.Start() }

// Close stops a started server.
func (s *Server) Close() error { return s.rpc.Close() }

// SetFaults replaces the fault-injection settings.
func (s *Server) SetFaults(f Faults) { s.rpc.SetFaults(f) }

// Calls returns request counts keyed "ecs.<Action>", rejected ones included.
func (s *Server) Calls() map[string]int { return s.rpc.Calls() }

// CallsBy returns request counts by principal name, then keyed
// "ecs.<Action>" (see rpcsim.Server.CallsBy).
func (s *Server) CallsBy() map[string]map[string]int { return s.rpc.CallsBy() }

// SetLatency changes Options.Latency for the requests that arrive from now on.
func (s *Server) SetLatency(d time.Duration) { s.rpc.SetLatency(d) }

// OnCall adds a hook called after each request (see rpcsim.Server.OnCall).
func (s *Server) OnCall(hook func(Call)) { s.rpc.OnCall(hook) }

// SetInstance creates or replaces an instance, filling the defaults
// documented on Instance (a replaced instance keeps its creation time unless
// one is given). An instance without an ID is ignored.
func (s *Server) SetInstance(in Instance) { s.SetInstances(in) }

// SetInstances is SetInstance for several instances, under one lock.
func (s *Server) SetInstances(ins ...Instance) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, in := range ins {
		if in.ID == "" {
			continue
		}
		in.RegionID = cmp.Or(in.RegionID, s.region)
		in.Status = cmp.Or(in.Status, StatusRunning)
		in.OSType = cmp.Or(in.OSType, "linux")
		if in.Created.IsZero() {
			in.Created = now
			if old := s.instances[in.ID]; old != nil {
				in.Created = old.Created
			}
		}
		in.Tags = maps.Clone(in.Tags)
		if s.instances[in.ID] == nil {
			s.order.Add(in.ID)
		}
		s.instances[in.ID] = &in
	}
}

// SetStatus changes an instance's status; it reports whether the instance
// exists.
func (s *Server) SetStatus(id, status string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.instances[id]
	if in == nil {
		return false
	}
	in.Status = status
	return true
}

// RemoveInstance deletes an instance (it is released).
func (s *Server) RemoveInstance(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.instances[id] == nil {
		return
	}
	delete(s.instances, id)
	s.order.Remove(id)
}

// Instance returns a copy of an instance.
func (s *Server) Instance(id string) (Instance, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.instances[id]
	if in == nil {
		return Instance{}, false
	}
	out := *in
	out.Tags = maps.Clone(in.Tags)
	return out, true
}

// Instances returns copies of every instance, sorted by ID.
func (s *Server) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Instance, 0, len(s.instances))
	for _, id := range s.sortedIDsLocked() {
		in := *s.instances[id]
		in.Tags = maps.Clone(in.Tags)
		out = append(out, in)
	}
	return out
}

// Tags returns a copy of an instance's tags (nil if it has none or does not
// exist).
func (s *Server) Tags(id string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.instances[id]; in != nil {
		return maps.Clone(in.Tags)
	}
	return nil
}
