package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
)

// Config configures a whole `make bench` run.
type Config struct {
	// ModuleDir is the module root.
	ModuleDir string
	// Scenario is the burst at its largest size; Scale its speed-up; Seed
	// draws it. Above BaseInstances, the launch world is measured at
	// BaseInstances (every burst and the naive run) and once more at the
	// scenario's size, the same way, for the scaling table.
	Scenario Scenario
	Scale    Scale
	Seed     int64
	// ColdRuns is the number of cold starts per binary (default 11).
	ColdRuns int
	// Coalesce is INSTALL_COALESCE_DELAY (real-cloud) of the coalescing run;
	// 0 skips that run.
	Coalesce time.Duration
	// Batch and BatchWindow are the poller trigger's CountBasedWindow and
	// TimeBasedWindow (real-cloud), the same in both runs.
	Batch       int
	BatchWindow time.Duration
	// MaxInstances bounds each function's processes in the bursts;
	// StreamConcurrency each event stream's batches in flight (0: as many
	// as MaxInstances).
	MaxInstances, StreamConcurrency int
	// APILatency is every emulated API call's round trip (real-cloud).
	APILatency time.Duration
	// BenchTime is `go test -benchtime` for the handler benchmarks.
	BenchTime string
	// Timeout bounds each burst run of BaseInstances; a larger one gets
	// as many times more as it has instances more.
	Timeout time.Duration
	// Progress receives one line per step (nil: none).
	Progress io.Writer
	// BurstBinaries, when set, are the function binaries the bursts run
	// (say, unstripped ones to profile with perf); sizes and cold starts
	// always measure the binaries built with make build's flags.
	BurstBinaries map[string]string
	// Skip names steps not to run: "cold" (cold starts and sizes),
	// "handler" (the handler benchmarks), "naive", "bind" (the binding
	// run). Their goals are left out.
	Skip map[string]bool
}

// Steps Config.Skip may name.
var Steps = []string{"cold", "handler", "naive", "bind"}

// BaseInstances is the size every burst runs at and the first row of the
// scaling table: the size the economy goals were set for.
const BaseInstances = 1000

// Sizes are the instance counts of the scaling table: BaseInstances and the
// scenario's size when it is larger, else the scenario's size alone.
func (cfg Config) Sizes() []int {
	if n := cfg.Scenario.Instances; n > BaseInstances {
		return []int{BaseInstances, n}
	}
	return []int{cfg.Scenario.Instances}
}

// Doc is the `make bench` JSON document. The top-level figures come from the
// default-policy burst and the worst of the functions.
type Doc struct {
	Command  string  `json:"command"`
	Machine  Machine `json:"machine"`
	Date     string  `json:"date"`
	Seconds  float64 `json:"seconds"`
	Seed     int64   `json:"seed"`
	Scale    float64 `json:"scale"`
	Scenario string  `json:"scenario"`
	// APILatencyMs is every emulated API call's round trip, in real-cloud
	// milliseconds (the runs used it divided by the scale).
	APILatencyMs float64 `json:"api_latency_ms"`
	// MaxInstances and StreamConcurrency are the local cloud's bounds in
	// every burst: processes per function, batches in flight per stream.
	MaxInstances      int `json:"max_instances"`
	StreamConcurrency int `json:"stream_concurrency"`
	// Timing is the functions' timing in the bursts (local seconds).
	Timing map[string]float64 `json:"timing_local_seconds"`

	ColdStartRatio   float64 `json:"cold_start_ratio"`
	FirstAnswerRatio float64 `json:"first_answer_ratio"`
	BinarySizeRatio  float64 `json:"binary_size_ratio"`
	// ColdStartRatioVsSDK and BinarySizeRatioVsSDK compare the worst
	// function with the SDK baseline (the three SDKs linked, no work): what
	// the project's own code adds.
	ColdStartRatioVsSDK        float64 `json:"cold_start_ratio_vs_sdk_baseline"`
	BinarySizeRatioVsSDK       float64 `json:"binary_size_ratio_vs_sdk_baseline"`
	HBRCallsPerInstance        float64 `json:"hbr_calls_per_instance"`
	HBRCallsRatioVsNaive       float64 `json:"hbr_calls_ratio_vs_naive"`
	DescribeTaskRatioVsMinimum float64 `json:"describe_task_ratio_vs_minimum"`
	OutcomeLatencyP99          float64 `json:"outcome_latency_p99_seconds"`
	PeakRSSMB                  float64 `json:"peak_rss_mb"`
	// The launch world's figures of the default burst (see Burst).
	EventsPerInstance         float64 `json:"events_per_instance"`
	InstallSlotsPerInstance   float64 `json:"install_slots_per_instance"`
	OutcomeRecordsPerInstance float64 `json:"outcome_records_per_instance"`
	RunningToOutcomeRealP99   float64 `json:"running_to_outcome_real_p99_seconds"`
	// BindCallsPerInstance is the binding run's CreatePolicyBindings and
	// DescribePolicyBindings calls per installed instance;
	// BindAddedP99Seconds what binding adds to the Running → outcome p99
	// (real-cloud seconds; the run's resolution is the scale's second).
	BindCallsPerInstance float64 `json:"bind_calls_per_instance"`
	BindAddedP99Seconds  float64 `json:"bind_added_p99_seconds"`
	// CallsByFunction is the default burst's calls, by the function that
	// made them.
	CallsByFunction map[string]map[string]int `json:"calls_by_function"`
	// Scaling is the launch world at each size of Config.Sizes, measured
	// the same way.
	Scaling []ScalingRow `json:"scaling"`
	Goals   []Goal       `json:"goals"`

	ColdStart        map[string]ColdStart `json:"cold_start"`
	BinarySizes      map[string]int64     `json:"binary_size_bytes"`
	BinarySizeRatios map[string]float64   `json:"binary_size_ratios"`
	Handler          []GoBench            `json:"handler_benchmarks"`
	// HandlerError says why the handler benchmarks did not run (the rest
	// of the document stands).
	HandlerError string  `json:"handler_benchmarks_error,omitempty"`
	Bursts       []Burst `json:"bursts"`
	// Naive is the naive policy run on the same launch world (RunNaive);
	// NaiveModel is the older per-instance model of it, for comparison
	// (Naive is the model when the scenario is not the launch world).
	Naive      Naive  `json:"naive"`
	NaiveModel *Naive `json:"naive_model,omitempty"`
}

