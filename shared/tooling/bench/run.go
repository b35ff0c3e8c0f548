package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ebsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
)

// runConfig is one burst through the local cloud.
type runConfig struct {
	binaries map[string]string
	plan     Plan
	timing   localcloud.Timing
	env      map[string]string
	// batch and window are the event stream's CountBasedWindow and
	// TimeBasedWindow (local); maxInstances bounds each function's
	// processes and streamConcurrency each stream's batches in flight.
	batch, maxInstances, streamConcurrency int
	window                                 time.Duration
	// apiLatency is every emulated API call's round trip (local).
	apiLatency time.Duration
	// retry is the platform's retry of failed pushes (local).
	retry   ebsim.RetryPolicy
	seed    int64
	timeout time.Duration
	// Faults (chaos).
	hbrFaults hbrsim.Faults
	// storm, when positive, throttles almost every HBR call for storm out
	// of every stormEvery.
	storm, stormEvery time.Duration
	mnsFaults         mnssim.Faults
	dup, crash        float64
	installCrash      float64
	// soak, when set, drives the chaos run's own faults (an MNS outage,
	// restarts after a failure) and finishes chains with reconcile sweeps.
	soak *soak
}

// hbrCall is one request the HBR emulator answered (rejected ones too).
type hbrCall struct {
	at     time.Time
	action string
	taskID string
}

// sent is one job message stored by the MNS emulator.
type sent struct{ msg job.Message }

// observation is everything a run leaves behind.
type observation struct {
	report  localcloud.Report
	records []localcloud.Record
	tasks   []hbrsim.TaskInfo
	calls   []hbrCall
	sends   []sent
	// peakRSS is the largest VmHWM seen per function, in KiB.
	peakRSS map[string]int64
	// processes counts the processes each function started (Function
	// Compute instances: one starts only when every other is busy, so it
	// is the function's peak concurrency).
	processes map[string]int
	cpu       CPU
	settled   bool
	elapsed   time.Duration
	// plan is the run's plan; start when its events began.
	plan  Plan
	start time.Time
	// What the chaos run's driver did (soak): its report, the first
	// failure of each restart instance and when its restart went out.
	soak      SoakReport
	failed    map[string]localcloud.Record
	restarted map[string]time.Time
	// ledger is what the ledger holds of each instance at the end.
	ledger map[string]ledgerState
}

// observer collects HBR calls and job messages through the emulators' hooks.
type observer struct {
	mu    sync.Mutex
	calls []hbrCall
	sends []sent
}

func (o *observer) onCall(c hbrsim.Call) {
	o.mu.Lock()
	o.calls = append(o.calls, hbrCall{at: c.Time, action: c.Action, taskID: c.TaskID})
	o.mu.Unlock()
}

func (o *observer) onSend(m mnssim.Message) {
	if m.Queue != localcloud.QueueName {
		return
	}
	msg, err := job.Decode([]byte(m.Body))
	if err != nil {
		return // not a job message (the functions only send valid ones)
	}
	o.mu.Lock()
	o.sends = append(o.sends, sent{msg: msg})
	o.mu.Unlock()
}

