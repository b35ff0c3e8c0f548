package bench

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
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
	// Coalesce is INSTALL_COALESCE_DELAY in real-cloud terms (-coalesce).
	Coalesce time.Duration
	// Batch and BatchWindow are the poller trigger's CountBasedWindow and
	// TimeBasedWindow (-batch, -batch-window); MaxInstances bounds each
	// function's processes (-max-instances).
	Batch        int
	BatchWindow  time.Duration
	MaxInstances int
	// Timeout bounds the run (-timeout).
	Timeout time.Duration
}

// FlagText is what scripts/bench and scripts/chaos say differently about the
// flags they share: help texts, and the defaults of -coalesce and -timeout.
type FlagText struct {
	JSON, Quick, Seed, Coalesce, MaxInstances, Timeout string
	CoalesceDefault, TimeoutDefault                    time.Duration
}

// RegisterFlags defines the shared flags on fs, with the command's own help
// texts and defaults from t, and returns the value fs.Parse fills in.
func RegisterFlags(fs *flag.FlagSet, t FlagText) *Flags {
	f := &Flags{}
	fs.BoolVar(&f.JSON, "json", false, t.JSON)
	fs.StringVar(&f.Out, "out", "", "also write the JSON document to this file")
	fs.BoolVar(&f.Quick, "quick", false, t.Quick)
	fs.Int64Var(&f.Seed, "seed", 1, t.Seed)
	fs.BoolVar(&f.Burst, "burst", false, "the older scenario, one event per instance, instead of the launch world")
	fs.Float64Var(&f.Scale, "scale", 30, "speed-up: every real-cloud delay is divided by this")
	fs.IntVar(&f.Instances, "instances", 0, "instances in the burst (default 1000, 200 with -quick)")
	fs.DurationVar(&f.Coalesce, "coalesce", t.CoalesceDefault, t.Coalesce)
	fs.IntVar(&f.Batch, "batch", 50, "poller trigger's CountBasedWindow (messages per invocation), as s.yaml deploys it")
	fs.DurationVar(&f.BatchWindow, "batch-window", 5*time.Second, "poller trigger's TimeBasedWindow (real-cloud), as s.yaml deploys it")
	fs.IntVar(&f.MaxInstances, "max-instances", 4, t.MaxInstances)
	fs.DurationVar(&f.Timeout, "timeout", t.TimeoutDefault, t.Timeout)
	return f
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
