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
	// TimeBasedWindow (local); maxInstances bounds each function's processes.
	batch, maxInstances int
	window              time.Duration
	seed                int64
	timeout             time.Duration
	// Faults (chaos).
	hbrFaults hbrsim.Faults
	// storm, when positive, throttles almost every HBR call for storm out
	// of every stormEvery.
	storm, stormEvery time.Duration
	mnsFaults         mnssim.Faults
	dup, crash        float64
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
	settled bool
	elapsed time.Duration
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
	cloud, err := localcloud.Start(ctx, localcloud.Options{
		Binaries: rc.binaries, Timing: &t, Instances: rc.plan.Behaviors,
		Behavior:  hbrsim.Behavior{InstallDuration: t.FirstPoll},
		HBRFaults: rc.hbrFaults, MNSFaults: rc.mnsFaults, DuplicateRate: rc.dup, CrashRate: rc.crash,
		BatchCount: rc.batch, BatchWindow: rc.window, MaxInstances: rc.maxInstances, FunctionTimeout: 60 * time.Second,
		Seed: rc.seed, Env: rc.env,
	})
	if err != nil {
		return observation{}, fmt.Errorf("start the local cloud: %w", err)
	}
	defer cloud.Close()
	obs := &observer{}
	cloud.HBR.OnCall(obs.onCall)
	cloud.MNS.OnSend(obs.onSend)

	runCtx, cancel := context.WithTimeout(ctx, rc.timeout)
	defer cancel()
	bg, stopBG := context.WithCancel(runCtx)
	var wg sync.WaitGroup
	rss := &rssSampler{peak: map[string]int64{}}
	wg.Add(1)
	go func() {
		defer wg.Done()
		rss.loop(bg, cloud)
	}()
	if rc.storm > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			storms(bg, cloud.HBR, rc.hbrFaults, rc.storm, rc.stormEvery)
		}()
	}

	start := time.Now()
	if rc.plan.World != nil {
		cloud.Launch(runCtx, *rc.plan.World, false)
	} else {
		err = publish(runCtx, cloud, rc.plan.Arrivals, start)
	}
	settled := err == nil && cloud.Wait(runCtx)
	elapsed := time.Since(start)
	stopBG()
	wg.Wait()
	if err != nil {
		return observation{}, err
	}
	rss.sample(cloud) // the processes are still alive: Close comes later

	o := observation{
		report: cloud.Report(), records: cloud.Records(), tasks: cloud.HBR.Tasks(),
		peakRSS: rss.peaks(), settled: settled, elapsed: elapsed,
	}
	o.report.Settled = settled
	obs.mu.Lock()
	o.calls, o.sends = obs.calls, obs.sends
	obs.mu.Unlock()
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
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.sample(cloud)
		}
	}
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