// Run builds the binaries and measures everything, one step after the other
// so that no step disturbs another.
func Run(ctx context.Context, cfg Config) (Doc, error) {
	began := time.Now()
	say := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "bench: "+format+"\n", args...)
		}
	}
	rt, err := RealTiming()
	if err != nil {
		return Doc{}, err
	}
	local := cfg.Scale.Timing(rt)
	sizes := cfg.Sizes()
	base := cfg.Scenario.WithInstances(sizes[0])
	doc := Doc{
		Machine: ThisMachine(), Date: began.UTC().Format(time.RFC3339), Seed: cfg.Seed, Scale: float64(cfg.Scale),
		Scenario: base.describe(cfg.Scale), Timing: timingSeconds(local), APILatencyMs: ms(cfg.APILatency),
		MaxInstances: cfg.MaxInstances, StreamConcurrency: cmp.Or(cfg.StreamConcurrency, cfg.MaxInstances),
	}

	dir, err := os.MkdirTemp("", "hbr-bench-")
	if err != nil {
		return Doc{}, err
	}
	defer os.RemoveAll(dir)
	say("building the functions and the minimal binary (make build flags, %s)", doc.Machine.GOOS+"/"+doc.Machine.GOARCH)
	bins, err := Build(ctx, cfg.ModuleDir, dir)
	if err != nil {
		return Doc{}, err
	}
	if doc.BinarySizes, err = Sizes(bins); err != nil {
		return Doc{}, err
	}
	doc.BinarySizeRatios = map[string]float64{}
	for _, fn := range localcloud.Functions {
		doc.BinarySizeRatios[fn] = ratio(float64(doc.BinarySizes[fn]), float64(doc.BinarySizes[Minimal]))
		doc.BinarySizeRatio = max(doc.BinarySizeRatio, doc.BinarySizeRatios[fn])
		doc.BinarySizeRatioVsSDK = max(doc.BinarySizeRatioVsSDK, ratio(float64(doc.BinarySizes[fn]), float64(doc.BinarySizes[SDKBaseline])))
	}

	if !cfg.Skip["cold"] {
		say("cold starts: %d runs per binary, interleaved", max(cfg.ColdRuns, 1))
		if doc.ColdStart, err = MeasureColdStart(ctx, ColdConfig{Binaries: bins, ModuleDir: cfg.ModuleDir, Runs: cfg.ColdRuns}); err != nil {
			return Doc{}, err
		}
		for _, fn := range localcloud.Functions {
			doc.ColdStartRatio = max(doc.ColdStartRatio, doc.ColdStart[fn].NextRatio)
			doc.ColdStartRatioVsSDK = max(doc.ColdStartRatioVsSDK, ratio(doc.ColdStart[fn].NextMs, doc.ColdStart[SDKBaseline].NextMs))
			doc.FirstAnswerRatio = max(doc.FirstAnswerRatio, doc.ColdStart[fn].AnswerRatio)
		}
	}

	if !cfg.Skip["handler"] {
		say("handler benchmarks: go test -bench . -benchmem -benchtime %s ./shared/handler", cfg.BenchTime)
		if doc.Handler, err = RunGoBench(ctx, cfg.ModuleDir, "./shared/handler", cfg.BenchTime); err != nil {
			if ctx.Err() != nil {
				return Doc{}, err
			}
			// The product's benchmarks are the product's to keep working;
			// the other measurements do not depend on them.
			doc.HandlerError = clipLines(err.Error(), 6)
			say("handler benchmarks failed, reported in the document: %s", clipLines(err.Error(), 3))
		}
	}

	plan, err := base.Plan(cfg.Scale, cfg.Seed, 3*(local.TaskTimeout+local.Margin))
	if err != nil {
		return Doc{}, err
	}
	doc.Naive = naiveCost(plan.Behaviors, cfg.Scale, rt.MaxAttempts)
	if plan.World != nil && !cfg.Skip["naive"] {
		say("naive run: the same launch world, on a virtual clock")
		model := doc.Naive
		if doc.Naive, err = RunNaive(ctx, plan, cfg.Scale, rt.MaxAttempts, cfg.Seed); err != nil {
			return Doc{}, err
		}
		doc.NaiveModel = &model
	}
	// The binding run: the same world with BACKUP_POLICY_ID set (issue 11's
	// figures: the calls binding adds, and the latency). The larger sizes
	// of the scaling table run like the default one.
	runs := []BurstConfig{{Name: "default", Coalesce: DefaultCoalesce()}}
	if !cfg.Skip["bind"] {
		runs = append(runs, BurstConfig{Name: "bind", Coalesce: DefaultCoalesce(), Policy: BenchPolicy})
	}
	if cfg.Coalesce > 0 {
		runs = append(runs, BurstConfig{Name: "coalesce", Coalesce: cfg.Coalesce})
	}
	for _, n := range sizes[1:] {
		runs = append(runs, BurstConfig{Name: fmt.Sprintf("default-%d", n), Coalesce: DefaultCoalesce(), instances: n})
	}
	burstBins := bins
	if cfg.BurstBinaries != nil {
		burstBins = cfg.BurstBinaries
	}
	for _, bc := range runs {
		bc.Binaries, bc.Scenario, bc.Scale, bc.Real = burstBins, base, cfg.Scale, rt
		bc.Batch, bc.BatchWindow, bc.APILatency = cfg.Batch, cfg.BatchWindow, cfg.APILatency
		bc.MaxInstances, bc.StreamConcurrency, bc.Seed, bc.Timeout = cfg.MaxInstances, cfg.StreamConcurrency, cfg.Seed, cfg.Timeout
		if bc.instances > 0 {
			bc.Scenario = cfg.Scenario.WithInstances(bc.instances)
			bc.Timeout = time.Duration(float64(cfg.Timeout) * float64(bc.instances) / float64(base.Instances))
		}
		say("burst %q: %d instances, batch %d, coalesce %s, API latency %s real, at 1:%g, at most %s",
			bc.Name, bc.Scenario.Instances, bc.Batch, bc.Coalesce, bc.APILatency, float64(cfg.Scale), bc.Timeout)
		b, err := RunBurst(ctx, bc)
		if err != nil {
			return Doc{}, fmt.Errorf("burst %s: %w", bc.Name, err)
		}
		if bc.instances == 0 {
			b.HBRCallsRatioVsNaive = ratio(b.HBRCallsPerInstance, doc.Naive.HBRCallsPerInstance)
		}
		say("burst %q: %.0f s, lost %d; CPU: this run %.0f%% of the machine on average (p90 %.0f%%), the whole machine %.0f%% (p90 %.0f%%)",
			b.Name, b.Seconds, b.Lost, 100*b.CPU.OwnMean, 100*b.CPU.OwnP90, 100*b.CPU.BusyMean, 100*b.CPU.BusyP90)
		doc.Bursts = append(doc.Bursts, b)
	}

	def := doc.Bursts[0]
	if len(doc.Bursts) > 1 && doc.Bursts[1].Name == "bind" {
		bind := doc.Bursts[1]
		doc.BindCallsPerInstance = bind.BindCallsPerInstance
		doc.BindAddedP99Seconds = round(bind.RunningToOutcomeRealP99-def.RunningToOutcomeRealP99, 1)
	}
	doc.HBRCallsPerInstance = def.HBRCallsPerInstance
	doc.HBRCallsRatioVsNaive = def.HBRCallsRatioVsNaive
	doc.DescribeTaskRatioVsMinimum = def.DescribeTaskRatio
	doc.OutcomeLatencyP99 = def.OutcomeLatency.P99
	doc.CallsByFunction = def.CallsByFunction
	for _, b := range doc.Bursts {
		for _, v := range b.PeakRSSMB {
			doc.PeakRSSMB = max(doc.PeakRSSMB, v)
		}
	}
	doc.EventsPerInstance, doc.InstallSlotsPerInstance = def.EventsPerInstance, def.InstallSlotsPerInstance
	doc.OutcomeRecordsPerInstance, doc.RunningToOutcomeRealP99 = def.OutcomeRecordsPerInstance, def.RunningToOutcomeRealP99
	doc.Scaling = append(doc.Scaling, scalingRow(def))
	for _, b := range doc.Bursts {
		if strings.HasPrefix(b.Name, "default-") {
			doc.Scaling = append(doc.Scaling, scalingRow(b))
		}
	}
	if !cfg.Skip["cold"] {
		doc.Goals = append(doc.Goals,
			goal("cold_start_ratio", doc.ColdStartRatio, 1.25, "×", "process start → first GET /next, median, worst function vs minimal"),
			goal("binary_size_ratio", doc.BinarySizeRatio, 1.8, "×", "stripped (make build flags), worst function vs minimal"),
			goal("cold_start_ratio_vs_sdk_baseline", doc.ColdStartRatioVsSDK, 1.15, "×", "first GET /next, worst function vs a binary linking the same SDKs (FC runtime, core RPC, MNS, OSS v2) and doing nothing"),
			goal("binary_size_ratio_vs_sdk_baseline", doc.BinarySizeRatioVsSDK, 1.15, "×", "stripped size, worst function vs the SDK baseline"),
		)
	}
	doc.Goals = append(doc.Goals,
		goal("hbr_calls_ratio_vs_naive", doc.HBRCallsRatioVsNaive, 0.3, "×", "HBR calls per installed instance, default policy vs naive (run on the same world; the model otherwise)"),
		goal("describe_task_ratio_vs_minimum", doc.DescribeTaskRatioVsMinimum, 1.1, "×", "sum of DescribeTask calls / sum of per-task schedule minimum"),
		goal("outcome_latency_p99_seconds", doc.OutcomeLatencyP99, def.LatencyGoalSeconds, "s", "task completion → INSTALLED record, in the scaled run; goal = scaled poll interval + 2 s"),
		goal("peak_rss_mb", doc.PeakRSSMB, 48, "MiB", "VmHWM, worst function process in any burst"),
	)
	if doc.HandlerError != "" {
		doc.Goals = append(doc.Goals, Goal{Name: "handler_benchmarks_ran", Value: 0, Limit: 1, AtLeast: true, Met: false,
			Note: "go test -bench ./shared/handler failed (see handler_benchmarks_error)"})
	}
	if cfg.Scenario.World {
		latencyGoal := (cfg.Scenario.TaskMax + 45*time.Second).Seconds()
		doc.Goals = append(doc.Goals,
			Goal{Name: "events_per_instance", Value: doc.EventsPerInstance, Limit: 2.5, AtLeast: true, Met: doc.EventsPerInstance >= 2.5,
				Note: "announcements (event, instance) / distinct instances; a RunInstances record announces each of its instances"},
			goal("install_slots_per_instance", doc.InstallSlotsPerInstance, 1.05, "×", "instance IDs sent to InstallBackupClients / instances installed"),
			goal("outcome_records_per_instance", doc.OutcomeRecordsPerInstance, 1.0, "×", "outcome records / distinct instances"),
			goal("hbr_calls_per_instance", doc.HBRCallsPerInstance, 1.5, "", "every HBR call / instances installed"),
			goal("running_to_outcome_real_p99_seconds", doc.RunningToOutcomeRealP99, latencyGoal, "s",
				"first Running event → first outcome record, × scale; goal = longest install task + 45 s"),
		)
		if !cfg.Skip["bind"] {
			doc.Goals = append(doc.Goals,
				goal("bind_calls_per_instance", doc.BindCallsPerInstance, 0.1, "", "binding run (BACKUP_POLICY_ID set): Create/DescribePolicyBindings calls / instances installed"),
				goal("bind_added_p99_seconds", doc.BindAddedP99Seconds, 5, "s", "binding run's Running → outcome p99 minus the default run's (real; resolution = the scale)"))
		}
		doc.Goals = append(doc.Goals, scalingGoals(doc.Scaling)...)
	}
	for _, b := range doc.Bursts {
		if !b.Settled || b.Lost > 0 {
			doc.Goals = append(doc.Goals, Goal{Name: "burst " + b.Name + " settled without loss", Value: float64(b.Lost), Limit: 0, Met: false,
				Note: fmt.Sprintf("settled=%v lost=%d", b.Settled, b.Lost)})
		}
	}
	doc.Seconds = round(time.Since(began).Seconds(), 1)
	return doc, nil
}

