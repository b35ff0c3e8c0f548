// Command chaos runs the launch world of `make bench` again, every function
// with several invocations at once, with faults — throttling storms, 5 %
// HBR server errors, MNS send failures and a 5 s MNS send outage, duplicate
// deliveries of events and messages, poller processes killed mid-batch,
// install processes killed between InstallBackupClients and the poll
// message, tasks that expire, are cancelled or hang past the deadline,
// clients created by another installer inside the launch window, and
// instances that fail every install and are started again after their
// failure — and checks that nothing is lost (see package
// shared/tooling/bench). Chains only a takeover can finish are finished by
// a reconcile sweep once their leases passed, as the daily timer would;
// the document counts the sweeps. `make chaos` runs it; `make chaos
// ARGS='-instances 10000'` the larger world; `-json` prints the JSON
// document instead of the table, `-out FILE` writes it to a file as well.
//
// Exit status: 0 when every accepted instance reached exactly one kind of
// outcome and a final ledger record, every restart superseded its failure,
// and no task was polled past its deadline; 1 otherwise or when the run
// could not start; 2 on bad flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/tooling/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := bench.RegisterFlags(fs, bench.FlagText{
		JSON:                "print the JSON document on stdout instead of the table",
		Quick:               "smaller run: 200 instances",
		Seed:                "seed of the scenario and of fault injection",
		Coalesce:            "INSTALL_COALESCE_DELAY (real-cloud); 0 installs at once",
		MaxInstances:        "processes per function (Function Compute scales out)",
		Timeout:             "bound of the run; what has no outcome by then is lost",
		TimeoutDefault:      15 * time.Minute,
		ScaleDefault:        bench.DefaultChaosScale,
		MaxInstancesDefault: bench.DefaultMaxInstances,
	})
	faults := bench.DefaultFaults()
	fs.Float64Var(&faults.HBRServerErrors, "server-errors", faults.HBRServerErrors, "share of HBR calls answered 503")
	fs.Float64Var(&faults.HBRThrottle, "throttle", faults.HBRThrottle, "share of HBR calls throttled outside storms")
	fs.Float64Var(&faults.StormSeconds, "storm", faults.StormSeconds, "length of each throttling storm (local seconds; 0: none)")
	fs.Float64Var(&faults.StormEverySeconds, "storm-every", faults.StormEverySeconds, "period of throttling storms (local seconds)")
	fs.Float64Var(&faults.MNSSendFail, "mns-fail", faults.MNSSendFail, "share of MNS sends that fail with a 500")
	fs.Float64Var(&faults.Duplicate, "dup", faults.Duplicate, "share of events and messages delivered twice")
	fs.Float64Var(&faults.Crash, "crash", faults.Crash, "share of poller invocations whose processes are killed")
	fs.Float64Var(&faults.InstallCrash, "install-crash", faults.InstallCrash, "share of InstallBackupClients calls right after which the install function's processes are killed")
	fs.Float64Var(&faults.ForeignClients, "foreign", faults.ForeignClients, "share of instances, per client status (ACTIVATED, INSTALLING, INSTALL_FAILED, UPGRADING, STOPPED), on which another installer creates a client inside the launch window")
	fs.Float64Var(&faults.Restarts, "restarts", faults.Restarts, "share of instances whose installs always fail and that are started again after their failure")
	restartAfter := fs.Duration("restart-after", seconds(faults.RestartAfterSeconds), "how long after its failure record a restart instance is announced again (real-cloud)")
	fs.Float64Var(&faults.OutageSeconds, "outage", faults.OutageSeconds, "length of the one MNS send outage (local seconds: wall clock, like the send retries it must outlast; 0: none)")
	bind := fs.Bool("bind", false, "bind every activated instance to a backup policy (BACKUP_POLICY_ID set, the policy in the HBR emulator)")
	binDir := fs.String("bin", "", "directory with prebuilt <fn>/main binaries (default: build them)")
	if status, ok := bench.Parse(fs, args, "Usage: go run ./scripts/chaos [flags]\n\nThe burst through the local cloud, with faults; fails on any loss.\n\nFlags:\n"); !ok {
		return status
	}
	faults.RestartAfterSeconds = restartAfter.Seconds()
	if f.Scale < 1 || faults.StormSeconds < 0 || (faults.StormSeconds > 0 && faults.StormEverySeconds <= faults.StormSeconds) {
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
	sc := f.Scenario()

	stopProfile, err := f.StartProfile()
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 2
	}
	defer stopProfile()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	bins, cleanup, err := localcloud.Binaries(*binDir, "hbr-chaos-", func(dir string) (map[string]string, error) {
		fmt.Fprintln(stderr, "chaos: building the functions (make build flags)")
		return bench.Build(ctx, root, dir)
	})
	defer cleanup()
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	fmt.Fprintf(stderr, "chaos: %d instances with faults at 1:%g, API latency %s real, at most %s\n", sc.Instances, f.Scale, f.APILatency, f.Timeout)
	res, err := bench.RunChaos(ctx, bench.ChaosConfig{
		Binaries: bins, Scenario: bench.ChaosScenario(sc), Scale: bench.Scale(f.Scale), Real: rt,
		Coalesce: f.Coalesce, Policy: policyIf(*bind), Batch: f.Batch, BatchWindow: f.BatchWindow,
		MaxInstances: f.MaxInstances, StreamConcurrency: f.StreamConcurrency, APILatency: f.APILatency,
		Seed: f.Seed, Timeout: f.Timeout, Faults: faults,
	})
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	res.Command = bench.CommandLine("make chaos", args)
	if err := f.Output(stdout, res); err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	if !res.Pass {
		return 1
	}
	return 0
}

// policyIf is make bench's backup policy when binding is asked for.
func policyIf(on bool) string {
	if on {
		return bench.BenchPolicy
	}
	return ""
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
