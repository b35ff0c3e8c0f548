// Package bench measures the system the way `make bench` and `make chaos`
// report it: cold start and size of the compiled functions against a minimal
// Function Compute binary, the warm handler cost (Go benchmarks), and a burst
// of new instances pushed through the local cloud (package localcloud) with
// every real-cloud delay scaled down by one factor — once as a benchmark of
// economy and latency, beside a model of the naive one-instance-at-a-time
// policy, and once with faults injected as a soak that must lose nothing.
//
// Each figure is measured side by side in the same run, so ratios hold on a
// noisy machine. [Run] and [RunChaos] return documents ([Doc], [Chaos]) that
// encode to the JSON the scripts read; their PrintTable methods print them for
// people. scripts/bench and scripts/chaos only parse flags and call these.
//
// Errors are not classified (package fault): a measurement either runs or
// fails with a wrapped error naming the step (build, start, run) that failed.
package bench

import (
	"bufio"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Machine describes where a measurement ran.
type Machine struct {
	CPUs   int    `json:"nproc"`
	CPU    string `json:"cpu"`
	Go     string `json:"go"`
	GOOS   string `json:"goos"`
	GOARCH string `json:"goarch"`
}

// ThisMachine describes the current machine.
func ThisMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), CPU: "unknown", Go: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			m.CPU = strings.TrimSpace(v)
			break
		}
	}
	return m
}

// Goal is one figure checked against its goal.
type Goal struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	// Limit is the goal: Value must be at most Limit, or at least Limit
	// when AtLeast is set; with Low set too, between Low and Limit.
	Limit   float64 `json:"limit"`
	Low     float64 `json:"low,omitempty"`
	AtLeast bool    `json:"at_least,omitempty"`
	Unit    string  `json:"unit,omitempty"`
	Met     bool    `json:"met"`
	// Note says how the value was measured, or why a goal is missed.
	Note string `json:"note,omitempty"`
}

func goal(name string, value, limit float64, unit, note string) Goal {
	return Goal{Name: name, Value: round(value, 3), Limit: limit, Unit: unit, Met: value <= limit, Note: note}
}

// Percentiles summarises a sample of durations, in seconds.
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// percentiles uses the nearest-rank method; an empty sample is all zeros.
func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return round(s[min(max(i, 0), len(s)-1)].Seconds(), 3)
	}
	return Percentiles{N: len(s), P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), Max: round(s[len(s)-1].Seconds(), 3)}
}

// median of a non-empty sample; zero for an empty one.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round(a/b, 3)
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 2) }
