package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ebsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
)

// Scale is how many times faster than the real cloud a local run goes: every
// real-cloud delay is divided by it.
type Scale float64

// Delay scales a function delay. MNS delays are whole seconds, so it rounds
// up to a whole second, and never goes below one.
func (s Scale) Delay(real time.Duration) time.Duration {
	secs := math.Ceil(real.Seconds()/float64(s) - 1e-9)
	return time.Duration(max(secs, 1)) * time.Second
}

// Span scales an emulated duration (a task's length, a readiness delay)
// exactly.
func (s Scale) Span(real time.Duration) time.Duration {
	return time.Duration(float64(real) / float64(s))
}

// Real converts a local duration back to real-cloud terms.
func (s Scale) Real(local time.Duration) time.Duration {
	return time.Duration(float64(local) * float64(s))
}

// BenchPolicy is the backup policy of make bench's binding run.
const BenchPolicy = "po-0000bench00000001"

// DefaultCoalesce is INSTALL_COALESCE_DELAY's default, from package config.
func DefaultCoalesce() time.Duration {
	d, err := time.ParseDuration(configDefault("INSTALL_COALESCE_DELAY"))
	if err != nil {
		return 0
	}
	return d
}

// configDefault is a variable's documented default in package config ("" if
// it has none).
func configDefault(name string) string {
	for _, v := range config.Variables() {
		if v.Name == name {
			return v.Default
		}
	}
	return ""
}

// Retry is the platform's retry of a failed push, scaled: s.yaml's
// BACKOFF_RETRY (3 retries, 10–20 s apart) for the event streams, which the
// local cloud's bus applies to events too.
func (s Scale) Retry() ebsim.RetryPolicy {
	return ebsim.RetryPolicy{Retries: 3, MinDelay: s.Span(10 * time.Second), MaxDelay: s.Span(20 * time.Second)}
}

// RealTiming is the functions' default timing, read from package config's
// defaults so that it follows the product.
func RealTiming() (localcloud.Timing, error) {
	c, err := config.Load(func(k string) string {
		switch k {
		case "FC_REGION":
			return "cn-hangzhou"
		case "FC_ACCOUNT_ID":
			return "1234567890123456"
		case "QUEUE_NAME":
			return localcloud.QueueName
		case "MNS_ENDPOINT":
			return "http://127.0.0.1:1"
		}
		return ""
	})
	if err != nil {
		return localcloud.Timing{}, fmt.Errorf("default configuration: %w", err)
	}
	return localcloud.Timing{
		FirstPoll: c.FirstPollDelay, Interval: c.PollInterval,
		ReadinessDelay: c.ReadinessDelay, ReadinessStep: c.ReadinessDelayStep, ReadinessTimeout: c.ReadinessTimeout,
		TaskTimeout: c.TaskTimeout, Margin: c.DeadlineMargin, RetryBase: c.RetryBaseDelay, RetryMax: c.RetryMaxDelay,
		MaxAttempts: c.MaxInstallAttempts,
	}, nil
}

// Timing scales every delay of a real-cloud timing with Delay.
func (s Scale) Timing(real localcloud.Timing) localcloud.Timing {
	return localcloud.Timing{
		FirstPoll: s.Delay(real.FirstPoll), Interval: s.Delay(real.Interval),
		ReadinessDelay: s.Delay(real.ReadinessDelay), ReadinessStep: s.Delay(real.ReadinessStep),
		ReadinessTimeout: s.Delay(real.ReadinessTimeout), TaskTimeout: s.Delay(real.TaskTimeout),
		Margin: s.Delay(real.Margin), RetryBase: s.Delay(real.RetryBase), RetryMax: s.Delay(real.RetryMax),
		MaxAttempts: real.MaxAttempts,
	}
}

// Scenario is a burst of new instances, in real-cloud terms.
type Scenario struct {
	// Instances in all; Bursts RunInstances events of BurstSize announce
	// some, individual Running events the rest.
	Instances, Bursts, BurstSize int
	// Arrival is the window over which events arrive, uniformly.
	Arrival time.Duration
	// NotReady is the share of instances whose Cloud Assistant is not up at
	// first; each becomes ready ReadyMin..ReadyMax after it is announced.
	NotReady           float64
	ReadyMin, ReadyMax time.Duration
	// TaskMin..TaskMax is how long one instance's install takes.
	TaskMin, TaskMax time.Duration
	// World plays the launch world (localcloud.NewWorld) instead of the
	// burst: launches over Arrival, SingleShare of them single instances,
	// the rest batches of up to 100; each instance announced by
	// RunInstances, Running and FirstHeartbeat, Duplicate of the events
	// delivered twice; ready from the heartbeat (Bursts, BurstSize,
	// NotReady and ReadyMin/Max are ignored).
	World       bool
	SingleShare float64
	Duplicate   float64
	// Faults (chaos): shares of instances whose first install fails, that
	// are gone, whose task expires or is cancelled, or whose install hangs
	// past the job deadline.
	FailOnce, Gone, Expire, Cancel, Hung float64
	// ForeignClients is the share of instances, per status of
	// localcloud.ForeignStatuses, on which another installer creates a
	// client inside the launch window (the world's); they install
	// normally otherwise. Restarts is the share of instances whose installs
	// fail every attempt and that are announced again after their failure
	// (Plan.Restarts; the chaos run publishes the events).
	ForeignClients, Restarts float64
}

