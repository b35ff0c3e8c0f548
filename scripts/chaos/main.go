// Command chaos runs the burst of `make bench` again with faults — throttling
// storms, 5 % HBR server errors, MNS send failures, duplicate deliveries of
// events and messages, poller processes killed mid-batch, tasks that expire,
// are cancelled or hang past the deadline — and checks that nothing is lost
// (see package shared/bench). `make chaos` runs it; `-json` prints the JSON
// document instead of the table, `-out FILE` writes it to a file as well.
//
// Exit status: 0 when every accepted instance reached exactly one kind of
// outcome and no task was polled past its deadline; 1 otherwise or when the
// run could not start; 2 on bad flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/bench"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	jsonOut := fs.Bool("json", false, "print the JSON document on stdout instead of the table")
	out := fs.String("out", "", "also write the JSON document to this file")
	quick := fs.Bool("quick", false, "smaller run: 200 instances")
	seed := fs.Int64("seed", 1, "seed of the scenario and of fault injection")
	scale := fs.Float64("scale", 30, "speed-up: every real-cloud delay is divided by this")
	instances := fs.Int("instances", 0, "instances in the burst (default 1000, 200 with -quick)")
	coalesce := fs.Duration("coalesce", 0, "INSTALL_COALESCE_DELAY (real-cloud); 0 installs at once")
	batch := fs.Int("batch", 5, "poller trigger's CountBasedWindow (messages per invocation), as s.yaml deploys it")
	window := fs.Duration("batch-window", 2*time.Second, "poller trigger's TimeBasedWindow (real-cloud), as s.yaml deploys it")
	maxInstances := fs.Int("max-instances", 4, "processes per function (Function Compute scales out)")
	timeout := fs.Duration("timeout", 4*time.Minute, "bound of the run; what has no outcome by then is lost")
	faults := bench.DefaultFaults()
	fs.Float64Var(&faults.HBRServerErrors, "server-errors", faults.HBRServerErrors, "share of HBR calls answered 503")
	fs.Float64Var(&faults.HBRThrottle, "throttle", faults.HBRThrottle, "share of HBR calls throttled outside storms")
	fs.Float64Var(&faults.StormSeconds, "storm", faults.StormSeconds, "length of each throttling storm (local seconds; 0: none)")
	fs.Float64Var(&faults.StormEverySeconds, "storm-every", faults.StormEverySeconds, "period of throttling storms (local seconds)")
	fs.Float64Var(&faults.MNSSendFail, "mns-fail", faults.MNSSendFail, "share of MNS sends that fail with a 500")
	fs.Float64Var(&faults.Duplicate, "dup", faults.Duplicate, "share of events and messages delivered twice")
	fs.Float64Var(&faults.Crash, "crash", faults.Crash, "share of poller invocations whose processes are killed")
	binDir := fs.String("bin", "", "directory with prebuilt <fn>/main binaries (default: build them)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./scripts/chaos [flags]\n\nThe burst through the local cloud, with faults; fails on any loss.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *scale < 1 || faults.StormSeconds < 0 || (faults.StormSeconds > 0 && faults.StormEverySeconds <= faults.StormSeconds) {
		fmt.Fprintln(stderr, "chaos: -scale must be at least 1 and -storm-every longer than -storm")
		return 2
	}
	root, err := localcloud.ModuleRoot(".")
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 2
	}
	rt, err := bench.RealTiming()
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 2
	}
	sc := bench.DefaultScenario()
	if *quick {
		sc = bench.QuickScenario()
	}
	if *instances > 0 {
		sc = sc.WithInstances(*instances)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	bins := map[string]string{}
	if *binDir != "" {
		for _, fn := range localcloud.Functions {
			bins[fn] = filepath.Join(*binDir, fn, "main")
		}
	} else {
		tmp, err := os.MkdirTemp("", "hbr-chaos-")
		if err != nil {
			fmt.Fprintln(stderr, "chaos:", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		fmt.Fprintln(stderr, "chaos: building the functions (make build flags)")
		if bins, err = bench.Build(ctx, root, tmp); err != nil {
			fmt.Fprintln(stderr, "chaos:", err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "chaos: %d instances with faults, at most %s\n", sc.Instances, *timeout)
	res, err := bench.RunChaos(ctx, bench.ChaosConfig{
		Binaries: bins, Scenario: bench.ChaosScenario(sc), Scale: bench.Scale(*scale), Real: rt,
		Coalesce: *coalesce, Batch: *batch, BatchWindow: *window, MaxInstances: *maxInstances, Seed: *seed, Timeout: *timeout, Faults: faults,
	})
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	res.Command = "make chaos"
	if len(args) > 0 {
		res.Command += " ARGS='" + strings.Join(args, " ") + "'"
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	if *out != "" {
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, "chaos:", err)
			return 1
		}
	}
	if *jsonOut {
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		res.PrintTable(stdout)
	}
	if !res.Pass {
		return 1
	}
	return 0
}
