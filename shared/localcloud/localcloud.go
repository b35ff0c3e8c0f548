// Package localcloud runs the whole system on one machine: the HBR, ECS,
// MNS and OSS emulators (with the job queue, the install queue, the
// dead-letter queue, the outcome topic and the ledger bucket), the compiled
// install, poller and reconcile binaries under the FC runtime emulator, the
// EventBridge default bus pushing ECS events into install, and two MNS event
// streams — the install queue into install, the job queue into poller — each
// speaking the real wire protocol. Every function signs with a key pair of
// its own, so each emulator counts the calls of each function; every API
// call takes Options.APILatency, the real cloud's round trip scaled down.
// The reconcile function has no trigger here: it is invoked directly
// (Cloud.Function("reconcile").Invoke). The local cloud reads the functions'
// JSON log lines to know which instances were accepted and which outcome
// each reached, and the ledger bucket to know which have a final record,
// and turns that into a [Report].
//
// It is used by the end-to-end tests, by `make demo` (scripts/demo) and by
// the benchmarks. Functions run with their real clocks; only the delays in
// [Timing] are shortened.
package localcloud

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ebsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ecssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/fcsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/osssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ossstore"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/protect"
)

// Timing holds the functions' delays, shortened for a local run.
type Timing struct {
	FirstPoll, Interval                             time.Duration
	ReadinessDelay, ReadinessStep, ReadinessTimeout time.Duration
	TaskTimeout, Margin, RetryBase, RetryMax        time.Duration
	MaxAttempts                                     int
}

// DefaultTiming is the demo's timing: seconds instead of minutes.
func DefaultTiming() Timing {
	return Timing{
		FirstPoll: 2 * time.Second, Interval: time.Second,
		ReadinessDelay: time.Second, ReadinessStep: time.Second, ReadinessTimeout: 20 * time.Second,
		TaskTimeout: 15 * time.Second, Margin: 2 * time.Second,
		RetryBase: time.Second, RetryMax: 4 * time.Second, MaxAttempts: 2,
	}
}

// Options configure a local cloud. Zero values take the defaults noted.
type Options struct {
	// Binaries maps each of Functions to its compiled binary.
	Binaries map[string]string
	// Region and AccountID default to cn-hangzhou and 1234567890123456.
	Region, AccountID string
	// Timing defaults to DefaultTiming().
	Timing *Timing
	// Behavior is every instance's HBR behaviour unless Instances names it.
	Behavior  hbrsim.Behavior
	Instances map[string]hbrsim.Behavior
	// HBRFaults and MNSFaults inject throttling, 5xx and send failures.
	HBRFaults hbrsim.Faults
	MNSFaults mnssim.Faults
	// BatchCount (default 10) and BatchWindow (default 200 ms) shape the
	// event stream's batches.
	BatchCount  int
	BatchWindow time.Duration
	// Retry is the platform's retry of failed pushes (default 3 retries,
	// 200–400 ms apart).
	Retry ebsim.RetryPolicy
	// DuplicateRate makes the bus and the stream deliver that share of
	// events and messages twice.
	DuplicateRate float64
	// CrashRate kills the poller's process during that share of its
	// invocations.
	CrashRate float64
	// MaxInstances bounds each function's processes (default 4): Function
	// Compute scales every function out. StreamConcurrency is how many
	// batches each event stream has in flight at once (default
	// MaxInstances).
	MaxInstances      int
	StreamConcurrency int
	// APILatency is how long every call to an emulated API takes (HBR,
	// ECS, MNS, OSS): the real cloud's round trip, divided by the run's
	// speed-up like every other delay. 0: as fast as the machine.
	APILatency time.Duration
	// InstallCrashRate kills the install function's processes right after
	// that share of its InstallBackupClients calls return: a death between
	// the install call and the task's poll message.
	InstallCrashRate float64
	// Rules are the event patterns of the install function's rules; nil
	// reads them from the repository's s.yaml (see InstallRules). AllEvents
	// delivers every event instead.
	Rules     []*ebsim.Pattern
	AllEvents bool
	// FunctionTimeout is each function's timeout (default 30 s).
	FunctionTimeout time.Duration
	// Seed makes fault injection repeatable.
	Seed int64
	// Env is added to every function's environment (overrides), e.g.
	// MODE, EXCLUDE_TAGS, OUTCOME_TAG_KEY or OUTCOME_TOPIC (TopicName).
	Env map[string]string
	// OnEntry receives the timeline as it happens.
	OnEntry func(Entry)
	// OnOutput receives every line a function writes (its logs), with the
	// function's name (install, poller, reconcile); calls are serialised
	// per function and the slice is the callee's.
	OnOutput func(function string, line []byte)
}

