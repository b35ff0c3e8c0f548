// Command demo runs the whole system on this machine — HBR, ECS, MNS and OSS
// emulators, the compiled install, poller and reconcile functions under a
// Function Compute runtime emulator, EventBridge pushing events and both
// queues' messages — and shows what happens to each instance. `make demo` runs it; `make demo ARGS='...'` passes
// flags. Exit status 0 means every accepted instance reached an outcome.
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

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/tooling/status"
)

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var events, messages, envs files
	fs.Var(&messages, "message", "file whose bytes are put on the job queue as one raw message body; repeatable")
	fs.Var(&envs, "env", "K=V added to every function's environment; repeatable")
	clientsFile := fs.String("clients", "", `JSON file seeding HBR clients: {"<instance id>": {"status": "ACTIVATED", "createdTime": "<RFC 3339>"}, …}; any of the 12 statuses; "then": "ACTIVATED", "after": "30s" make a transitional one change`)
	sweepN := fs.Int("sweep", 0, "ECS holds N running instances (a tenth with an ACTIVATED client) and the reconcile function is invoked directly; the report adds its coverage")
	launchN := fs.Int("launch", 0, "play a launch world of N instances instead of the event files: RunInstances, Running and FirstHeartbeat per instance, at their scaled times")
	speedup := fs.Float64("speedup", 20, "with -launch: how many times faster than the real cloud the launches run")
	allAtOnce := fs.Bool("all-at-once", false, "with -launch: push every event at once")
	fs.Var(&events, "event", "event file to push (one CloudEvent or an array); repeatable (default: events/instance-running.json and events/runinstances-burst.json)")
	jsonOut := fs.Bool("json", false, "print one JSON report on stdout instead of the timeline")
	showStatus := fs.Bool("status", false, "at the end, print what the local instance ledger holds (as make status does for a region; with -json, under \"ledger\")")
	seed := fs.Int64("seed", 1, "seed for behaviour assignment and fault injection")
	timeout := fs.Duration("timeout", 90*time.Second, "give up after this long; unfinished instances count as lost")
	binDir := fs.String("bin", "", "directory with prebuilt <fn>/main binaries (default: build into a temp dir)")
	var mix localcloud.Mix
	fs.Float64Var(&mix.NotReady, "not-ready", 0.3, "share of instances whose Cloud Assistant is not running at first")
	fs.DurationVar(&mix.ReadyAfter, "ready-after", 3*time.Second, "how long not-ready instances take to become ready")
	fs.Float64Var(&mix.FailOnce, "fail-once", 0.1, "share of instances whose first install fails")
	fs.Float64Var(&mix.Gone, "gone", 0, "share of instances that no longer exist")
	fs.Float64Var(&mix.Expire, "expire", 0, "share of instances whose install task expires")
	fs.Float64Var(&mix.Cancel, "cancel", 0, "share of instances whose install task is cancelled")
	fs.DurationVar(&mix.TaskMin, "task-min", time.Second, "shortest install task")
	fs.DurationVar(&mix.TaskMax, "task-max", 3*time.Second, "longest install task")
	throttle := fs.Float64("throttle", 0, "share of HBR calls answered with 400 Throttling.User")
	serverErr := fs.Float64("server-errors", 0, "share of HBR calls answered with 503 ServiceUnavailable")
	mnsFail := fs.Float64("mns-fail", 0, "share of MNS sends that fail with a 500")
	dup := fs.Float64("dup", 0, "share of events and messages delivered twice")
	crash := fs.Float64("crash", 0, "share of poller invocations whose process is killed mid-batch")
	apiLatency := fs.Duration("api-latency", 100*time.Millisecond, "round trip of every API call in the real cloud; divided by the demo's speed-up (30×, or -speedup with -launch)")
	timing := localcloud.DefaultTiming()
	fs.DurationVar(&timing.FirstPoll, "first-poll", timing.FirstPoll, "FIRST_POLL_DELAY of the functions")
	fs.DurationVar(&timing.Interval, "poll-interval", timing.Interval, "POLL_INTERVAL of the functions")
	fs.DurationVar(&timing.ReadinessTimeout, "readiness-timeout", timing.ReadinessTimeout, "READINESS_TIMEOUT of the functions")
	fs.DurationVar(&timing.TaskTimeout, "task-timeout", timing.TaskTimeout, "TASK_TIMEOUT of the functions")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./scripts/demo [flags]\n\nRuns the local cloud and pushes events through the real function binaries.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}

	root, err := localcloud.ModuleRoot(".")
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 2
	}
	if len(events) == 0 && *launchN == 0 && *sweepN == 0 && len(messages) == 0 {
		events = files{filepath.Join(root, "events/instance-running.json"), filepath.Join(root, "events/runinstances-burst.json")}
	}
	var payloads [][]byte
	for _, f := range events {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(stderr, "demo:", err)
			return 2
		}
		payloads = append(payloads, b)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	bins, cleanup, err := localcloud.Binaries(*binDir, "hbr-demo-", func(dir string) (map[string]string, error) {
		if !*jsonOut {
			fmt.Fprintln(stdout, "building the install and poller functions…")
		}
		return localcloud.BuildFunctions(ctx, root, dir)
	})
	defer cleanup()
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 2
	}

	env := map[string]string{}
	for _, kv := range envs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			fmt.Fprintf(stderr, "demo: -env %q: want K=V\n", kv)
			return 2
		}
		env[k] = v
	}
	if _, set := env["RECONCILE_RATE"]; *sweepN > 0 && !set {
		// The demo runs minutes as seconds: hand the swept instances to the
		// poller at the highest rate (100 000 a minute) rather than the
		// deployed 600, or 50 000 of them would take 75 minutes.
		env["RECONCILE_RATE"] = "100000"
	}
	var bodies []string
	for _, f := range messages {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(stderr, "demo:", err)
			return 2
		}
		bodies = append(bodies, string(b))
	}
	type seeded struct {
		Status      string    `json:"status"`
		CreatedTime time.Time `json:"createdTime"`
		// Then and After make a transitional client (UPGRADING,
		// REGISTERED) reach status Then after the duration After ("90s").
		Then  string `json:"then"`
		After string `json:"after"`
	}
	clients := map[string]seeded{}
	if *clientsFile != "" {
		b, err := os.ReadFile(*clientsFile)
		if err == nil {
			err = json.Unmarshal(b, &clients)
		}
		if err != nil {
			fmt.Fprintf(stderr, "demo: -clients %s: %v\n", *clientsFile, err)
			return 2
		}
	}
	var world localcloud.World
	if *launchN > 0 {
		world, err = localcloud.NewWorld(localcloud.LaunchOptions{Instances: *launchN, Seed: *seed, Speedup: *speedup, DuplicateRate: *dup})
		if err != nil {
			fmt.Fprintln(stderr, "demo:", err)
			return 2
		}
	}

	// The demo's delays are minutes run as seconds (DefaultTiming: a 60 s
	// first poll takes 2 s): about 30 times faster, or -speedup in a launch
	// world. API calls are shortened alike.
	scale := 30.0
	if *launchN > 0 {
		scale = *speedup
	}
	ids := append(localcloud.InstanceIDs(payloads, "cn-hangzhou"), world.IDs()...)
	opts := localcloud.Options{
		Binaries:      bins,
		Timing:        &timing,
		Instances:     mix.Behaviors(ids, *seed),
		Behavior:      hbrsim.Behavior{InstallDuration: mix.TaskMin},
		HBRFaults:     hbrsim.Faults{ThrottleRate: *throttle, ServerErrorRate: *serverErr},
		MNSFaults:     mnssim.Faults{SendFailRate: *mnsFail},
		DuplicateRate: *dup,
		CrashRate:     *crash,
		APILatency:    time.Duration(float64(*apiLatency) / scale),
		Seed:          *seed,
		Env:           env,
	}
	if !*jsonOut {
		opts.OnEntry = func(e localcloud.Entry) {
			fmt.Fprintf(stdout, "%7.2fs  %-7s %s\n", e.At.Seconds(), e.Kind, e.Text)
		}
	}
	cloud, err := localcloud.Start(ctx, opts)
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	defer cloud.Close()
	for id, cl := range clients {
		after, err := time.ParseDuration(cmpOr(cl.After, "0s"))
		if err != nil {
			fmt.Fprintf(stderr, "demo: -clients %s: %s: after: %v\n", *clientsFile, id, err)
			return 2
		}
		cloud.HBR.SetClientTransition(id, cl.Status, cl.CreatedTime, cl.Then, after)
	}
	for _, body := range bodies {
		if _, err := cloud.MNS.Send(localcloud.QueueName, body, 0, 8); err != nil {
			fmt.Fprintln(stderr, "demo:", err)
			return 1
		}
	}
	if *sweepN > 0 {
		cloud.SeedFleet(*sweepN)
		if _, err := cloud.Sweep(ctx, "{}"); err != nil {
			fmt.Fprintln(stderr, "demo:", err)
			return 1
		}
	}
	if *launchN > 0 {
		cloud.Launch(ctx, world, *allAtOnce)
	}
	if err := cloud.Publish(ctx, payloads...); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	waitCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	settled := cloud.Wait(waitCtx)
	report := cloud.Report()
	report.Settled = settled
	var ledgerStatus *status.Report
	if *showStatus {
		l, err := cloud.Ledger()
		if err == nil {
			var st status.Report
			st, err = status.Read(ctx, l, "cn-hangzhou", time.Now())
			ledgerStatus = &st
		}
		if err != nil {
			fmt.Fprintln(stderr, "demo: read the ledger:", err)
			return 1
		}
	}

	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if ledgerStatus != nil {
			_ = enc.Encode(struct {
				localcloud.Report
				Ledger *status.Report `json:"ledger"`
			}{report, ledgerStatus})
		} else {
			_ = enc.Encode(report)
		}
	} else {
		fmt.Fprintln(stdout)
		report.PrintTable(stdout)
		if report.Coverage != nil {
			fmt.Fprintf(stdout, "sweep coverage: running=%v activated=%v queued=%v skipped=%v\n",
				report.Coverage["running"], report.Coverage["activated"], report.Coverage["queued"], report.Coverage["skipped"])
		}
		if ledgerStatus != nil {
			fmt.Fprintln(stdout, "\nthe instance ledger (make status):")
			if err := ledgerStatus.PrintTable(stdout); err != nil {
				fmt.Fprintln(stderr, "demo:", err)
			}
		}
	}
	if report.Lost > 0 || !settled {
		if !*jsonOut {
			fmt.Fprintf(stdout, "\n%d instance(s) did not reach an outcome within %s\n", report.Lost, *timeout)
		}
		return 1
	}
	return 0
}
