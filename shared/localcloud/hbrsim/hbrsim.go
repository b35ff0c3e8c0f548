// Package hbrsim emulates the Cloud Backup (HBR) OpenAPI 2017-09-08 actions
// this project uses: InstallBackupClients, DescribeTask,
// DescribeBackupClients, CreatePolicyBindings and DescribePolicyBindings
// (policies and bindings: policy.go). It speaks the real RPC wire protocol (signature,
// envelopes, string error codes; see shared/rpcsim) so the real core SDK, the
// shared/hbr adapter and the compiled function binaries can be driven
// against it, in tests and in a long-running demo.
//
// Per-instance behaviour (readiness delay, unknown instance, install
// failures, task expiry or cancellation, install duration) is configured with
// [Server.SetDefault] and [Server.SetInstance]; gateway faults with
// [Server.SetFaults]. Time comes from Options.Now and tasks advance lazily
// when read: there are no background goroutines.
//
// Assumptions about the real service that are not documented (marked
// [UNVERIFIED] in the reference) are listed on the constants below. The
// package returns no classified errors: failures are HTTP error responses.
package hbrsim

import (
	"container/heap"
	"net/http"
	"sync"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/idorder"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim"
)

const (
	// Product is the OpenAPI product code.
	Product = "hbr"
	// Version is the only API version served.
	Version = "2017-09-08"
	// MaxInstallIDs is the documented limit of InstallBackupClients.
	MaxInstallIDs = 20
	// TaskNotFoundCode is the error code (HTTP 400) for an unknown TaskId.
	// [UNVERIFIED] the real code is not documented.
	TaskNotFoundCode = "InvalidTaskId.NotFound"
	// TaskName is the Name of install tasks. [UNVERIFIED] shape only.
	TaskName = "InstallBackupClientsTask"
	// DefaultFailCode is the per-instance errorCode of a failed install.
	// [UNVERIFIED] the Result errorCode values are not documented.
	DefaultFailCode = "ExecutionFailed"
)

// Per-instance error codes documented for InstallBackupClients.
const (
	CodeInstanceNotExists  = "InstanceNotExists"
	CodeInstanceNotRunning = "InstanceNotRunning"
	CodeCloudAssistNotRun  = "CloudAssistNotRunningOnInstance"
)

// Task states, as reported in DescribeTask's Description.
const (
	StateCreated   = "created"
	StateCompleted = "completed"
	StateExpired   = "expired"
	StateCancelled = "cancelled"
)

// Client statuses reported in task results and by DescribeBackupClients
// (the twelve values of the DescribeBackupClients Status field).
const (
	ClientRegistered      = "REGISTERED"
	ClientActivated       = "ACTIVATED"
	ClientDeactivated     = "DEACTIVATED"
	ClientInstalling      = "INSTALLING"
	ClientInstallFailed   = "INSTALL_FAILED"
	ClientNotInstalled    = "NOT_INSTALLED"
	ClientUpgrading       = "UPGRADING"
	ClientUpgradeFailed   = "UPGRADE_FAILED"
	ClientUninstalling    = "UNINSTALLING"
	ClientUninstallFailed = "UNINSTALL_FAILED"
	ClientStopped         = "STOPPED"
	ClientUnknown         = "UNKNOWN"
)

// ClientStatuses lists every client status DescribeBackupClients reports.
var ClientStatuses = []string{
	ClientRegistered, ClientActivated, ClientDeactivated, ClientInstalling, ClientInstallFailed, ClientNotInstalled,
	ClientUpgrading, ClientUpgradeFailed, ClientUninstalling, ClientUninstallFailed, ClientStopped, ClientUnknown,
}

// Options configures a Server.
type Options struct {
	// AccessKeyID and AccessKeySecret are a key pair accepted (the
	// principal named ""); requests signed with neither it nor one of
	// Principals are rejected.
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
	// Now is the simulated clock driving readiness and tasks. Default time.Now.
	Now func() time.Time
	// WallClock checks request Timestamps (the SDK signs with the real
	// clock). Default time.Now; keep it real when Now is simulated.
	WallClock func() time.Time
	// Seed seeds task/request IDs and injected-fault randomness.
	Seed int64
}