// Entry is one line of the timeline.
type Entry struct {
	At   time.Duration
	Kind string // event, invoke, hbr, ecs, mns, outcome, error, dlq
	Text string
}

// Queue, topic and bucket names used locally. The topic exists from the
// start; the functions publish to it only when Options.Env sets
// OUTCOME_TOPIC to TopicName.
const (
	QueueName        = "hbr-autoinstall-jobs"
	InstallQueueName = "hbr-autoinstall-installs"
	DLQName          = "hbr-autoinstall-dlq"
	TopicName        = "hbr-autoinstall-outcomes"
	LedgerBucket     = "hbr-autoinstall-ledger-local"
	LedgerPrefix     = "hbr-autoinstall/ledger/"
)

// Cloud is a running local cloud.
type Cloud struct {
	opts  Options
	start time.Time
	// HBR, ECS and MNS are the emulators, for scenario tweaks and
	// counters. ECS starts empty: instances named by events are not
	// created in it; a scenario that needs ECS (scope rules, audit mode,
	// outcome tags, a reconcile sweep) adds them with ECS.SetInstances.
	HBR *hbrsim.Server
	ECS *ecssim.Server
	MNS *mnssim.Server
	OSS *osssim.Server
	fns map[string]*fcsim.Function
	bus *ebsim.Bus

	cancel context.CancelFunc
	done   chan struct{}

	// launching counts the launch worlds still publishing.
	launching sync.WaitGroup

	mu          sync.Mutex
	accepted    map[key]acceptance
	records     map[key][]Record
	arrivals    []Record // every record, in arrival order
	errors      []string
	deadLetters []DeadLetter
	unmatched   []string
	pushes      map[string]int
	rejected    map[string]int
	rng         *rand.Rand
	// published counts events put on the bus; announced the instances
	// they (or a launch world) named; running the first Running event
	// of each instance; installSlots the instance IDs sent to
	// InstallBackupClients.
	published     int
	announcements int
	announced     map[string]bool
	running       map[string]time.Time
	installSlots  int
	speedup       float64
	// fired counts the injected faults that fired, by kind.
	fired map[string]int
	// coverage is the last sweep's coverage (see Sweep).
	coverage map[string]any
	// installCrash kills install processes after install calls.
	installCrash *crashAfter
	ossURL       string
}

// DeadLetter is one event or message that reached the dead-letter queue.
type DeadLetter struct {
	// Source says who put it there: "bus" (an event to install, after the
	// platform's retries), "stream" (a job message, after the job queue's
	// stream's retries), "install-stream" (install work, after the install
	// queue's), or the function that sent it itself ("hbr-autoinstall-poller",
	// "hbr-autoinstall-install") because it could not act on it.
	Source string `json:"source"`
	Reason string `json:"reason"`
	// Body is the event or message, clipped.
	Body string `json:"body"`
}

type key struct{ job, instance string }

type acceptance struct {
	region, trigger string
	at              time.Time
}

// Record is one outcome line as a function wrote it.
type Record struct {
	JobID      string  `json:"jobId"`
	InstanceID string  `json:"instanceId"`
	Region     string  `json:"region"`
	Outcome    string  `json:"outcome"`
	Reason     string  `json:"reason"`
	Code       string  `json:"code"`
	TaskID     string  `json:"taskId"`
	ClientID   string  `json:"clientId"`
	Attempts   int     `json:"attempts"`
	Elapsed    float64 `json:"elapsedSeconds"`
	// Supersedes names the earlier record of the instance this one
	// corrects, as "<jobId>/<OUTCOME>", or the dead owner it took over, as
	// "<jobId>"; "" when it corrects none.
	Supersedes string `json:"supersedes"`
	At         time.Time
}

