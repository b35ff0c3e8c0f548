// Package ecsevent turns the EventBridge events the install function receives
// into the instances it must act on.
//
// Accepted shapes: one CloudEvent object, a JSON array of them, or a JSON array
// of JSON strings each holding one. Recognised events:
//
//   - ecs:Instance:StateChange with state Running (state and resource id flat
//     in data or nested in data.content); other states are ignored;
//   - ecs:CloudAssistant:FirstHeartbeat (the agent is up);
//   - ActionTrail records of RunInstances, whatever launched the instances:
//     "<svc>:ActionTrail:ApiCall" (API and SDK calls), ":ActionTrail:ConsoleOperation"
//     (the ECS console) and ":ActionTrail:AliyunServiceEvent" (a cloud service such as
//     Auto Scaling), with the new ids in data.referencedResources["ACS::ECS::Instance"]
//     and/or data.responseElements.InstanceIdSets.InstanceIdSet; those instances are
//     not running yet ([Candidate.Ready] is false).
//
// Time fields are kept as strings: their formats vary in the wild. Parse
// returns an Invalid error (package fault) only when the payload as a whole is
// unusable; a bad event inside a good array is reported in [Batch.Rejected]
// and does not affect the others.
package ecsevent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
)

// Limits on untrusted input.
const (
	MaxPayloadBytes    = 4 << 20
	MaxEvents          = 1000
	MaxRunInstancesIDs = 100
	typeStateChange    = "ecs:Instance:StateChange"
	typeFirstHeartbeat = "ecs:CloudAssistant:FirstHeartbeat"
)

// ActionTrailTypes are the suffixes of the event types EventBridge gives
// ActionTrail records (write events only): API calls, console operations and
// calls made by another cloud service on the account's behalf. A RunInstances
// record may arrive as any of them; s.yaml's filter pattern lists the same
// three (a test keeps them in step).
var ActionTrailTypes = []string{":ActionTrail:ApiCall", ":ActionTrail:ConsoleOperation", ":ActionTrail:AliyunServiceEvent"}

func isActionTrail(typ string) bool {
	for _, suf := range ActionTrailTypes {
		if strings.HasSuffix(typ, suf) {
			return true
		}
	}
	return false
}

// Trigger names what announced an instance.
type Trigger string

const (
	// TriggerRunning is an ecs:Instance:StateChange to Running.
	TriggerRunning Trigger = "running"
	// TriggerHeartbeat is Cloud Assistant's first heartbeat.
	TriggerHeartbeat Trigger = "first-heartbeat"
	// TriggerRunInstances is an ActionTrail RunInstances call.
	TriggerRunInstances Trigger = "run-instances"
)

// Event is the CloudEvents envelope as EventBridge delivers it. Times stay
// strings.
type Event struct {
	ID           string          `json:"id"`
	Source       string          `json:"source"`
	SpecVersion  string          `json:"specversion"`
	Type         string          `json:"type"`
	Subject      string          `json:"subject"`
	Time         string          `json:"time"`
	AccountID    string          `json:"aliyunaccountid"`
	PublishTime  string          `json:"aliyunpublishtime"`
	RegionID     string          `json:"aliyunregionid"`
	EventBusName string          `json:"aliyuneventbusname"`
	Data         json.RawMessage `json:"data"`
}

// Candidate is an instance an event announced.
type Candidate struct {
	InstanceID string
	Region     string
	EventID    string
	Source     string
	Trigger    Trigger
	// Ready is false when the instance cannot be running yet (RunInstances):
	// it goes straight to the readiness-retry path.
	Ready bool
	// EventTime is when the event happened, if its "time" could be read
	// (formats vary; zero when not).
	EventTime time.Time
}

// Ignored is a well-formed event the install function does not act on.
type Ignored struct {
	EventID, Type, Reason string
	// Routine marks an event that is expected and says nothing worth an
	// operator's attention (a first heartbeat that names no instance): a
	// debug line is enough.
	Routine bool
}