// FailForever is the FailInstalls of an instance whose installs all fail.
const FailForever = 1 << 20

// DefaultScenario is the launch world (issue 9): 1000 instances launched
// over five minutes, half the launches single instances and the rest
// batches of up to 100, every instance announced three ways, 5 % of the
// events delivered twice; installs of one to three minutes. BurstScenario
// is the older one-event-per-instance burst.
func DefaultScenario() Scenario {
	sc := BurstScenario()
	sc.World, sc.SingleShare, sc.Duplicate = true, 0.5, 0.05
	return sc
}

// BurstScenario is the first benchmark's burst: 1000 instances, 400
// announced one by one and 600 by six RunInstances calls, over five
// minutes; 30 % not ready for one to two minutes; installs of one to three
// minutes.
func BurstScenario() Scenario {
	return Scenario{
		Instances: 1000, Bursts: 6, BurstSize: 100, Arrival: 5 * time.Minute,
		NotReady: 0.3, ReadyMin: time.Minute, ReadyMax: 2 * time.Minute,
		TaskMin: time.Minute, TaskMax: 3 * time.Minute,
	}
}

// QuickScenario is DefaultScenario with 200 instances (bursts of 20).
func QuickScenario() Scenario { return DefaultScenario().WithInstances(200) }

// WithInstances resizes the scenario to n instances in the same proportions:
// 60 % announced by the bursts (each at most 100), 40 % one by one.
func (sc Scenario) WithInstances(n int) Scenario {
	sc.Instances = n
	if sc.Bursts > 0 {
		sc.BurstSize = min(100, n*6/10/sc.Bursts)
	}
	if sc.BurstSize == 0 {
		sc.Bursts = 0
	}
	return sc
}

// Arrival is one event of a plan.
type Arrival struct {
	// At is the offset from the start of the run (local time).
	At      time.Duration
	Payload []byte
	IDs     []string
}

// Plan is a scenario made concrete for one seed and scale.
type Plan struct {
	Arrivals []Arrival
	// Behaviors are the emulator's per-instance behaviours (local time).
	Behaviors map[string]hbrsim.Behavior
	// IDs lists every instance, sorted.
	IDs []string
	// World, when set, replaces Arrivals: the run plays it.
	World *localcloud.World
	// Restarts lists the instances whose installs all fail and that the
	// chaos run announces again after their failure, sorted.
	Restarts []string
}

// Plan draws the events, their arrival times and each instance's behaviour.
// hung is the install time of hung instances (local time); it should exceed
// the job deadline.
func (sc Scenario) Plan(s Scale, seed int64, hung time.Duration) (Plan, error) {
	if sc.World {
		return sc.worldPlan(s, seed, hung)
	}
	burstTotal := sc.Bursts * sc.BurstSize
	if sc.Instances <= 0 || burstTotal > sc.Instances || sc.BurstSize > 100 || sc.Bursts < 0 {
		return Plan{}, fmt.Errorf("scenario: %d instances with %d bursts of %d: want 0 < bursts × size ≤ instances and size ≤ 100", sc.Instances, sc.Bursts, sc.BurstSize)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0xbe9c4))
	at := func() time.Duration { return time.Duration(rng.Int64N(int64(s.Span(sc.Arrival)) + 1)) }
	var p Plan
	for i := 0; i < sc.Instances-burstTotal; i++ {
		id := fmt.Sprintf("i-solo%05d", i)
		p.Arrivals = append(p.Arrivals, Arrival{At: at(), Payload: runningEvent(id), IDs: []string{id}})
		p.IDs = append(p.IDs, id)
	}
	for b := 0; b < sc.Bursts; b++ {
		var ids []string
		for i := 0; i < sc.BurstSize; i++ {
			ids = append(ids, fmt.Sprintf("i-burst%02dn%04d", b, i))
		}
		payload, err := runInstancesEvent(fmt.Sprintf("ev-bench-burst-%02d", b), ids)
		if err != nil {
			return Plan{}, err
		}
		p.Arrivals = append(p.Arrivals, Arrival{At: at(), Payload: payload, IDs: ids})
		p.IDs = append(p.IDs, ids...)
	}
	sort.SliceStable(p.Arrivals, func(i, j int) bool { return p.Arrivals[i].At < p.Arrivals[j].At })
	sort.Strings(p.IDs)

	mix := localcloud.Mix{
		FailOnce: sc.FailOnce, Gone: sc.Gone, Expire: sc.Expire, Cancel: sc.Cancel,
		TaskMin: s.Span(sc.TaskMin), TaskMax: s.Span(sc.TaskMax),
	}
	p.Behaviors = mix.Behaviors(p.IDs, seed)
	var healthy []string
	for _, id := range p.IDs {
		b := p.Behaviors[id]
		if rng.Float64() < sc.NotReady {
			b.ReadyAfter = s.Span(sc.ReadyMin) + time.Duration(rng.Int64N(int64(s.Span(sc.ReadyMax-sc.ReadyMin))+1))
		}
		p.Behaviors[id] = b
		if !b.Gone && b.TaskEnd == "" {
			healthy = append(healthy, id)
		}
	}
	sc.hang(p, healthy, rng, hung)
	return p, nil
}