// creds is the local cloud's own key pair (seeding, tools such as make
// status); each function gets one of its own (credsOf).
var creds = cloudauth.Credentials{AccessKeyID: "LTAI5tLocalCloudKey", AccessKeySecret: "local-cloud-secret", SecurityToken: "local-sts-token"}

// credsOf is the key pair function fn signs with: as its role's STS
// credentials would be in the cloud, its own, so that each emulator counts
// its calls apart.
func credsOf(fn string) cloudauth.Credentials {
	return cloudauth.Credentials{AccessKeyID: "LTAI5tLocal" + fn, AccessKeySecret: "local-secret-" + fn, SecurityToken: "local-sts-" + fn}
}

// slotCredsOf is the key pair of the processes in instance slot i of
// function fn: named after the function like credsOf, but its own, so that
// an emulator's call tells which process made it (see crashAfter).
func slotCredsOf(fn string, i int) cloudauth.Credentials {
	c := credsOf(fn)
	suffix := "-" + strconv.Itoa(i)
	return cloudauth.Credentials{AccessKeyID: c.AccessKeyID + suffix, AccessKeySecret: c.AccessKeySecret + suffix, SecurityToken: c.SecurityToken + suffix}
}

// slotOf returns the instance slot whose key pair has access key id id, or
// -1 when id is not a slot's.
func slotOf(fn, id string) int {
	rest, ok := strings.CutPrefix(id, credsOf(fn).AccessKeyID+"-")
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(rest)
	if err != nil {
		return -1
	}
	return i
}

// principals are every function's key pairs, the function's and each of
// its slots' (slots of them), named after the functions.
func principals(slots int) callers.Set {
	var set callers.Set
	for _, fn := range Functions {
		set = append(set, callers.Principal{Name: fn, Credentials: credsOf(fn)})
		for i := range slots {
			set = append(set, callers.Principal{Name: fn, Credentials: slotCredsOf(fn, i)})
		}
	}
	return set
}

// Credentials is the local cloud's own key pair, which every emulator
// accepts: for tools run beside the functions (make status in the demo).
func Credentials() cloudauth.Credentials { return creds }