// clipLines keeps the first n lines of s.
func clipLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return strings.Join(lines, "\n")
}

func timingSeconds(t localcloud.Timing) map[string]float64 {
	return map[string]float64{
		"FIRST_POLL_DELAY": t.FirstPoll.Seconds(), "POLL_INTERVAL": t.Interval.Seconds(),
		"READINESS_DELAY": t.ReadinessDelay.Seconds(), "READINESS_DELAY_STEP": t.ReadinessStep.Seconds(),
		"READINESS_TIMEOUT": t.ReadinessTimeout.Seconds(), "TASK_TIMEOUT": t.TaskTimeout.Seconds(),
		"DEADLINE_MARGIN": t.Margin.Seconds(), "RETRY_BASE_DELAY": t.RetryBase.Seconds(),
		"RETRY_MAX_DELAY": t.RetryMax.Seconds(), "MAX_INSTALL_ATTEMPTS": float64(t.MaxAttempts),
	}
}

// PrintTable writes the document for people.
func (d Doc) PrintTable(w io.Writer) {
	fmt.Fprintf(w, "%s — %d × %s, %s/%s, %s — %s, %.0f s\n", orDefault(d.Command, "make bench"), d.Machine.CPUs, d.Machine.CPU,
		d.Machine.GOOS, d.Machine.GOARCH, d.Machine.Go, d.Date, d.Seconds)
	fmt.Fprintf(w, "scenario: %s, seed %d\n", d.Scenario, d.Seed)
	fmt.Fprintf(w, "local cloud: API latency %g ms real (%g ms local), up to %d processes per function, %d batches in flight per stream\n\n",
		d.APILatencyMs, round(d.APILatencyMs/d.Scale, 2), d.MaxInstances, d.StreamConcurrency)

	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "GOAL\tVALUE\tLIMIT\tMET?\tHOW")
	for _, g := range d.Goals {
		limit := fmt.Sprintf("≤ %g", g.Limit)
		switch {
		case g.AtLeast:
			limit = fmt.Sprintf("≥ %g", g.Limit)
		case g.Low != 0:
			limit = fmt.Sprintf("%g–%g", g.Low, g.Limit)
		}
		met := "met"
		if !g.Met {
			met = "missed"
		}
		fmt.Fprintf(tw, "%s\t%g %s\t%s\t%s\t%s\n", g.Name, g.Value, g.Unit, limit, met, g.Note)
	}
	_ = tw.Flush()
	printScaling(w, d.Scaling, d.Scale)

	fmt.Fprintf(w, "\nCold start and size (median of %d fresh processes each, interleaved; ratios to minimal)\n", d.ColdStart[Minimal].Runs)
	tw = tabwriter.NewWriter(w, 0, 2, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "BINARY\tSIZE (bytes)\tSIZE RATIO\tFIRST /next (ms)\tRATIO\tFIRST ANSWER (ms)\tRATIO\t")
	for _, name := range append([]string{Minimal, SDKBaseline}, localcloud.Functions...) {
		c := d.ColdStart[name]
		sr := ratio(float64(d.BinarySizes[name]), float64(d.BinarySizes[Minimal]))
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.2f\t%.3f\t%.2f\t%.3f\t\n", name, d.BinarySizes[name], sr, c.NextMs, c.NextRatio, c.AnswerMs, c.AnswerRatio)
	}
	_ = tw.Flush()

	fmt.Fprintln(w, "\nWarm handler cost (go test -bench ./shared/handler, real adapters against in-process emulators)")
	if d.HandlerError != "" {
		fmt.Fprintf(w, "not measured: %s\n", d.HandlerError)
	}
	tw = tabwriter.NewWriter(w, 0, 2, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "BENCHMARK\tITERATIONS\tNS/OP\tB/OP\tALLOCS/OP\t")
	for _, b := range d.Handler {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%d\t%d\t\n", b.Name, b.Iterations, b.NsPerOp, b.BytesPerOp, b.AllocsPerOp)
	}
	_ = tw.Flush()

	fmt.Fprintf(w, "\nBurst (local cloud at 1:%g; latencies in local seconds unless marked real)\n", d.Scale)
	fmt.Fprintf(w, "local timing: %s\n", formatTiming(d.Timing))
	tw = tabwriter.NewWriter(w, 0, 2, 2, ' ', tabwriter.AlignRight)
	header := "\t"
	for _, b := range d.Bursts {
		header += b.Name + "\t"
	}
	naiveHeader := "naive (model)"
	if d.NaiveModel != nil {
		naiveHeader = "naive (run)"
	}
	fmt.Fprintln(tw, header+naiveHeader+"\t")
	row := func(label string, naive string, f func(b Burst) string) {
		line := label + "\t"
		for _, b := range d.Bursts {
			line += f(b) + "\t"
		}
		fmt.Fprintln(tw, line+naive+"\t")
	}
	row("INSTALL_COALESCE_DELAY (real / local s)", "-", func(b Burst) string {
		return fmt.Sprintf("%g / %g", b.CoalesceSeconds, b.CoalesceLocalSeconds)
	})
	row("poller batch: messages / real window s", "-", func(b Burst) string {
		return fmt.Sprintf("%d / %g", b.Batch, b.BatchWindowSeconds)
	})
	row("installed / instances (lost)", fmt.Sprint(d.Naive.Installed), func(b Burst) string {
		return fmt.Sprintf("%d / %d (%d)", b.Installed, b.Instances, b.Lost)
	})
	row("events per instance", "-", func(b Burst) string { return fmt.Sprint(b.EventsPerInstance) })
	row("install slots per installed instance", "-", func(b Burst) string { return fmt.Sprint(b.InstallSlotsPerInstance) })
	row("outcome records per instance", "-", func(b Burst) string { return fmt.Sprint(b.OutcomeRecordsPerInstance) })
	row("conflicting records", "-", func(b Burst) string { return fmt.Sprint(b.Conflicts) })
	row("Running → outcome p50 / p99, real s", "-", func(b Burst) string {
		return fmt.Sprintf("%.0f / %.0f", b.RunningToOutcomeReal.P50, b.RunningToOutcomeReal.P99)
	})
	row("  p50 phases: heartbeat, install call, task (own), record", "-", func(b Burst) string {
		if b.Breakdown == nil {
			return "-"
		}
		k := b.Breakdown
		return fmt.Sprintf("%.0f + %.0f + %.0f (%.0f) + %.0f", k.ToHeartbeat.P50, k.ToInstall.P50, k.Task.P50, k.OwnInstall.P50, k.ToRecord.P50)
	})
	row("  slowest 1 %, mean phases", "-", func(b Burst) string {
		if b.Breakdown == nil {
			return "-"
		}
		k := b.Breakdown.Slowest
		return fmt.Sprintf("%.0f + %.0f + %.0f (%.0f) + %.0f", k.ToHeartbeat, k.ToInstall, k.Task, k.OwnInstall, k.ToRecord)
	})
	row("DescribeTask lag behind the schedule p50 / p90, real s", "-", func(b Burst) string {
		return fmt.Sprintf("%.1f / %.1f", b.PollLag.P50, b.PollLag.P90)
	})
	row("backup-policy binding calls per installed instance", "-", func(b Burst) string { return fmt.Sprint(round(b.BindCallsPerInstance, 3)) })
	row("HBR calls", fmt.Sprint(d.Naive.HBRCalls), func(b Burst) string { return fmt.Sprint(b.HBRCalls) })
	row("HBR calls per installed instance", fmt.Sprint(d.Naive.HBRCallsPerInstance), func(b Burst) string { return fmt.Sprint(b.HBRCallsPerInstance) })
	row("  ratio vs naive", "1", func(b Burst) string { return fmt.Sprint(b.HBRCallsRatioVsNaive) })
	row("InstallBackupClients calls", fmt.Sprint(d.Naive.InstallCalls), func(b Burst) string { return fmt.Sprint(b.InstallCalls) })
	row("DescribeBackupClients calls", "0", func(b Burst) string { return fmt.Sprint(b.Calls["hbr.DescribeBackupClients"]) })
	row("tasks (instances per task)", "-", func(b Burst) string { return fmt.Sprintf("%d (%.1f)", b.Tasks, b.InstancesPerTask) })
	row("DescribeTask calls", fmt.Sprint(d.Naive.DescribeCalls), func(b Burst) string { return fmt.Sprint(b.DescribeTaskCalls) })
	row("DescribeTask schedule minimum", "-", func(b Burst) string { return fmt.Sprint(b.DescribeTaskMinimum) })
	row("  ratio vs minimum", "-", func(b Burst) string { return fmt.Sprint(b.DescribeTaskRatio) })
	row("MNS sends per instance", "0", func(b Burst) string { return fmt.Sprint(b.MNSSendsPerInstance) })
	row("FC invocations per instance", "-", func(b Burst) string { return fmt.Sprint(b.InvocationsPer) })
	row("processes install / poller (peak concurrency)", "-", func(b Burst) string {
		return fmt.Sprintf("%d / %d", b.Processes["install"], b.Processes["poller"])
	})
	row("CPU: this run mean / p90 of the machine", "-", func(b Burst) string {
		return fmt.Sprintf("%.0f%% / %.0f%%", 100*b.CPU.OwnMean, 100*b.CPU.OwnP90)
	})
	row("outcome latency p50 / p99 / max", fmt.Sprintf("lag %gs real", d.Naive.DetectionLagSeconds), func(b Burst) string {
		return fmt.Sprintf("%.2f / %.2f / %.2f", b.OutcomeLatency.P50, b.OutcomeLatency.P99, b.OutcomeLatency.Max)
	})
	row("  goal p99 ≤ interval + 2 s", "-", func(b Burst) string { return fmt.Sprint(b.LatencyGoalSeconds) })
	row("acceptance → INSTALLED p50 / p99", "-", func(b Burst) string {
		return fmt.Sprintf("%.2f / %.2f", b.EndToEnd.P50, b.EndToEnd.P99)
	})
	row("  same, real-cloud equivalent", "-", func(b Burst) string {
		return fmt.Sprintf("%.0fs / %.0fs", b.EndToEndReal.P50, b.EndToEndReal.P99)
	})
	row("peak RSS "+strings.Join(localcloud.Functions, " / ")+" (MiB)", "-", func(b Burst) string {
		var parts []string
		for _, fn := range localcloud.Functions {
			parts = append(parts, fmt.Sprintf("%.1f", b.PeakRSSMB[fn]))
		}
		return strings.Join(parts, " / ")
	})
	row("wall time (s)", "-", func(b Burst) string { return fmt.Sprint(b.Seconds) })
	_ = tw.Flush()
	for _, b := range d.Bursts {
		fmt.Fprintf(w, "calls by function, %s:", b.Name)
		for _, fn := range sortedKeys(b.CallsByFunction) {
			fmt.Fprintf(w, " %s %v;", fn, b.CallsByFunction[fn])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "naive: %s\n", d.Naive.Model)
	if m := d.NaiveModel; m != nil {
		fmt.Fprintf(w, "naive model, for comparison: %d HBR calls, %g per installed instance (%s)\n", m.HBRCalls, m.HBRCallsPerInstance, m.Model)
	}
}