// worldPlan is Plan for the launch world. Each instance's ReadyAfter is its
// heartbeat's delay after its launch, which the naive model reads; the local
// cloud also gives HBR and ECS the heartbeat as an absolute ReadyAt.
func (sc Scenario) worldPlan(s Scale, seed int64, hung time.Duration) (Plan, error) {
	w, err := localcloud.NewWorld(localcloud.LaunchOptions{
		Instances: sc.Instances, Seed: seed, Speedup: float64(s), SingleShare: sc.SingleShare,
		Span: sc.Arrival, DuplicateRate: sc.Duplicate, ForeignClients: sc.ForeignClients,
	})
	if err != nil {
		return Plan{}, fmt.Errorf("scenario: %w", err)
	}
	p := Plan{World: &w, IDs: w.IDs()}
	mix := localcloud.Mix{
		FailOnce: sc.FailOnce, Gone: sc.Gone, Expire: sc.Expire, Cancel: sc.Cancel,
		TaskMin: s.Span(sc.TaskMin), TaskMax: s.Span(sc.TaskMax),
	}
	p.Behaviors = mix.Behaviors(p.IDs, seed)
	// An instance another installer puts a client on installs normally
	// otherwise, so that what it ends as says how its client was judged.
	foreign := map[string]bool{}
	for _, fc := range w.Clients {
		foreign[fc.ID] = true
	}
	var healthy []string
	for _, in := range w.Instances {
		b := p.Behaviors[in.ID]
		b.ReadyAfter = in.Heartbeat - in.Launched
		if foreign[in.ID] {
			b.Gone, b.TaskEnd, b.FailInstalls = false, "", 0
		}
		p.Behaviors[in.ID] = b
		if !b.Gone && b.TaskEnd == "" && !foreign[in.ID] {
			healthy = append(healthy, in.ID)
		}
	}
	sort.Strings(healthy)
	rest := sc.hang(p, healthy, rand.New(rand.NewPCG(uint64(seed), 0xbe9c5)), hung)
	if n := share(sc.Restarts, sc.Instances, len(rest)); n > 0 {
		rng := rand.New(rand.NewPCG(uint64(seed), 0xbe9c6))
		rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
		for _, id := range rest[:n] {
			b := p.Behaviors[id]
			b.FailInstalls = FailForever
			p.Behaviors[id] = b
			p.Restarts = append(p.Restarts, id)
		}
		sort.Strings(p.Restarts)
	}
	return p, nil
}

// share is the number of instances a share of total stands for: at least
// one when the share is positive, at most limit.
func share(x float64, total, limit int) int {
	if x <= 0 {
		return 0
	}
	return min(max(int(math.Round(x*float64(total))), 1), limit)
}

// hang gives exactly the share of hung installs (at least one when asked
// for) an install time of hung, so that every run exercises the job
// deadline. It returns the healthy instances left, sorted.
func (sc Scenario) hang(p Plan, healthy []string, rng *rand.Rand, hung time.Duration) []string {
	n := share(sc.Hung, sc.Instances, len(healthy))
	if n == 0 {
		return healthy
	}
	rng.Shuffle(len(healthy), func(i, j int) { healthy[i], healthy[j] = healthy[j], healthy[i] })
	for _, id := range healthy[:n] {
		b := p.Behaviors[id]
		b.InstallDuration = hung
		p.Behaviors[id] = b
	}
	rest := append([]string(nil), healthy[n:]...)
	sort.Strings(rest)
	return rest
}

func runningEvent(id string) []byte {
	return []byte(fmt.Sprintf(`{"id":"ev-bench-%s","source":"acs.ecs","specversion":"1.0","type":"ecs:Instance:StateChange",`+
		`"subject":"acs:ecs:cn-hangzhou:1234567890123456:instance/%s","time":"2026-11-27T13:04:41+08:00",`+
		`"aliyunregionid":"cn-hangzhou","data":{"resourceId":"%s","resourceType":"ALIYUN::ECS::Instance","state":"Running"}}`, id, id, id))
}

func runInstancesEvent(eventID string, ids []string) ([]byte, error) {
	b, err := json.Marshal(map[string]any{
		"id": eventID, "source": "acs.ecs", "specversion": "1.0", "type": "ecs:ActionTrail:ApiCall",
		"aliyunregionid": "cn-hangzhou",
		"data": map[string]any{"eventName": "RunInstances", "acsRegion": "cn-hangzhou",
			"referencedResources": map[string]any{"ACS::ECS::Instance": ids}},
	})
	if err != nil {
		return nil, fmt.Errorf("encode RunInstances event: %w", err)
	}
	return b, nil
}