// reasonHeartbeatNoInstance is why a first heartbeat without an instance
// id is ignored. The Running state change of the same instance (and the
// RunInstances record) carry its id, so nothing is lost; rejecting it
// instead would fail the invocation, cycle through the retries and land
// in the dead-letter queue as noise.
const reasonHeartbeatNoInstance = "first heartbeat names no instance (the instance's Running event covers it)"

// Rejected is a malformed event (or part of one).
type Rejected struct {
	Index   int
	EventID string
	Err     error
}

// Batch is the result of parsing one payload.
type Batch struct {
	Candidates []Candidate
	Ignored    []Ignored
	Rejected   []Rejected
	// Events is the number of events in the payload.
	Events int
}

// Parse decodes payload. defaultRegion (FC_REGION) is used when an event names
// no region. Duplicate events (same source and id) and duplicate instances in
// one payload are kept once.
func Parse(payload []byte, defaultRegion string) (Batch, error) {
	const op = "ecsevent.Parse"
	if len(payload) > MaxPayloadBytes {
		return Batch{}, fault.Invalidf(op, "payload is %d bytes, over the %d-byte limit", len(payload), MaxPayloadBytes)
	}
	raws, err := splitEvents(payload)
	if err != nil {
		return Batch{}, fault.Wrap(op, fault.Invalid, "", err)
	}
	var b Batch
	b.Events = len(raws)
	seenEvent := map[string]bool{}
	seenInstance := map[string]int{}
	for i, raw := range raws {
		ev, err := decodeEvent(raw)
		if err != nil {
			b.Rejected = append(b.Rejected, Rejected{Index: i, Err: fault.Wrap(op, fault.Invalid, "", fmt.Errorf("event %d: %w", i, err))})
			continue
		}
		key := ev.Source + "\x00" + ev.ID
		if seenEvent[key] {
			b.Ignored = append(b.Ignored, Ignored{EventID: ev.ID, Type: ev.Type, Reason: "duplicate of an earlier event in the same payload"})
			continue
		}
		seenEvent[key] = true
		cands, ign, rej := classify(ev, defaultRegion)
		at := ParseTime(ev.Time)
		for i := range cands {
			cands[i].EventTime = at
		}
		if ign != "" {
			b.Ignored = append(b.Ignored, Ignored{EventID: ev.ID, Type: ev.Type, Reason: ign, Routine: ign == reasonHeartbeatNoInstance})
		}
		for _, e := range rej {
			b.Rejected = append(b.Rejected, Rejected{Index: i, EventID: job.TrimOrigin(ev.ID), Err: fault.Wrap(op, fault.Invalid, "", fmt.Errorf("event %d (%s): %w", i, job.TrimOrigin(ev.ID), e))})
		}
		for _, c := range cands {
			if j, dup := seenInstance[c.InstanceID]; dup {
				// Prefer the candidate that says the instance is ready.
				if c.Ready && !b.Candidates[j].Ready {
					b.Candidates[j] = c
				}
				continue
			}
			seenInstance[c.InstanceID] = len(b.Candidates)
			b.Candidates = append(b.Candidates, c)
		}
	}
	return b, nil
}

// splitEvents returns the raw events of a payload: an object, an array of
// objects, or an array of JSON strings holding objects.
func splitEvents(payload []byte) ([]json.RawMessage, error) {
	p := bytes.TrimSpace(payload)
	if len(p) == 0 {
		return nil, fmt.Errorf("empty payload")
	}
	switch p[0] {
	case '{':
		if !json.Valid(p) {
			return nil, fmt.Errorf("payload is not valid JSON")
		}
		return []json.RawMessage{p}, nil
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(p, &items); err != nil {
			return nil, fmt.Errorf("payload is not a valid JSON array: %v", err)
		}
		if len(items) == 0 {
			return nil, fmt.Errorf("payload is an empty array")
		}
		if len(items) > MaxEvents {
			return nil, fmt.Errorf("payload holds %d events, more than %d", len(items), MaxEvents)
		}
		return items, nil
	default:
		return nil, fmt.Errorf("payload is neither a JSON object nor an array (starts with %q)", p[:1])
	}
}

