// Command bench measures cold start, binary size, warm handler cost and the
// launch world of 1000 new instances through the local cloud, beside a
// minimal Function Compute binary and the naive policy (see package
// shared/tooling/bench). `make bench` runs it; `make bench ARGS='-quick'`
// runs a smaller world; `make bench ARGS='-instances 10000'` measures the
// launch world at 1000 and at 10000 instances the same way and prints the
// scaling table; `-json` prints the JSON document instead of the tables, and
// `-out FILE` writes it to a file as well.
//
// Exit status: 0 when the measurement ran (goals missed are reported, not
// failed), 1 when it could not run or the burst lost instances, 2 on bad
// flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/tooling/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := bench.RegisterFlags(fs, bench.FlagText{
		JSON:            "print the JSON document on stdout instead of the tables",
		Quick:           "smaller run: 200 instances, 9 cold starts, short handler benchmarks",
		Seed:            "seed of the scenario",
		Coalesce:        "INSTALL_COALESCE_DELAY (real-cloud) of the second burst; 0 skips it",
		CoalesceDefault: 0,
		MaxInstances:    "processes per function in the bursts (Function Compute scales out; a process starts only when the others are busy)",
		Timeout:         "bound of each burst run of 1000 instances (a larger one gets proportionally more)",
		TimeoutDefault:  4 * time.Minute,
		// The scaling table compares 1000 and 10000 instances at one scale;
		// see bench.DefaultScale for why it is 10 and not 30.
		ScaleDefault:        bench.DefaultScale,
		MaxInstancesDefault: bench.DefaultMaxInstances,
	})
	coldRuns := fs.Int("cold-runs", 0, "cold starts per binary (default 21, 9 with -quick)")
	benchtime := fs.String("benchtime", "", "go test -benchtime of the handler benchmarks (default 1s, 200ms with -quick)")
	binDir := fs.String("bin", "", "directory with prebuilt <fn>/main binaries for the bursts, e.g. unstripped ones to profile with perf (sizes and cold starts always measure a fresh make-build-flags build)")
	skip := fs.String("skip", "", "comma-separated steps not to run, their goals left out: "+strings.Join(bench.Steps, ", "))
	if status, ok := bench.Parse(fs, args, "Usage: go run ./scripts/bench [flags]\n\nMeasures the functions and a burst through the local cloud.\n\nFlags:\n"); !ok {
		return status
	}
	if f.Scale < 1 {
		fmt.Fprintln(stderr, "bench: -scale must be at least 1")
		return 2
	}

	cfg := bench.Config{
		Scenario: f.Scenario(), Scale: bench.Scale(f.Scale), Seed: f.Seed, ColdRuns: 21,
		Coalesce: f.Coalesce, Batch: f.Batch, BatchWindow: f.BatchWindow, MaxInstances: f.MaxInstances,
		StreamConcurrency: f.StreamConcurrency, APILatency: f.APILatency,
		BenchTime: "1s", Timeout: f.Timeout, Progress: stderr,
	}
	if f.Quick {
		cfg.ColdRuns, cfg.BenchTime = 9, "200ms"
	}
	cfg.Skip = map[string]bool{}
	for _, step := range strings.Split(*skip, ",") {
		if step = strings.TrimSpace(step); step == "" {
			continue
		}
		if !slices.Contains(bench.Steps, step) {
			fmt.Fprintf(stderr, "bench: -skip %q: want some of %s\n", step, strings.Join(bench.Steps, ", "))
			return 2
		}
		cfg.Skip[step] = true
	}
	if *coldRuns > 0 {
		cfg.ColdRuns = *coldRuns
	}
	if *benchtime != "" {
		cfg.BenchTime = *benchtime
	}
	root, err := localcloud.ModuleRoot(".")
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	cfg.ModuleDir = root
	if *binDir != "" {
		cfg.BurstBinaries, _, _ = localcloud.Binaries(*binDir, "", nil)
	}

	stopProfile, err := f.StartProfile()
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	defer stopProfile()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	doc, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	doc.Command = bench.CommandLine("make bench", args)
	if err := f.Output(stdout, doc); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	for _, b := range doc.Bursts {
		if b.Lost > 0 || !b.Settled {
			fmt.Fprintf(stderr, "bench: burst %q lost %d instance(s) (settled=%v)\n", b.Name, b.Lost, b.Settled)
			return 1
		}
	}
	return 0
}