// Behavior says how the emulated service treats an instance.
type Behavior struct {
	// ReadyAfter: until this much time has passed since the emulator first
	// saw the instance (in any call, or through InstanceSeen),
	// InstallBackupClients reports it with ErrorCode NotReadyCode.
	ReadyAfter time.Duration
	// ReadyAt, when set, is the absolute time Cloud Assistant becomes ready
	// (the instance's first heartbeat): before it InstallBackupClients
	// reports the instance with NotReadyCode, whatever ReadyAfter says. A
	// local cloud gives the ECS emulator the same time, so both services
	// agree on readiness.
	ReadyAt time.Time
	// NotReadyCode is the not-ready ErrorCode; default
	// "CloudAssistNotRunningOnInstance" (or use "InstanceNotRunning").
	NotReadyCode string
	// Gone reports the instance with ErrorCode "InstanceNotExists".
	Gone bool
	// InvalidCode is any other per-instance ErrorCode (ValidInstance=false).
	InvalidCode string
	// FailInstalls: the first K install tasks containing this instance end
	// with clientStatus INSTALL_FAILED and errorCode FailCode.
	FailInstalls int
	// FailCode is the errorCode of failed installs; default "ExecutionFailed".
	FailCode string
	// InstallDuration is the time this instance's install takes inside a
	// task; a task completes when all its instances are done.
	InstallDuration time.Duration
	// TaskEnd: "" normal; "expired" or "cancelled" makes a task containing
	// this instance end in that state after InstallDuration (Progress -1 for
	// expired). Instances not finished by then are reported UNKNOWN
	// (expired) or INSTALLING (cancelled) in the Result and their client
	// becomes UNKNOWN. Any other value is reported verbatim as the final
	// Description, to exercise callers' tolerance of undocumented states.
	TaskEnd string
}

// Faults configures gateway fault injection (see rpcsim.Faults): throttling
// is HTTP 400 "Throttling.User", a server error HTTP 503 "ServiceUnavailable"
// (or 500 "InternalError" with ServerErrorStatus 500). Faults apply before the
// action runs, so a throttled install creates no task.
type Faults = rpcsim.Faults

// Call records one request received by the emulator.
type Call struct {
	Time   time.Time
	Action string
	Method string
	// Params holds query ∪ form parameters (SecurityToken and Signature masked).
	Params    map[string]string
	Status    int
	Code      string // error code, "" on success
	RequestID string
	// TaskID is the task created (InstallBackupClients) or asked about
	// (DescribeTask), if any.
	TaskID string
	// Principal names the caller (see rpcsim.Call.Principal).
	Principal string
}

// TaskInfo describes an install task.
type TaskInfo struct {
	ID        string
	Instances []string
	Created   time.Time
	Completed time.Time // zero while running
	State     string    // created|completed|expired|cancelled
}

// Server is the HBR emulator. It implements http.Handler and is safe for
// concurrent use.
type Server struct {
	rpc *rpcsim.Server
	now func() time.Time

	mu        sync.Mutex
	def       Behavior
	per       map[string]Behavior
	instances map[string]*instance
	// byClient maps client IDs to instance IDs; ids holds the instance
	// IDs in order (see sortedIDs).
	byClient map[string]string
	ids      idorder.Set
	// moving holds the seeded clients' pending transitions, soonest first
	// (entries an install or a new transition replaced are skipped when
	// they come up); ending the tasks not settled yet, by end time and
	// then creation (see advance).
	moving transitions
	ending taskQueue
	tasks  map[string]*task
	order  []*task

	pol policyState // backup policies and bindings (policy.go)
}

type instance struct {
	firstSeen time.Time
	installs  int
	clientID  string
	status    string    // client status; "" when no client exists
	created   time.Time // when the client record was created (whole seconds)
	// becomes is the status a seeded transitional client reaches at
	// becomesAt (zero: none).
	becomes   string
	becomesAt time.Time
}

type taskItem struct {
	id       string
	duration time.Duration
	fail     bool
	failCode string
	end      string
}

type task struct {
	id      string
	created time.Time
	items   []taskItem
	endAt   time.Time
	final   string // state once endAt is reached
	seq     int    // creation order
}

// New returns an emulator; serve it with Start or as an http.Handler.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		now: opts.Now,
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
		per:       make(map[string]Behavior),
		instances: make(map[string]*instance),
		byClient:  make(map[string]string),
		tasks:     make(map[string]*task),
	}
	s.rpc.Handle("InstallBackupClients", s.installBackupClients)
	s.rpc.Handle("DescribeTask", s.describeTask)
	s.rpc.Handle("DescribeBackupClients", s.describeBackupClients)
	s.rpc.Handle("CreatePolicyBindings", s.createPolicyBindings)
	s.rpc.Handle("DescribePolicyBindings", s.describePolicyBindings)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.rpc.ServeHTTP(w, r) }