func decodeEvent(raw json.RawMessage) (Event, error) {
	r := bytes.TrimSpace(raw)
	if len(r) > 0 && r[0] == '"' {
		var s string
		if err := json.Unmarshal(r, &s); err != nil {
			return Event{}, fmt.Errorf("not a JSON string: %v", err)
		}
		r = bytes.TrimSpace([]byte(s))
	}
	if len(r) == 0 || r[0] != '{' {
		return Event{}, fmt.Errorf("not a JSON object")
	}
	var ev Event
	if err := json.Unmarshal(r, &ev); err != nil {
		return Event{}, fmt.Errorf("not a CloudEvent: %v", err)
	}
	if ev.Type == "" {
		return Event{}, fmt.Errorf("no \"type\"")
	}
	if ev.ID == "" {
		return Event{}, fmt.Errorf("no \"id\" (needed to make the job id)")
	}
	if len(ev.ID) > 256 {
		return Event{}, fmt.Errorf("\"id\" is %d bytes, longer than 256", len(ev.ID))
	}
	return ev, nil
}

// classify returns the candidates of one event, or why it is ignored, or what
// is wrong with it.
func classify(ev Event, defaultRegion string) (cands []Candidate, ignored string, rejected []error) {
	switch {
	case ev.Type == typeStateChange:
		var d stateData
		if err := json.Unmarshal(ev.Data, &d); err != nil || len(ev.Data) == 0 {
			return nil, "", []error{fmt.Errorf("data is not a state-change object")}
		}
		state := first(d.State, d.Content.State)
		if state == "" {
			return nil, "", []error{fmt.Errorf("no state in data or data.content")}
		}
		if !strings.EqualFold(state, "Running") {
			return nil, fmt.Sprintf("state %s is not Running", clip(state)), nil
		}
		c, err := candidate(ev, defaultRegion, TriggerRunning, true,
			d.Content.ResourceID, d.ResourceID, d.InstanceID, d.Content.InstanceID, ev.Subject)
		if err != nil {
			return nil, "", []error{err}
		}
		return []Candidate{c}, "", nil

	case ev.Type == typeFirstHeartbeat:
		// Its data schema is not documented: read what the other ECS
		// events use, and ignore (not reject) one that names no instance.
		var d stateData
		if len(ev.Data) > 0 {
			_ = json.Unmarshal(ev.Data, &d) // not an object: no id in it
		}
		refs := []string{d.InstanceID, d.Content.InstanceID, d.ResourceID, d.Content.ResourceID, ev.Subject}
		if !namesInstance(refs) {
			return nil, reasonHeartbeatNoInstance, nil
		}
		c, err := candidate(ev, defaultRegion, TriggerHeartbeat, true, refs...)
		if err != nil {
			return nil, "", []error{err}
		}
		return []Candidate{c}, "", nil

	case isActionTrail(ev.Type):
		var d trailData
		if err := json.Unmarshal(ev.Data, &d); err != nil || len(ev.Data) == 0 {
			return nil, "", []error{fmt.Errorf("data is not an ActionTrail record")}
		}
		if d.EventName != "RunInstances" {
			return nil, fmt.Sprintf("API call %s is not RunInstances", clip(d.EventName)), nil
		}
		if d.ErrorCode != "" {
			return nil, fmt.Sprintf("RunInstances failed with %s", clip(d.ErrorCode)), nil
		}
		ids := d.instanceIDs()
		if len(ids) == 0 {
			return nil, "", []error{fmt.Errorf("RunInstances event names no instance in data.referencedResources[\"ACS::ECS::Instance\"] or data.responseElements.InstanceIdSets.InstanceIdSet")}
		}
		if len(ids) > MaxRunInstancesIDs {
			rejected = append(rejected, fmt.Errorf("%d instance ids, more than %d: the extra ones are dropped", len(ids), MaxRunInstancesIDs))
			ids = ids[:MaxRunInstancesIDs]
		}
		region := first(ev.RegionID, d.AcsRegion, defaultRegion)
		if !job.ValidRegion(region) {
			return nil, "", []error{fmt.Errorf("invalid region %q", clip(region))}
		}
		for _, id := range ids {
			if !job.ValidInstanceID(id) {
				rejected = append(rejected, fmt.Errorf("invalid instance id %q", clip(id)))
				continue
			}
			cands = append(cands, Candidate{InstanceID: id, Region: region, EventID: ev.ID, Source: ev.Source, Trigger: TriggerRunInstances})
		}
		return cands, "", rejected
	}
	return nil, fmt.Sprintf("event type %s is not handled", clip(ev.Type)), nil
}

