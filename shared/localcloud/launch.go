package localcloud

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
)

// Event types of the launch world. A RunInstances record reaches the bus
// under one of three ActionTrail types, depending on who launched: an API
// call, the console, or a cloud service such as Auto Scaling.
const (
	TypeStateChange   = "ecs:Instance:StateChange"
	TypeHeartbeat     = "ecs:CloudAssistant:FirstHeartbeat"
	TypeApiCall       = "ecs:ActionTrail:ApiCall"
	TypeConsole       = "ecs:ActionTrail:ConsoleOperation"
	TypeServiceEvent  = "ecs:ActionTrail:AliyunServiceEvent"
	defaultSpeedup    = 20.0
	defaultSingle     = 0.5
	defaultMaxBatch   = 100
	defaultLaunchSpan = 5 * time.Minute
)

// LaunchOptions describe a launch world: how ECS announces new instances.
// Durations are in real-cloud terms; Speedup shrinks them for a local run.
type LaunchOptions struct {
	// Instances in all (at least 1).
	Instances int
	// Seed makes the world repeatable.
	Seed int64
	// Speedup is how many times faster than the real cloud the world runs:
	// every real delay is divided by it (default 20, so a launch's 150 s
	// at most from RunInstances to heartbeat takes 7.5 s).
	Speedup float64
	// SingleShare is the share of launches that start one instance
	// (default 0.5); the others start batches of 2..MaxBatch (default 100).
	SingleShare float64
	MaxBatch    int
	// Span is the real-time window over which launches start (default 5
	// min).
	Span time.Duration
	// DuplicateRate is the share of events published twice (EventBridge's
	// at-least-once delivery), on top of Options.DuplicateRate.
	DuplicateRate float64
	// ForeignClients is the share of instances, for each status of
	// ForeignStatuses, on which another installer creates a backup client
	// inside the launch window, 2–10 s after the launch (see
	// ForeignClient); each instance gets at most one.
	ForeignClients float64
	// Region and AccountID default to cn-hangzhou and 1234567890123456.
	Region, AccountID string
}

// LaunchedInstance is one instance of a world, with its timeline as offsets
// from the world's start, in local time.
type LaunchedInstance struct {
	ID string
	// Launched is the RunInstances call (t0), Running its Running event,
	// Heartbeat Cloud Assistant's first heartbeat: ready from then on.
	Launched, Running, Heartbeat time.Duration
}

// LaunchEvent is one event of a world: At is its offset from the world's
// start, in local time.
type LaunchEvent struct {
	// At is when the event is delivered; Happened is when it happened (its
	// "time" field): the same for both deliveries of a duplicated event.
	At, Happened time.Duration
	Type         string
	// EventID is the CloudEvent id; a duplicate keeps it.
	EventID string
	IDs     []string
	// Duplicate marks the second delivery of an event.
	Duplicate bool
}

// ForeignStatuses are the statuses of the clients other installers create
// in a world (LaunchOptions.ForeignClients): a working client, one being
// installed that becomes ACTIVATED 60–180 s later, one whose install
// failed, one being upgraded that settles (ACTIVATED) 30–120 s later, and
// one an operator stopped.
var ForeignStatuses = []string{hbrsim.ClientActivated, hbrsim.ClientInstalling, hbrsim.ClientInstallFailed,
	hbrsim.ClientUpgrading, hbrsim.ClientStopped}

// ForeignClient is a backup client another installer creates on an
// instance of a world while the world runs.
type ForeignClient struct {
	ID string
	// At is when the client appears, as an offset from the world's start
	// (local time).
	At     time.Duration
	Status string
	// Then, when set, is the status the client reaches After it appeared
	// (local time).
	Then  string
	After time.Duration
}

// World is a generated launch world (see NewWorld).
type World struct {
	Options   LaunchOptions
	Instances []LaunchedInstance
	// Events are sorted by At.
	Events []LaunchEvent
	// Clients are the clients other installers create, sorted by At.
	Clients []ForeignClient
}