// PrintTable writes the chaos result for people.
func (c Chaos) PrintTable(w io.Writer) {
	fmt.Fprintf(w, "%s — %d × %s, %s/%s, %s — %.0f s\n", orDefault(c.Command, "make chaos"), c.Machine.CPUs, c.Machine.CPU,
		c.Machine.GOOS, c.Machine.GOARCH, c.Machine.Go, c.Seconds)
	fmt.Fprintf(w, "scenario: %s, seed %d\n", c.Scenario, c.Seed)
	f := c.Faults
	fmt.Fprintf(w, "faults: HBR 5xx %.0f%%, throttling %.0f%% plus storms of %gs every %gs (90%% throttled), MNS send failures %.0f%% and one outage of %gs (local), duplicate deliveries %.0f%%, "+
		"poller crashes %.0f%% of invocations, install kills after %.0f%% of install calls, clients of other installers on %.0f%% of instances per status, "+
		"%.0f%% failing for good and restarted %gs (real) after their failure\n",
		100*f.HBRServerErrors, 100*f.HBRThrottle, f.StormSeconds, f.StormEverySeconds, 100*f.MNSSendFail, f.OutageSeconds, 100*f.Duplicate,
		100*f.Crash, 100*f.InstallCrash, 100*f.ForeignClients, 100*f.Restarts, f.RestartAfterSeconds)
	fmt.Fprintf(w, "local cloud: API latency %g ms real, up to %d processes per function, %d batches in flight per stream\n\n",
		c.APILatencyMs, c.MaxInstances, c.StreamConcurrency)
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "accepted (job, instance)\t%d\n", c.Accepted)
	fmt.Fprintf(tw, "instances\t%d\n", c.Instances)
	fmt.Fprintf(tw, "events per instance\t%g\n", c.EventsPerInstance)
	fmt.Fprintf(tw, "faults fired\t%v\n", c.FaultsFired)
	var kinds []string
	for k := range c.Outcomes {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(tw, "  %s\t%d\n", k, c.Outcomes[k])
	}
	fmt.Fprintf(tw, "lost (must be 0)\t%d\n", c.Lost)
	fmt.Fprintf(tw, "without a final ledger record (must be 0)\t%d\n", c.WithoutRecord)
	fmt.Fprintf(tw, "duplicated terminal outcomes (must be 0)\t%d\n", c.DuplicatedOutcomes)
	fmt.Fprintf(tw, "forked jobs: same verdict, different reason\t%d\n", c.ForkedOutcomes)
	fmt.Fprintf(tw, "identical repeated outcomes (allowed)\t%d\n", c.RepeatedOutcomes)
	r := c.Restarts
	fmt.Fprintf(tw, "restarts after a failure: superseded / instances (must be all)\t%d / %d (failed %d, restarted %d)\n",
		r.Superseded, r.Instances, r.Failed, r.Restarted)
	for _, status := range sortedKeys(c.ForeignClients) {
		fmt.Fprintf(tw, "  another installer's %s client: ended as\t%v\n", status, c.ForeignClients[status])
	}
	for _, s := range c.ForeignSurprises {
		fmt.Fprintf(tw, "  not as its client's status says\t%s\n", clip(s, 200))
	}
	fmt.Fprintf(tw, "MNS sends failed in the outage\t%d\n", c.OutageFailedSends)
	fmt.Fprintf(tw, "reconcile sweeps (timer-like, after leases passed)\t%d\n", len(c.Sweeps))
	for _, sw := range c.Sweeps {
		fmt.Fprintf(tw, "  at %gs, %d stuck, waited %gs for their leases, queued %d\t%s\n", sw.AtSeconds, sw.Stuck, sw.WaitedSeconds, sw.Queued, strings.Join(sw.Samples, " "))
	}
	fmt.Fprintf(tw, "polled past deadline (must be no)\t%s (%d calls, max overshoot %.0f ms; closest call in time %.0f ms before)\n",
		yesNo(c.PastDeadline), c.PastDeadlineCalls, c.MaxOvershootMs, c.ClosestToDeadlineMs)
	fmt.Fprintf(tw, "longest message chain for one job\t%d (%s)\n", c.LongestChain, c.LongestChainJob)
	fmt.Fprintf(tw, "longest poll chain for one task\t%d\n", c.LongestTaskChain)
	fmt.Fprintf(tw, "dead-lettered\t%d\n", c.DeadLettered)
	fmt.Fprintf(tw, "HBR calls: install / describe\t%d / %d\n", c.Calls["hbr.InstallBackupClients"], c.Calls["hbr.DescribeTask"])
	fmt.Fprintf(tw, "MNS sends\t%d\n", c.Calls["mns.SendMessage"])
	fmt.Fprintf(tw, "FC invocations: install / poller / reconcile\t%d / %d / %d\n", c.Invocations["install"], c.Invocations["poller"], c.Invocations["reconcile"])
	fmt.Fprintf(tw, "processes (peak concurrency): install / poller / reconcile\t%d / %d / %d\n", c.Processes["install"], c.Processes["poller"], c.Processes["reconcile"])
	fmt.Fprintf(tw, "calls by function\t%v\n", c.CallsByFunction)
	fmt.Fprintf(tw, "CPU: this run mean / p90 of the machine; whole machine mean / p90\t%.0f%% / %.0f%%; %.0f%% / %.0f%%\n",
		100*c.CPU.OwnMean, 100*c.CPU.OwnP90, 100*c.CPU.BusyMean, 100*c.CPU.BusyP90)
	fmt.Fprintf(tw, "function errors logged\t%d\n", c.Errors)
	fmt.Fprintf(tw, "settled\t%s (last outcome at %gs)\n", yesNo(c.Settled), c.LastOutcomeSeconds)
	_ = tw.Flush()
	for _, e := range c.ConflictSamples {
		fmt.Fprintf(w, "  %s\n", e)
	}
	for _, e := range c.Restarts.Problems {
		fmt.Fprintf(w, "  restart problem: %s\n", e)
	}
	for _, e := range c.DeadLetters {
		fmt.Fprintf(w, "  dead letter: %s\n", e)
	}
	for _, e := range c.ErrorSamples {
		fmt.Fprintf(w, "  error sample: %s\n", e)
	}
	verdict := "PASS"
	if !c.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "\n%s\n", verdict)
}

func formatTiming(t map[string]float64) string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%g", k, t[k]))
	}
	return strings.Join(parts, " ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