type stateData struct {
	State      string `json:"state"`
	ResourceID string `json:"resourceId"`
	InstanceID string `json:"instanceId"`
	Content    struct {
		State      string `json:"state"`
		ResourceID string `json:"resourceId"`
		InstanceID string `json:"instanceId"`
	} `json:"content"`
}

type trailData struct {
	EventName  string              `json:"eventName"`
	AcsRegion  string              `json:"acsRegion"`
	ErrorCode  string              `json:"errorCode"`
	Referenced map[string][]string `json:"referencedResources"`
	Response   struct {
		InstanceIDSets struct {
			InstanceIDSet []string `json:"InstanceIdSet"`
		} `json:"InstanceIdSets"`
	} `json:"responseElements"`
}

// instanceIDs is the union, in order and without repeats, of the ids a
// RunInstances record names: real records carry them in both places, some
// in only one.
func (d trailData) instanceIDs() []string {
	var ids []string
	seen := map[string]bool{}
	for _, id := range append(d.Referenced["ACS::ECS::Instance"], d.Response.InstanceIDSets.InstanceIDSet...) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// candidate picks the first non-empty id reference (a bare id or an ARN such
// as acs:ecs:cn-hangzhou:123:instance/i-xxx) and the region.
func candidate(ev Event, defaultRegion string, t Trigger, ready bool, refs ...string) (Candidate, error) {
	var id, arnRegion string
	for _, ref := range refs {
		if ref == "" {
			continue
		}
		id, arnRegion = splitRef(ref)
		if id != "" {
			break
		}
	}
	if id == "" {
		return Candidate{}, fmt.Errorf("no instance id in data or subject")
	}
	if !job.ValidInstanceID(id) {
		return Candidate{}, fmt.Errorf("invalid instance id %q", clip(id))
	}
	region := first(ev.RegionID, arnRegion, defaultRegion)
	if !job.ValidRegion(region) {
		return Candidate{}, fmt.Errorf("invalid region %q", clip(region))
	}
	return Candidate{InstanceID: id, Region: region, EventID: ev.ID, Source: ev.Source, Trigger: t, Ready: ready}, nil
}

// namesInstance reports whether any reference yields an instance id (valid
// or not: a malformed one is still rejected by candidate).
func namesInstance(refs []string) bool {
	for _, ref := range refs {
		if ref == "" {
			continue
		}
		if id, _ := splitRef(ref); id != "" {
			return true
		}
	}
	return false
}

// splitRef returns the instance id and region of a reference: a bare id, or an
// ARN acs:ecs:<region>:<account>:instance/<id>.
func splitRef(ref string) (id, region string) {
	if !strings.HasPrefix(ref, "acs:") {
		return ref, ""
	}
	parts := strings.SplitN(ref, ":", 5)
	if len(parts) < 5 {
		return "", ""
	}
	res := parts[4]
	i := strings.LastIndex(res, "/")
	if i < 0 || !strings.HasPrefix(res, "instance/") {
		return "", ""
	}
	return res[i+1:], parts[2]
}

// timeLayouts are the "time" formats seen in EventBridge events.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.000Z0700", "2006-01-02T15:04:05Z0700", "20060102T150405.000Z0700"}

// ParseTime reads an event time leniently; it returns the zero time for
// anything it does not recognise rather than failing the event.
func ParseTime(s string) time.Time {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, strings.TrimSpace(s)); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