// run starts a local cloud, publishes the plan's events on schedule, waits
// until every instance has an outcome (or the timeout), and collects what
// happened.
func run(ctx context.Context, rc runConfig) (observation, error) {
	t := rc.timing
	meter := newCPUMeter(time.Second)
	cloud, err := localcloud.Start(ctx, localcloud.Options{
		Binaries: rc.binaries, Timing: &t, Instances: rc.plan.Behaviors,
		Behavior:  hbrsim.Behavior{InstallDuration: t.FirstPoll},
		HBRFaults: rc.hbrFaults, MNSFaults: rc.mnsFaults, DuplicateRate: rc.dup, CrashRate: rc.crash,
		InstallCrashRate: rc.installCrash, APILatency: rc.apiLatency, Retry: rc.retry,
		BatchCount: rc.batch, BatchWindow: rc.window, MaxInstances: rc.maxInstances, StreamConcurrency: rc.streamConcurrency,
		FunctionTimeout: 60 * time.Second, Seed: rc.seed, Env: rc.env,
	})
	if err != nil {
		return observation{}, fmt.Errorf("start the local cloud: %w", err)
	}
	closed := false
	defer func() {
		if !closed {
			cloud.Close()
		}
	}()
	obs := &observer{}
	cloud.HBR.OnCall(obs.onCall)
	cloud.MNS.OnSend(obs.onSend)

	runCtx, cancel := context.WithTimeout(ctx, rc.timeout)
	defer cancel()
	bg, stopBG := context.WithCancel(runCtx)
	var wg sync.WaitGroup
	rss := &rssSampler{peak: map[string]int64{}}
	wg.Add(2)
	go func() {
		defer wg.Done()
		rss.loop(bg, cloud)
	}()
	go func() {
		defer wg.Done()
		meter.loop(bg, cloud)
	}()
	if rc.storm > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			storms(bg, cloud.HBR, rc.hbrFaults, rc.storm, rc.stormEvery)
		}()
	}

	start := time.Now()
	if rc.soak != nil {
		rc.soak.begin(bg, &wg, cloud, rc, start)
	}
	if rc.plan.World != nil {
		cloud.Launch(runCtx, *rc.plan.World, false)
	} else {
		err = publish(runCtx, cloud, rc.plan.Arrivals, start)
	}
	settled := false
	if err == nil {
		if rc.soak != nil {
			settled = rc.soak.await(runCtx, cloud)
		} else {
			settled = cloud.Wait(runCtx)
		}
	}
	elapsed := time.Since(start)
	stopBG()
	wg.Wait()
	if err != nil {
		return observation{}, err
	}
	rss.sample(cloud) // the processes are still alive: Close comes later
	meter.sample(cloud)

	o := observation{
		report: cloud.Report(), records: cloud.Records(), tasks: cloud.HBR.Tasks(),
		peakRSS: rss.peaks(), settled: settled, elapsed: elapsed, processes: map[string]int{},
		plan: rc.plan, start: start,
	}
	o.report.Settled = settled
	for _, fn := range localcloud.Functions {
		o.processes[fn] = len(cloud.Function(fn).Instances())
	}
	obs.mu.Lock()
	o.calls, o.sends = obs.calls, obs.sends
	obs.mu.Unlock()
	if rc.soak != nil {
		rc.soak.end(cloud, &o)
		o.ledger = ledgerStates(cloud)
	}
	cloud.Close()
	closed = true
	o.cpu = meter.result()
	return o, nil
}

// publish puts each arrival on the bus at its time, first telling the HBR
// emulator that its instances exist (their readiness delay runs from there).
func publish(ctx context.Context, cloud *localcloud.Cloud, arrivals []Arrival, start time.Time) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for _, a := range arrivals {
		if wait := time.Until(start.Add(a.At)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return fmt.Errorf("publish: %w", ctx.Err())
			case <-timer.C:
			}
		}
		now := time.Now()
		for _, id := range a.IDs {
			cloud.HBR.InstanceSeen(id, now)
		}
		if err := cloud.Publish(ctx, a.Payload); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	return nil
}

// storms throttles (nearly) every HBR call for storm out of every period,
// keeping the base faults otherwise.
func storms(ctx context.Context, h *hbrsim.Server, base hbrsim.Faults, storm, period time.Duration) {
	stormy := base
	stormy.ThrottleRate = 0.9
	t := time.NewTimer(period - storm)
	defer t.Stop()
	defer h.SetFaults(base)
	on := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		on = !on
		if on {
			h.SetFaults(stormy)
			t.Reset(storm)
		} else {
			h.SetFaults(base)
			t.Reset(period - storm)
		}
	}
}

// rssSampler keeps the peak resident set (VmHWM) of each function's
// processes, sampled while they run so replaced processes count too.
type rssSampler struct {
	mu   sync.Mutex
	peak map[string]int64
}

func (r *rssSampler) loop(ctx context.Context, cloud *localcloud.Cloud) {
	// VmHWM is a high-water mark: a second between samples only misses the
	// peak of a process killed within it. (At 250 ms the sampler cost an
	// eighth of this process's CPU in a run of 10000 instances.)
	every(ctx, time.Second, func() { r.sample(cloud) })
}

func (r *rssSampler) sample(cloud *localcloud.Cloud) {
	for _, fn := range localcloud.Functions {
		for _, pid := range cloud.PIDs(fn) {
			kb, err := vmHWM(pid)
			if err != nil {
				continue // the process ended between listing and reading
			}
			r.mu.Lock()
			r.peak[fn] = max(r.peak[fn], kb)
			r.mu.Unlock()
		}
	}
}

func (r *rssSampler) peaks() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int64{}
	for k, v := range r.peak {
		out[k] = v
	}
	return out
}

// vmHWM reads a process's peak resident set size in KiB from
// /proc/<pid>/status.
func vmHWM(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