// Start listens on 127.0.0.1:0 and returns "http://127.0.0.1:PORT".
func (s *Server) Start() (baseURL string, err error) { return s.rpc.Start() }

// Close stops a started server.
func (s *Server) Close() error { return s.rpc.Close() }

// SetDefault sets the behaviour of instances without their own.
func (s *Server) SetDefault(b Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.def = b
}

// SetInstance sets the behaviour of one instance.
func (s *Server) SetInstance(id string, b Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.per[id] = b
}

// SetClient gives an instance an existing backup client in any status (see
// ClientStatuses), as if it had been installed before the run (created at
// the given time, reported in whole seconds).
func (s *Server) SetClient(instanceID, status string, created time.Time) {
	s.SetClientTransition(instanceID, status, created, "", 0)
}

// SetClientTransition is SetClient for a client in a transitional status
// (UPGRADING, REGISTERED, …) that becomes status then after the delay, on
// the Options.Now clock. An empty then or a delay ≤ 0 means no transition.
func (s *Server) SetClientTransition(instanceID, status string, created time.Time, then string, after time.Duration) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.instance(instanceID, now)
	in.status = status
	in.created = created.Truncate(time.Second)
	in.becomes, in.becomesAt = "", time.Time{}
	if then != "" && after > 0 {
		in.becomes, in.becomesAt = then, now.Add(after)
		heap.Push(&s.moving, transition{at: in.becomesAt, in: in})
	}
}

// Client returns an instance's client status and creation time as
// DescribeBackupClients would report them now ("" when it has no client).
func (s *Server) Client(instanceID string) (status string, created time.Time) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(now)
	if in := s.instances[instanceID]; in != nil {
		return in.status, in.created
	}
	return "", time.Time{}
}

// SetFaults replaces the fault-injection settings.
func (s *Server) SetFaults(f Faults) { s.rpc.SetFaults(f) }

// Calls returns request counts keyed "hbr.<Action>", rejected ones included.
func (s *Server) Calls() map[string]int { return s.rpc.Calls() }

// CallsBy returns request counts by principal name, then keyed
// "hbr.<Action>" (see rpcsim.Server.CallsBy).
func (s *Server) CallsBy() map[string]map[string]int { return s.rpc.CallsBy() }

// SetLatency changes Options.Latency for the requests that arrive from now on.
func (s *Server) SetLatency(d time.Duration) { s.rpc.SetLatency(d) }

// OnCall adds a hook called after each request (see rpcsim.Server.OnCall).
func (s *Server) OnCall(hook func(Call)) {
	s.rpc.OnCall(func(c rpcsim.Call) {
		call := Call{Time: c.Time, Action: c.Action, Method: c.Method, Params: c.Params,
			Status: c.Status, Code: c.Code, RequestID: c.RequestID, Principal: c.Principal}
		switch {
		case c.Action == "DescribeTask":
			call.TaskID = c.Params["TaskId"]
		case c.Response != nil:
			call.TaskID, _ = c.Response["TaskId"].(string)
		}
		hook(call)
	})
}

// InstanceSeen records that the instance existed at time at (e.g. when an ECS
// emulator created it), which starts its ReadyAfter delay if it is earlier
// than anything seen before.
func (s *Server) InstanceSeen(id string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.instance(id, at)
	if at.Before(in.firstSeen) {
		in.firstSeen = at
	}
}

// Installs returns how many install tasks have included the instance.
func (s *Server) Installs(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.instances[id]; in != nil {
		return in.installs
	}
	return 0
}

// Tasks returns every task created, oldest first, advanced to Options.Now.
func (s *Server) Tasks() []TaskInfo {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(now)
	out := make([]TaskInfo, 0, len(s.order))
	for _, t := range s.order {
		info := TaskInfo{ID: t.id, Created: t.created, State: StateCreated}
		for _, it := range t.items {
			info.Instances = append(info.Instances, it.id)
		}
		if !now.Before(t.endAt) {
			info.State, info.Completed = t.final, t.endAt
		}
		out = append(out, info)
	}
	return out
}
