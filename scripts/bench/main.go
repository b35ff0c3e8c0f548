// Command bench measures cold start, binary size, warm handler cost and a
// burst of 1000 new instances through the local cloud, beside a minimal
// Function Compute binary and a model of the naive policy (see package
// shared/bench). `make bench` runs it; `make bench ARGS='-quick'` runs a
// smaller burst; `-json` prints the JSON document instead of the tables, and
// `-out FILE` writes it to a file as well.
//
// Exit status: 0 when the measurement ran (goals missed are reported, not
// failed), 1 when it could not run or the burst lost instances, 2 on bad
// flags.
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
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/bench"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	jsonOut := fs.Bool("json", false, "print the JSON document on stdout instead of the tables")
	out := fs.String("out", "", "also write the JSON document to this file")
	quick := fs.Bool("quick", false, "smaller run: 200 instances, 9 cold starts, short handler benchmarks")
	seed := fs.Int64("seed", 1, "seed of the scenario")
	scale := fs.Float64("scale", 30, "speed-up: every real-cloud delay is divided by this")
	instances := fs.Int("instances", 0, "instances in the burst (default 1000, 200 with -quick)")
	coldRuns := fs.Int("cold-runs", 0, "cold starts per binary (default 21, 9 with -quick)")
	coalesce := fs.Duration("coalesce", 30*time.Second, "INSTALL_COALESCE_DELAY (real-cloud) of the second burst; 0 skips it")
	batch := fs.Int("batch", 5, "poller trigger's CountBasedWindow (messages per invocation), as s.yaml deploys it")
	window := fs.Duration("batch-window", 2*time.Second, "poller trigger's TimeBasedWindow (real-cloud), as s.yaml deploys it")
	maxInstances := fs.Int("max-instances", 4, "processes per function in the bursts (Function Compute scales out)")
	benchtime := fs.String("benchtime", "", "go test -benchtime of the handler benchmarks (default 1s, 200ms with -quick)")
	timeout := fs.Duration("timeout", 3*time.Minute, "bound of each burst run")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./scripts/bench [flags]\n\nMeasures the functions and a burst through the local cloud.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *scale < 1 {
		fmt.Fprintln(stderr, "bench: -scale must be at least 1")
		return 2
	}

	cfg := bench.Config{
		Scenario: bench.DefaultScenario(), Scale: bench.Scale(*scale), Seed: *seed, ColdRuns: 21,
		Coalesce: *coalesce, Batch: *batch, BatchWindow: *window, MaxInstances: *maxInstances,
		BenchTime: "1s", Timeout: *timeout, Progress: stderr,
	}
	if *quick {
		cfg.Scenario, cfg.ColdRuns, cfg.BenchTime = bench.QuickScenario(), 9, "200ms"
	}
	if *instances > 0 {
		cfg.Scenario = cfg.Scenario.WithInstances(*instances)
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

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	doc, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	doc.Command = "make bench"
	if len(args) > 0 {
		doc.Command += " ARGS='" + strings.Join(args, " ") + "'"
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	if *out != "" {
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
	}
	if *jsonOut {
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		doc.PrintTable(stdout)
	}
	for _, b := range doc.Bursts {
		if b.Lost > 0 || !b.Settled {
			fmt.Fprintf(stderr, "bench: burst %q lost %d instance(s) (settled=%v)\n", b.Name, b.Lost, b.Settled)
			return 1
		}
	}
	return 0
}
