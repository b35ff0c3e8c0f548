package bench

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
)

// CPU says how busy the machine was during a run, so that a figure the
// machine itself limited can be told from one the system limited: a run
// whose own demand sits at the machine's ceiling measures the machine.
type CPU struct {
	// OwnMean, OwnP90 and OwnMax describe the run's own demand — this
	// process and the functions' processes — as a share of all the
	// machine's CPUs (0..1), in samples of SampleSeconds each.
	OwnMean float64 `json:"own_mean"`
	OwnP90  float64 `json:"own_p90"`
	OwnMax  float64 `json:"own_max"`
	// BusyMean, BusyP90 and BusyMax are the machine's busy share, whoever
	// used it (other work on the machine included); SaturatedShare is the
	// share of samples at 0.9 or more.
	BusyMean       float64 `json:"busy_mean"`
	BusyP90        float64 `json:"busy_p90"`
	BusyMax        float64 `json:"busy_max"`
	SaturatedShare float64 `json:"saturated_share"`
	SampleSeconds  float64 `json:"sample_seconds"`
	// Seconds is the CPU time used, per function (its processes, read from
	// /proc while they ran) and "harness" (this process: the emulators,
	// the event bus and streams, the FC emulator and the measurement).
	Seconds map[string]float64 `json:"cpu_seconds"`
}

// machineTicks reads the aggregate line of /proc/stat: busy and total
// ticks since boot.
func machineTicks() (busy, total uint64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, false
	}
	var idle uint64
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return total - idle, total, true
}

// processTicks reads a process's user + system CPU ticks from
// /proc/<pid>/stat (fields 14 and 15, counted after the command's closing
// parenthesis, which may hold spaces).
func processTicks(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is the state (field 3); utime is field 14, stime 15.
	if len(fields) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseUint(fields[11], 10, 64)
	s, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return u + s, true
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// selfCPU is this process's user + system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter samples the machine's busy share and the run's own CPU time:
// this process's and that of the functions' processes.
type cpuMeter struct {
	every time.Duration
	self  time.Duration
	cpus  float64

	mu       sync.Mutex
	machine  []float64
	own      []float64
	lastBusy uint64
	lastAll  uint64
	lastOwn  uint64
	lastAt   time.Time
	// ticks holds the last reading of each function process, by pid.
	ticks map[int]procTicks
}

type procTicks struct {
	fn    string
	ticks uint64
}

func newCPUMeter(every time.Duration) *cpuMeter {
	m := &cpuMeter{every: every, self: selfCPU(), cpus: float64(runtime.NumCPU()), ticks: map[int]procTicks{}, lastAt: time.Now()}
	m.lastBusy, m.lastAll, _ = machineTicks()
	m.lastOwn = m.ownTicks()
	return m
}

// loop samples every m.every until ctx ends.
func (m *cpuMeter) loop(ctx context.Context, cloud *localcloud.Cloud) {
	every(ctx, m.every, func() { m.sample(cloud) })
}

// every calls fn each period until ctx ends: the samplers' and watchers'
// loop.
func every(ctx context.Context, period time.Duration, fn func()) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fn()
		}
	}
}

// sample reads the functions' processes, then the machine and the run's
// own share since the last sample.
func (m *cpuMeter) sample(cloud *localcloud.Cloud) {
	m.processes(cloud)
	busy, all, ok := machineTicks()
	own := m.ownTicks()
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.lastAt) < m.every/2 {
		return // too short a sample to say a share (the one taken at the end)
	}
	if ok && all > m.lastAll {
		m.machine = append(m.machine, float64(busy-m.lastBusy)/float64(all-m.lastAll))
		m.lastBusy, m.lastAll = busy, all
	}
	if own >= m.lastOwn {
		m.own = append(m.own, float64(own-m.lastOwn)/clockTicks/now.Sub(m.lastAt).Seconds()/m.cpus)
	}
	m.lastOwn, m.lastAt = own, now
}

// ownTicks is the run's CPU time so far, in clock ticks: this process and
// the last reading of every function process.
func (m *cpuMeter) ownTicks() uint64 {
	t := uint64((selfCPU() - m.self) * clockTicks / time.Second)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.ticks {
		t += p.ticks
	}
	return t
}

// processes reads the CPU time of the cloud's function processes. A
// process's time is kept from its last reading, so one killed between two
// readings loses at most one interval.
func (m *cpuMeter) processes(cloud *localcloud.Cloud) {
	if cloud == nil {
		return
	}
	for _, fn := range localcloud.Functions {
		for _, pid := range cloud.PIDs(fn) {
			t, ok := processTicks(pid)
			if !ok {
				continue
			}
			m.mu.Lock()
			m.ticks[pid] = procTicks{fn: fn, ticks: t}
			m.mu.Unlock()
		}
	}
}

// result summarises the samples.
func (m *cpuMeter) result() CPU {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := CPU{SampleSeconds: m.every.Seconds(), Seconds: map[string]float64{}}
	for _, p := range m.ticks {
		c.Seconds[p.fn] += float64(p.ticks) / clockTicks
	}
	for k, v := range c.Seconds {
		c.Seconds[k] = round(v, 1)
	}
	c.Seconds["harness"] = round((selfCPU() - m.self).Seconds(), 1)
	c.OwnMean, c.OwnP90, c.OwnMax, _ = spread(m.own)
	var hot float64
	c.BusyMean, c.BusyP90, c.BusyMax, hot = spread(m.machine)
	c.SaturatedShare = hot
	return c
}

// spread is the mean, 90th percentile and maximum of a sample of shares,
// and the share of it at 0.9 or more.
func spread(xs []float64) (mean, p90, top, hot float64) {
	if len(xs) == 0 {
		return 0, 0, 0, 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	sum, n := 0.0, 0
	for _, v := range s {
		sum += v
		if v >= 0.9 {
			n++
		}
	}
	return round(sum/float64(len(s)), 3), round(s[min(len(s)-1, int(0.9*float64(len(s))))], 3),
		round(s[len(s)-1], 3), round(float64(n)/float64(len(s)), 3)
}