// Start brings up the emulators and every function of Functions.
func Start(ctx context.Context, opts Options) (*Cloud, error) {
	if opts.Region == "" {
		opts.Region = "cn-hangzhou"
	}
	if opts.AccountID == "" {
		opts.AccountID = "1234567890123456"
	}
	if opts.Timing == nil {
		t := DefaultTiming()
		opts.Timing = &t
	}
	if opts.BatchCount == 0 {
		opts.BatchCount = 10
	}
	if opts.BatchWindow == 0 {
		opts.BatchWindow = 200 * time.Millisecond
	}
	if opts.Retry.Retries == 0 && opts.Retry.MinDelay == 0 {
		opts.Retry = ebsim.RetryPolicy{Retries: 3, MinDelay: 200 * time.Millisecond, MaxDelay: 400 * time.Millisecond}
	}
	if opts.MaxInstances == 0 {
		opts.MaxInstances = 4
	}
	if opts.StreamConcurrency == 0 {
		opts.StreamConcurrency = opts.MaxInstances
	}
	if opts.Rules == nil && !opts.AllEvents {
		root, err := ModuleRoot(".")
		if err != nil {
			return nil, fmt.Errorf("localcloud: find s.yaml for the install rules: %w", err)
		}
		if opts.Rules, err = InstallRules(root); err != nil {
			return nil, fmt.Errorf("localcloud: %w", err)
		}
	}
	if opts.AllEvents {
		opts.Rules = nil
	}
	if opts.FunctionTimeout == 0 {
		opts.FunctionTimeout = 30 * time.Second
	}
	for _, fn := range Functions {
		if opts.Binaries[fn] == "" {
			return nil, fmt.Errorf("localcloud: no binary for function %q", fn)
		}
	}
	c := &Cloud{
		opts: opts, start: time.Now(), fns: map[string]*fcsim.Function{},
		accepted: map[key]acceptance{}, records: map[key][]Record{}, pushes: map[string]int{}, rejected: map[string]int{},
		announced: map[string]bool{}, running: map[string]time.Time{}, fired: map[string]int{},
		rng:  rand.New(rand.NewPCG(uint64(opts.Seed), 0x10ca1)),
		done: make(chan struct{}),
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()

	who := principals(opts.MaxInstances)
	c.HBR = hbrsim.New(hbrsim.Options{AccessKeyID: creds.AccessKeyID, AccessKeySecret: creds.AccessKeySecret, SecurityToken: creds.SecurityToken,
		Principals: who, Latency: opts.APILatency, Seed: opts.Seed})
	c.HBR.SetDefault(opts.Behavior)
	for id, b := range opts.Instances {
		c.HBR.SetInstance(id, b)
	}
	c.HBR.SetFaults(opts.HBRFaults)
	// The backup policies the functions are configured with exist in the
	// account the local cloud plays.
	if settings, err := protect.Parse(opts.Env[protect.EnvPolicyID], opts.Env[protect.EnvPolicyByTag]); err == nil {
		c.HBR.AddPolicy(settings.Policies()...)
	}
	c.HBR.OnCall(c.onHBRCall)
	hbrURL, err := c.HBR.Start()
	if err != nil {
		return nil, fmt.Errorf("start HBR emulator: %w", err)
	}

	c.ECS = ecssim.New(ecssim.Options{AccessKeyID: creds.AccessKeyID, AccessKeySecret: creds.AccessKeySecret, SecurityToken: creds.SecurityToken,
		Principals: who, Latency: opts.APILatency, Region: opts.Region, Seed: opts.Seed})
	c.ECS.OnCall(c.onECSCall)
	ecsURL, err := c.ECS.Start()
	if err != nil {
		return nil, fmt.Errorf("start ECS emulator: %w", err)
	}

	c.MNS = mnssim.New(mnssim.Options{AccessKeyID: creds.AccessKeyID, AccessKeySecret: creds.AccessKeySecret, SecurityToken: creds.SecurityToken,
		Principals: who, Latency: opts.APILatency, Seed: opts.Seed})
	c.MNS.CreateQueue(QueueName)
	c.MNS.CreateQueue(InstallQueueName)
	c.MNS.CreateQueue(DLQName)
	c.MNS.CreateTopic(TopicName)
	c.MNS.SetFaults(opts.MNSFaults)
	c.MNS.OnSend(c.onSend)
	mnsURL, err := c.MNS.Start()
	if err != nil {
		return nil, fmt.Errorf("start MNS emulator: %w", err)
	}

	c.OSS = osssim.New(osssim.Options{Principals: append(callers.Set{{Name: "", Credentials: creds}}, who...),
		Region: opts.Region, Latency: opts.APILatency, Seed: opts.Seed})
	c.OSS.CreateBucket(LedgerBucket)
	ossURL, err := c.OSS.Start()
	if err != nil {
		return nil, fmt.Errorf("start OSS emulator: %w", err)
	}
	c.ossURL = ossURL

	t := opts.Timing
	env := map[string]string{
		"QUEUE_NAME":           QueueName,
		"INSTALL_QUEUE_NAME":   InstallQueueName,
		"LEDGER_BUCKET":        LedgerBucket,
		"LEDGER_PREFIX":        LedgerPrefix,
		"OSS_ENDPOINT":         ossURL,
		"MNS_ENDPOINT":         mnsURL,
		"HBR_ENDPOINT":         hbrURL,
		"ECS_ENDPOINT":         ecsURL,
		"API_TIMEOUT":          "5s",
		"FIRST_POLL_DELAY":     secs(t.FirstPoll),
		"POLL_INTERVAL":        secs(t.Interval),
		"READINESS_DELAY":      secs(t.ReadinessDelay),
		"READINESS_DELAY_STEP": secs(t.ReadinessStep),
		"READINESS_TIMEOUT":    secs(t.ReadinessTimeout),
		"TASK_TIMEOUT":         secs(t.TaskTimeout),
		"DEADLINE_MARGIN":      secs(t.Margin),
		"RETRY_BASE_DELAY":     secs(t.RetryBase),
		"RETRY_MAX_DELAY":      secs(t.RetryMax),
		"MAX_INSTALL_ATTEMPTS": strconv.Itoa(max(t.MaxAttempts, 1)),
		// The lease, shortened like the delays: the longest healthy step
		// and a quarter more (at least 5 s) for message delays and retries.
		"LEDGER_LEASE": secs(t.ReadinessTimeout + t.TaskTimeout + t.Margin + max(5*time.Second, (t.ReadinessTimeout+t.TaskTimeout+t.Margin)/4)),
		"LOG_LEVEL":    "info",
	}
	for k, v := range opts.Env {
		env[k] = v
	}
	for _, fn := range Functions {
		f, err := fcsim.Start(ctx, fcsim.Config{
			Name: functionPrefix + fn, Binary: opts.Binaries[fn], Env: env,
			Timeout: opts.FunctionTimeout, Region: opts.Region, AccountID: opts.AccountID,
			Credentials: credsOf(fn), MaxInstances: opts.MaxInstances, Output: c.onOutput,
			InstanceCredentials: func(i int) cloudauth.Credentials { return slotCredsOf(fn, i) },
		})
		if err != nil {
			return nil, fmt.Errorf("start function %s: %w", fn, err)
		}
		c.fns[fn] = f
	}

	if opts.InstallCrashRate > 0 {
		c.installCrash = &crashAfter{fn: c.fns["install"], rate: opts.InstallCrashRate,
			rng: rand.New(rand.NewPCG(uint64(opts.Seed), 0x1c4a)), onCrash: c.fire("install_crashes_after_install_call")}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.bus = &ebsim.Bus{
		Target: c.fns["install"], Retry: opts.Retry, DLQ: c.deadLetter("bus"),
		OnDelivery: c.onDelivery("install"), Seed: opts.Seed, DuplicateRate: opts.DuplicateRate,
		Rules: opts.Rules, OnUnmatched: c.onUnmatched, OnDuplicate: c.fire("bus_duplicates"),
	}
	var poller ebsim.Target = c.fns["poller"]
	if opts.CrashRate > 0 {
		poller = &crashing{fn: c.fns["poller"], rate: opts.CrashRate, rng: rand.New(rand.NewPCG(uint64(opts.Seed), 0xc4a5)),
			onCrash: c.fire("poller_crashes")}
	}
	streams := []*ebsim.Stream{{
		Name: "job-queue", Queue: c.MNS, QueueName: QueueName, Region: opts.Region, AccountID: opts.AccountID,
		Target: poller, BatchCount: opts.BatchCount, BatchWindow: opts.BatchWindow, Base64Decode: true,
		Retry: opts.Retry, DLQ: c.deadLetter("stream"), Visibility: 60 * time.Second,
		OnDelivery: c.onDelivery("poller"), Seed: opts.Seed, DuplicateRate: opts.DuplicateRate,
		Concurrency: opts.StreamConcurrency, OnDuplicate: c.fire("stream_duplicates"),
	}, {
		Name: "install-queue", Queue: c.MNS, QueueName: InstallQueueName, Region: opts.Region, AccountID: opts.AccountID,
		Target: c.fns["install"], BatchCount: opts.BatchCount, BatchWindow: opts.BatchWindow, Base64Decode: true,
		Retry: opts.Retry, DLQ: c.deadLetter("install-stream"), Visibility: 60 * time.Second,
		OnDelivery: c.onDelivery("install"), Seed: opts.Seed + 1, DuplicateRate: opts.DuplicateRate,
		Concurrency: opts.StreamConcurrency, OnDuplicate: c.fire("stream_duplicates"),
	}}
	var running sync.WaitGroup
	for _, st := range streams {
		running.Add(1)
		go func() {
			defer running.Done()
			_ = st.Run(runCtx)
		}()
	}
	go func() {
		running.Wait()
		close(c.done)
	}()
	ok = true
	return c, nil
}

// functionPrefix starts each function's name under the FC emulator.
const functionPrefix = "hbr-autoinstall-"

func secs(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// Publish puts events on the default bus. Each element is one CloudEvent, or
// an array of them (each pushed separately, as the bus does).
func (c *Cloud) Publish(ctx context.Context, payloads ...[]byte) error {
	for _, p := range payloads {
		events := [][]byte{p}
		if t := bytes.TrimSpace(p); len(t) > 0 && t[0] == '[' {
			var arr []json.RawMessage
			if err := json.Unmarshal(t, &arr); err == nil {
				events = events[:0]
				for _, e := range arr {
					events = append(events, e)
				}
			}
		}
		for _, e := range events {
			c.announce(e)
			c.entry("event", "bus ← "+describeEvent(e))
			if err := c.bus.Publish(ctx, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// Ledger returns the local cloud's instance ledger, read through the real
// OSS SDK with the local cloud's own key pair: what `make status` reads in
// a deployed region.
func (c *Cloud) Ledger() (*ledger.Ledger, error) {
	st, err := ossstore.New(ossstore.Config{Endpoint: c.ossURL, Region: c.opts.Region, Bucket: LedgerBucket, Timeout: 10 * time.Second}, creds)
	if err != nil {
		return nil, err
	}
	return &ledger.Ledger{Store: st, Prefix: LedgerPrefix, Account: c.opts.AccountID}, nil
}

// Function returns a running function by name, for direct invocations.
func (c *Cloud) Function(name string) *fcsim.Function { return c.fns[name] }

// Wait returns once every accepted instance has an outcome and nothing is
// left in flight (bus deliveries, queued or delayed messages), or when ctx
// ends. It reports whether the system settled.
func (c *Cloud) Wait(ctx context.Context) bool {
	launched := make(chan struct{})
	go func() { c.launching.Wait(); close(launched) }()
	select {
	case <-launched:
	case <-ctx.Done():
		return false
	}
	if err := c.bus.Wait(ctx); err != nil {
		return false
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if c.settled() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

func (c *Cloud) settled() bool {
	for _, q := range []string{QueueName, InstallQueueName} {
		if visible, delayed, inflight := c.MNS.Depth(q); visible+delayed+inflight > 0 {
			return false
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// An instance is settled once any job recorded its outcome: a job that
	// joins another's install writes no record of its own.
	done := map[string]bool{}
	for k, recs := range c.records {
		if len(recs) > 0 {
			done[k.instance] = true
		}
	}
	for k := range c.accepted {
		if !done[k.instance] {
			return false
		}
	}
	return true
}

// Close stops the stream, the functions and the emulators.
func (c *Cloud) Close() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
	for _, f := range c.fns {
		_ = f.Close()
	}
	if c.MNS != nil {
		_ = c.MNS.Close()
	}
	if c.OSS != nil {
		_ = c.OSS.Close()
	}
	if c.ECS != nil {
		_ = c.ECS.Close()
	}
	if c.HBR != nil {
		_ = c.HBR.Close()
	}
}

func (c *Cloud) elapsed() time.Duration { return time.Since(c.start) }

func (c *Cloud) entry(kind, text string) {
	if c.opts.OnEntry != nil {
		c.opts.OnEntry(Entry{At: c.elapsed(), Kind: kind, Text: text})
	}
}

func (c *Cloud) onHBRCall(call hbrsim.Call) {
	text := "hbr." + call.Action
	switch call.Action {
	case "InstallBackupClients":
		text += " " + call.Params["InstanceIds"]
	case "DescribeTask":
		text += " " + call.Params["TaskId"]
	}
	switch {
	case call.Code != "" && call.Status >= 300:
		text += fmt.Sprintf(" → %d %s", call.Status, call.Code)
		c.mu.Lock()
		c.rejected["hbr."+call.Code]++
		c.mu.Unlock()
	case call.Action == "InstallBackupClients" && call.TaskID != "":
		text += " → task " + call.TaskID
	}
	if call.Action == "InstallBackupClients" {
		var ids []string
		if json.Unmarshal([]byte(call.Params["InstanceIds"]), &ids) == nil {
			c.mu.Lock()
			c.installSlots += len(ids)
			c.mu.Unlock()
		}
		if call.TaskID != "" && call.Principal == "install" && c.installCrash != nil {
			c.installCrash.maybe(slotOf("install", call.Params["AccessKeyId"]))
		}
	}
	c.entry("hbr", text)
}

func (c *Cloud) onECSCall(call ecssim.Call) {
	text := "ecs." + call.Action
	switch call.Action {
	case "TagResources":
		text += fmt.Sprintf(" %s %s=%s", call.Params["ResourceId.1"], call.Params["Tag.1.Key"], call.Params["Tag.1.Value"])
	case "DescribeInstances":
		if st := call.Params["Status"]; st != "" {
			text += " Status=" + st
		}
	}
	if call.Code != "" && call.Status >= 300 {
		text += fmt.Sprintf(" → %d %s", call.Status, call.Code)
		c.mu.Lock()
		c.rejected["ecs."+call.Code]++
		c.mu.Unlock()
	}
	c.entry("ecs", text)
}

func (c *Cloud) onSend(m mnssim.Message) {
	switch m.Queue {
	case QueueName, InstallQueueName:
		delay := m.VisibleAt.Sub(m.EnqueueTime).Round(time.Second)
		c.entry("mns", fmt.Sprintf("mns.SendMessage %s → %s (delay %s)", describeBody(m.Body), m.Queue, delay))
	case DLQName:
		// A letter a function sent itself (the platform's own are noted by
		// deadLetter): everything that reaches the queue is reported.
		if m.Principal == "" {
			return
		}
		var dl struct{ Source, Reason, Body, BodyBase64 string }
		raw, err := decodeBase64(m.Body)
		if err != nil || json.Unmarshal(raw, &dl) != nil || dl.Source == "" {
			dl.Source, dl.Reason, dl.Body = m.Principal, "unreadable dead letter", string(raw)
		}
		c.mu.Lock()
		c.deadLetters = append(c.deadLetters, DeadLetter{Source: dl.Source, Reason: clip(dl.Reason, 300), Body: clip(dl.Body+dl.BodyBase64, 300)})
		c.mu.Unlock()
		c.entry("dlq", fmt.Sprintf("%s dead-lettered: %s", dl.Source, clip(dl.Reason, 200)))
	}
}

func (c *Cloud) onDelivery(fn string) func(ebsim.Delivery) {
	return func(d ebsim.Delivery) {
		c.mu.Lock()
		c.pushes[fn]++
		c.mu.Unlock()
		status := "ok"
		switch {
		case d.Err != nil:
			status = "push failed: " + d.Err.Error()
		case d.Result.Err != nil:
			status = "function error: " + clip(d.Result.Err.Type+": "+d.Result.Err.Message, 200)
			c.addError(fmt.Sprintf("%s: %s", fn, clip(d.Result.Err.Message, 300)))
		}
		c.entry("invoke", fmt.Sprintf("%s invoked (attempt %d, %s): %s", fn, d.Attempt, d.Source, status))
	}
}

func (c *Cloud) deadLetter(source string) ebsim.DeadLetter {
	return func(_ context.Context, payload []byte, lastErr string) {
		c.mu.Lock()
		c.deadLetters = append(c.deadLetters, DeadLetter{Source: source, Reason: clip(lastErr, 300), Body: clip(string(payload), 300)})
		c.mu.Unlock()
		_, _ = c.MNS.Send(DLQName, string(payload), 0, 8)
		c.entry("dlq", fmt.Sprintf("%s dead-lettered after retries: %s", source, clip(lastErr, 200)))
	}
}

// fire returns a hook counting a fault of the kind.
func (c *Cloud) fire(kind string) func() {
	return func() {
		c.mu.Lock()
		c.fired[kind]++
		c.mu.Unlock()
	}
}

func (c *Cloud) addError(s string) {
	c.mu.Lock()
	c.errors = append(c.errors, s)
	c.mu.Unlock()
}

// onOutput reads the functions' JSON log lines.
func (c *Cloud) onOutput(function string, _ int, line []byte) {
	if c.opts.OnOutput != nil {
		c.opts.OnOutput(strings.TrimPrefix(function, functionPrefix), line)
	}
	if len(line) == 0 || line[0] != '{' {
		return
	}
	// Most lines are neither acceptances, outcomes nor errors: skip them
	// before decoding (a 10 000-instance launch writes hundreds of
	// thousands of lines).
	if !bytes.Contains(line, []byte(`"msg":"accepted"`)) && !bytes.Contains(line, []byte(`"msg":"outcome"`)) &&
		!bytes.Contains(line, []byte(`"level":"ERROR"`)) {
		return
	}
	var l struct {
		Level      string `json:"level"`
		Msg        string `json:"msg"`
		Error      string `json:"error"`
		JobID      string `json:"jobId"`
		InstanceID string `json:"instanceId"`
		Region     string `json:"region"`
		Trigger    string `json:"trigger"`
	}
	if json.Unmarshal(line, &l) != nil {
		return
	}
	switch {
	case l.Msg == "accepted":
		c.mu.Lock()
		k := key{l.JobID, l.InstanceID}
		if _, ok := c.accepted[k]; !ok {
			c.accepted[k] = acceptance{region: l.Region, trigger: l.Trigger, at: time.Now()}
		}
		c.mu.Unlock()
	case l.Msg == "outcome":
		var r Record
		if json.Unmarshal(line, &r) != nil {
			return
		}
		r.At = time.Now()
		c.mu.Lock()
		k := key{r.JobID, r.InstanceID}
		c.records[k] = append(c.records[k], r)
		c.arrivals = append(c.arrivals, r)
		c.mu.Unlock()
		c.entry("outcome", fmt.Sprintf("%s %s %s (%s)", r.InstanceID, r.Outcome, r.Code, r.Reason))
	case l.Level == "ERROR":
		c.addError(fmt.Sprintf("%s: %s: %s", function, l.Msg, clip(l.Error, 300)))
		c.entry("error", fmt.Sprintf("%s: %s: %s", function, l.Msg, clip(l.Error, 200)))
	}
}

// crashAfter kills a function's process right after some of its calls
// return: the process dies between a call and what it meant to do next.
// Only the process that made the call dies, as when Function Compute loses
// one instance; the invocations on the others go on.
type crashAfter struct {
	fn      *fcsim.Function
	rate    float64
	onCrash func()
	mu      sync.Mutex
	rng     *rand.Rand
}

// maybe kills, at the configured rate, the process of instance slot slot
// (-1: a call not made by one of the function's slots, never killed).
func (c *crashAfter) maybe(slot int) {
	if slot < 0 {
		return
	}
	c.mu.Lock()
	crash := c.rng.Float64() < c.rate
	c.mu.Unlock()
	if crash && c.fn.Kill(slot) {
		c.onCrash()
	}
}

// crashing kills the poller's process during some invocations, the way an
// out-of-memory kill or a crash in a goroutine would: only the process that
// took the invocation dies.
type crashing struct {
	fn      *fcsim.Function
	rate    float64
	onCrash func()
	mu      sync.Mutex
	rng     *rand.Rand
}

func (c *crashing) Invoke(ctx context.Context, payload []byte, opts fcsim.InvokeOptions) (fcsim.Result, error) {
	c.mu.Lock()
	crash := c.rng.Float64() < c.rate
	delay := time.Duration(c.rng.IntN(5)) * time.Millisecond
	c.mu.Unlock()
	opts.Crash, opts.CrashAfter = crash, delay
	res, err := c.fn.Invoke(ctx, payload, opts)
	if crash && err == nil && res.Err != nil && res.Err.Type == fcsim.ErrorTypeInstanceCrashed {
		c.onCrash()
	}
	return res, err
}

func describeEvent(e []byte) string {
	var ev struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	if json.Unmarshal(e, &ev) != nil || ev.Type == "" {
		return fmt.Sprintf("%d bytes (not a CloudEvent)", len(e))
	}
	return ev.Type + " " + clip(ev.ID, 40)
}

func describeEventType(e []byte) string {
	var ev struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(e, &ev)
	return ev.Type
}

func describeBody(b64 string) string {
	dec, err := decodeBase64(b64)
	if err != nil {
		return "(undecodable body)"
	}
	var m struct {
		Kind      string            `json:"kind"`
		TaskID    string            `json:"taskId"`
		PollCount int               `json:"pollCount"`
		Instances []json.RawMessage `json:"instances"`
	}
	if json.Unmarshal(dec, &m) != nil {
		return "(not a job message)"
	}
	if m.Kind == "poll" {
		return fmt.Sprintf("poll %s #%d [%d instances]", m.TaskID, m.PollCount+1, len(m.Instances))
	}
	return fmt.Sprintf("%s [%d instances]", m.Kind, len(m.Instances))
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// sortedKeys returns the keys of a map in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
