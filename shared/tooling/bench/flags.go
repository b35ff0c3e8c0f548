package bench

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"
)

// Flags are the command-line flags scripts/bench and scripts/chaos share:
// where the document goes, the burst scenario and the poller trigger's
// settings. [RegisterFlags] defines them; fs.Parse fills them in.
type Flags struct {
	// JSON prints the document on stdout instead of the tables (-json);
	// Out also writes it to this file (-out).
	JSON bool
	Out  string
	// Quick runs the smaller scenario (-quick); Instances, when positive,
	// overrides the scenario's instance count (-instances).
	Quick     bool
	Instances int
	// Burst runs the older one-event-per-instance burst instead of the
	// launch world (-burst).
	Burst bool
	Seed  int64
	// Scale divides every real-cloud delay (-scale).
	Scale float64
	// APILatency is every emulated API call's round trip in real-cloud
	// terms (-api-latency); the run divides it by Scale like every delay.
	APILatency time.Duration
	// Coalesce is INSTALL_COALESCE_DELAY in real-cloud terms (-coalesce).
	Coalesce time.Duration
	// Batch and BatchWindow are the poller trigger's CountBasedWindow and
	// TimeBasedWindow (-batch, -batch-window); MaxInstances bounds each
	// function's processes (-max-instances).
	Batch        int
	BatchWindow  time.Duration
	MaxInstances int
	// StreamConcurrency is how many batches each event stream has in
	// flight at once (-stream-concurrency; 0: as many as MaxInstances).
	StreamConcurrency int
	// Timeout bounds the run (-timeout).
	Timeout time.Duration
	// CPUProfile, when set, is where this process's CPU profile goes
	// (-cpuprofile): the local cloud's emulators, bus, streams and FC
	// emulator, not the functions (profile those with perf and unstripped
	// binaries, -bin).
	CPUProfile string
}

// FlagText is what scripts/bench and scripts/chaos say differently about the
// flags they share: help texts, and the defaults of -coalesce and -timeout.
type FlagText struct {
	JSON, Quick, Seed, Coalesce, MaxInstances, Timeout string
	CoalesceDefault, TimeoutDefault                    time.Duration
	// ScaleDefault is -scale's default; MaxInstancesDefault
	// -max-instances'.
	ScaleDefault        float64
	MaxInstancesDefault int
}

// DefaultAPILatency is -api-latency's default: a regional OpenAPI or OSS
// round trip from Function Compute, in real-cloud terms.
const DefaultAPILatency = 100 * time.Millisecond

// RegisterFlags defines the shared flags on fs, with the command's own help
// texts and defaults from t, and returns the value fs.Parse fills in.
func RegisterFlags(fs *flag.FlagSet, t FlagText) *Flags {
	f := &Flags{}
	fs.BoolVar(&f.JSON, "json", false, t.JSON)
	fs.StringVar(&f.Out, "out", "", "also write the JSON document to this file")
	fs.BoolVar(&f.Quick, "quick", false, t.Quick)
	fs.Int64Var(&f.Seed, "seed", 1, t.Seed)
	fs.BoolVar(&f.Burst, "burst", false, "the older scenario, one event per instance, instead of the launch world")
	fs.Float64Var(&f.Scale, "scale", t.ScaleDefault, "speed-up: every real-cloud delay is divided by this")
	fs.DurationVar(&f.APILatency, "api-latency", DefaultAPILatency, "round trip of every HBR, ECS, MNS and OSS call (real-cloud; divided by -scale like every delay)")
	fs.IntVar(&f.Instances, "instances", 0, "instances in the burst (default 1000, 200 with -quick)")
	fs.DurationVar(&f.Coalesce, "coalesce", t.CoalesceDefault, t.Coalesce)
	fs.IntVar(&f.Batch, "batch", 50, "poller trigger's CountBasedWindow (messages per invocation), as s.yaml deploys it")
	fs.DurationVar(&f.BatchWindow, "batch-window", 5*time.Second, "poller trigger's TimeBasedWindow (real-cloud), as s.yaml deploys it")
	fs.IntVar(&f.MaxInstances, "max-instances", t.MaxInstancesDefault, t.MaxInstances)
	fs.IntVar(&f.StreamConcurrency, "stream-concurrency", 0, "batches each event stream (install queue, job queue) has in flight at once; 0: as many as -max-instances")
	fs.DurationVar(&f.Timeout, "timeout", t.TimeoutDefault, t.Timeout)
	fs.StringVar(&f.CPUProfile, "cpuprofile", "", "write the CPU profile of this process (the emulators, event bus and streams, FC emulator; not the functions) to this file")
	return f
}