// NewWorld generates launches: each instance is announced by an ActionTrail
// RunInstances record at its launch's t0 (one record per launch listing
// every instance, its type a mix of ApiCall, ConsoleOperation and
// AliyunServiceEvent), a StateChange Running event 20–90 s later, and
// Cloud Assistant's FirstHeartbeat 10–60 s after that; a share of events is
// delivered twice.
func NewWorld(o LaunchOptions) (World, error) {
	if o.Instances < 1 {
		return World{}, fmt.Errorf("launch world: %d instances, want at least 1", o.Instances)
	}
	if o.Speedup <= 0 {
		o.Speedup = defaultSpeedup
	}
	if o.SingleShare == 0 {
		o.SingleShare = defaultSingle
	}
	if o.MaxBatch <= 1 {
		o.MaxBatch = defaultMaxBatch
	}
	if o.Span <= 0 {
		o.Span = defaultLaunchSpan
	}
	if o.Region == "" {
		o.Region = "cn-hangzhou"
	}
	if o.AccountID == "" {
		o.AccountID = "1234567890123456"
	}
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x1a0c4))
	local := func(real time.Duration) time.Duration { return time.Duration(float64(real) / o.Speedup) }
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo)+1)) }
	types := []string{TypeApiCall, TypeConsole, TypeServiceEvent}
	w := World{Options: o}
	left, n := o.Instances, 0
	for launch := 0; left > 0; launch++ {
		size := 1
		if rng.Float64() >= o.SingleShare {
			size = 2 + rng.IntN(o.MaxBatch-1)
		}
		size = min(size, left)
		left -= size
		t0 := local(between(0, o.Span))
		var ids []string
		for i := 0; i < size; i++ {
			id := fmt.Sprintf("i-launch%03dn%05d", launch, n)
			n++
			ids = append(ids, id)
			in := LaunchedInstance{ID: id, Launched: t0}
			in.Running = t0 + local(between(20*time.Second, 90*time.Second))
			in.Heartbeat = in.Running + local(between(10*time.Second, 60*time.Second))
			w.Instances = append(w.Instances, in)
			w.Events = append(w.Events,
				LaunchEvent{At: in.Running, Happened: in.Running, Type: TypeStateChange, EventID: fmt.Sprintf("ev-running-%s", id), IDs: []string{id}},
				LaunchEvent{At: in.Heartbeat, Happened: in.Heartbeat, Type: TypeHeartbeat, EventID: fmt.Sprintf("ev-heartbeat-%s", id), IDs: []string{id}})
		}
		w.Events = append(w.Events, LaunchEvent{At: t0, Happened: t0, Type: types[rng.IntN(len(types))],
			EventID: fmt.Sprintf("ev-runinstances-%03d", launch), IDs: ids})
	}
	var dups []LaunchEvent
	for _, e := range w.Events {
		if rng.Float64() < o.DuplicateRate {
			d := e
			d.Duplicate = true
			d.At += local(between(0, 5*time.Second)) // delivered later; it happened when the first did
			dups = append(dups, d)
		}
	}
	w.Events = append(w.Events, dups...)
	sort.SliceStable(w.Events, func(i, j int) bool { return w.Events[i].At < w.Events[j].At })
	w.Clients = foreignClients(w.Instances, o, local)
	return w, nil
}

// foreignClients picks, with a generator of its own (a world without them
// stays the same), the instances other installers put a client on.
func foreignClients(ins []LaunchedInstance, o LaunchOptions, local func(time.Duration) time.Duration) []ForeignClient {
	n := int(math.Round(o.ForeignClients * float64(len(ins))))
	if o.ForeignClients > 0 {
		n = max(n, 1)
	}
	n = min(n, len(ins)/len(ForeignStatuses))
	if n == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0xf0c1))
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo)+1)) }
	pick := rng.Perm(len(ins))
	var out []ForeignClient
	for k, status := range ForeignStatuses {
		for _, i := range pick[k*n : (k+1)*n] {
			fc := ForeignClient{ID: ins[i].ID, At: ins[i].Launched + local(between(2*time.Second, 10*time.Second)), Status: status}
			switch status {
			case hbrsim.ClientInstalling:
				fc.Then, fc.After = hbrsim.ClientActivated, local(between(60*time.Second, 180*time.Second))
			case hbrsim.ClientUpgrading:
				fc.Then, fc.After = hbrsim.ClientActivated, local(between(30*time.Second, 120*time.Second))
			}
			out = append(out, fc)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// IDs returns every instance ID of the world, sorted.
func (w World) IDs() []string {
	out := make([]string, 0, len(w.Instances))
	for _, in := range w.Instances {
		out = append(out, in.ID)
	}
	sort.Strings(out)
	return out
}

// Payload renders an event as the bus delivers it, its time fields derived
// from start (the world's start on the run's own clock).
func (w World) Payload(e LaunchEvent, start time.Time) []byte {
	at := start.Add(e.Happened)
	cst := at.In(time.FixedZone("CST", 8*3600)).Format(time.RFC3339)
	utc := at.UTC().Format(time.RFC3339)
	published := at.UTC().Format("2006-01-02T15:04:05.000Z")
	region, account := w.Options.Region, w.Options.AccountID
	ev := map[string]any{
		"id": e.EventID, "source": "acs.ecs", "specversion": "1.0", "type": e.Type,
		"aliyunaccountid": account, "aliyunpublishtime": published, "aliyuneventbusname": "default", "aliyunregionid": region,
	}
	switch e.Type {
	case TypeStateChange:
		id := e.IDs[0]
		ev["subject"] = fmt.Sprintf("acs:ecs:%s:%s:instance/%s", region, account, id)
		ev["time"] = cst
		ev["datacontenttype"] = "application/json;charset=utf-8"
		ev["data"] = map[string]any{"resourceId": id, "resourceType": "ALIYUN::ECS::Instance", "state": "Running"}
	case TypeHeartbeat:
		id := e.IDs[0]
		ev["subject"] = fmt.Sprintf("acs:ecs:%s:%s:instance/%s", region, account, id)
		ev["time"] = cst
		ev["data"] = map[string]any{"instanceId": id, "regionId": region}
	default:
		kind := map[string]string{TypeApiCall: "ApiCall", TypeConsole: "ConsoleOperation", TypeServiceEvent: "AliyunServiceEvent"}[e.Type]
		ev["subject"] = fmt.Sprintf("acs:ecs:%s:%s:instance", region, account)
		ev["time"] = utc
		ev["data"] = map[string]any{
			"acsRegion": region, "apiVersion": "2014-05-26", "eventCategory": "Management",
			"eventId": e.EventID, "eventName": "RunInstances", "eventRW": "Write",
			"eventSource": "ecs-" + region + "-inner.aliyuncs.com", "eventTime": utc, "eventType": kind, "eventVersion": "1",
			"referencedResources": map[string]any{"ACS::ECS::Instance": e.IDs},
			"responseElements": map[string]any{
				"RequestId":      e.EventID,
				"InstanceIdSets": map[string]any{"InstanceIdSet": e.IDs},
			},
		}
	}
	b, _ := json.Marshal(ev) // maps of strings and string slices always encode
	return b
}