// StartProfile starts the CPU profile -cpuprofile asks for; stop ends it
// and closes the file (a no-op without the flag).
func (f *Flags) StartProfile() (stop func(), err error) {
	if f.CPUProfile == "" {
		return func() {}, nil
	}
	out, err := os.Create(f.CPUProfile)
	if err != nil {
		return func() {}, err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		out.Close()
		return func() {}, err
	}
	return func() {
		pprof.StopCPUProfile()
		out.Close()
	}, nil
}

// Scenario is the scenario the flags select: [DefaultScenario] or, with
// -quick, [QuickScenario], with -instances applied.
func (f *Flags) Scenario() Scenario {
	sc := DefaultScenario()
	if f.Quick {
		sc = QuickScenario()
	}
	if f.Instances > 0 {
		sc = sc.WithInstances(f.Instances)
	}
	if f.Burst {
		sc.World = false
	}
	return sc
}

// Output writes doc the way the commands report it: indented JSON to the
// -out file when set, then on w either the same JSON (-json) or the tables.
func (f *Flags) Output(w io.Writer, doc interface{ PrintTable(io.Writer) }) error {
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if f.Out != "" {
		if err := os.WriteFile(f.Out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if f.JSON {
		fmt.Fprintf(w, "%s\n", b)
	} else {
		doc.PrintTable(w)
	}
	return nil
}

// Parse parses args with fs, printing header before the flag list when help
// is asked for. ok is false when the command must stop, with status its exit
// status: 0 after -h, 2 on a bad flag.
func Parse(fs *flag.FlagSet, args []string, header string) (status int, ok bool) {
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), header)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// CommandLine is how a document names the run that made it: the make target,
// with its arguments as ARGS='...' when there are any.
func CommandLine(target string, args []string) string {
	if len(args) == 0 {
		return target
	}
	return target + " ARGS='" + strings.Join(args, " ") + "'"
}

// DefaultScale is make bench's -scale. The scaling table runs the launch
// world at 10000 instances: some 21000 events and 21500 invocations within
// its 7.5 minutes (real) of launches, every one a process handing JSON to
// emulators on this machine, whose CPU does not shrink with the delays. At
// 1:10 that took all of a 2-core machine (106 CPU-seconds in 79 s, the
// machine 90 % busy or more in 60 % of the seconds) and the Running →
// outcome p99 grew 1.6× over 1000 instances'; at 1:5 the run used 42 % of
// the machine on average (p90 81 %) and the p99 matched 1000 instances'
// (1.00×): the machine no longer sets the pace. Every run reports its CPU.
const DefaultScale = 5

// DefaultMaxInstances is -max-instances: enough processes per function
// that 10000 instances seldom wait for one (Function Compute scales out;
// the local cloud starts a process only when the others are busy, so 1000
// instances start about a dozen install processes and 10000 reach the 64).
// 128 processes with 16 batches in flight per stream measured no better at
// 10000 (p99 348 s against 320 s): more processes cost the 2-core machine
// more than the waits they save.
const DefaultMaxInstances = 64

// DefaultChaosScale is make chaos's -scale: 1000 instances at 1:10 take
// under 3 minutes with every fault, using at most a quarter of a 2-core
// machine (p90); with -instances 10000 the run is a soak, not a
// measurement, and 1:10 keeps its leases (192 s) and deadlines short.
const DefaultChaosScale = 10
