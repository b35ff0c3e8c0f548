package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// ScalingRow is the launch world at one size: what an instance costs and how
// long it waits, so that sizes compare. Latencies are real-cloud seconds
// (local ones multiplied by the scale).
type ScalingRow struct {
	Instances int `json:"instances"`
	// P50RealS and P99RealS run from an instance's first Running event to
	// its first outcome record.
	P50RealS float64 `json:"p50_real_s"`
	P99RealS float64 `json:"p99_real_s"`
	// HBRCallsPerInstance is every HBR call per instance installed;
	// MNSSendsPerInstance and InvocationsPerInstance (every function's
	// invocations) and OutcomeRecordsPerInstance per distinct instance.
	HBRCallsPerInstance       float64 `json:"hbr_calls_per_instance"`
	MNSSendsPerInstance       float64 `json:"mns_sends_per_instance"`
	InvocationsPerInstance    float64 `json:"invocations_per_instance"`
	OutcomeRecordsPerInstance float64 `json:"outcome_records_per_instance"`
	// Conflicting counts record pairs of one instance that disagree with
	// neither superseding the other; Lost accepted instances with no
	// outcome; WithoutRecord accepted instances with no final ledger
	// record.
	Conflicting   int `json:"conflicting"`
	Lost          int `json:"lost"`
	WithoutRecord int `json:"without_record"`
	// DescribeTaskRatioVsMinimum is DescribeTask calls ÷ the schedule's
	// minimum for the tasks' lengths.
	DescribeTaskRatioVsMinimum float64 `json:"describe_task_ratio_vs_minimum"`
	// InstancesPerTask is how full the InstallBackupClients calls were.
	InstancesPerTask float64 `json:"instances_per_task"`
	// Processes is each function's peak concurrency; CPU how busy the
	// machine was (a busy share near 1 means the machine, not the system,
	// set the pace).
	Processes map[string]int `json:"processes"`
	CPU       CPU            `json:"cpu"`
	Seconds   float64        `json:"seconds"`
}

func scalingRow(b Burst) ScalingRow {
	return ScalingRow{
		Instances: b.Instances, P50RealS: round(b.RunningToOutcomeReal.P50, 1), P99RealS: round(b.RunningToOutcomeReal.P99, 1),
		HBRCallsPerInstance: b.HBRCallsPerInstance, MNSSendsPerInstance: b.MNSSendsPerInstance,
		InvocationsPerInstance: b.InvocationsPer, OutcomeRecordsPerInstance: b.OutcomeRecordsPerInstance,
		Conflicting: b.Conflicts, Lost: b.Lost, WithoutRecord: b.WithoutRecord,
		DescribeTaskRatioVsMinimum: b.DescribeTaskRatio, InstancesPerTask: b.InstancesPerTask,
		Processes: b.Processes, CPU: b.CPU, Seconds: b.Seconds,
	}
}

// Goals at the largest size of the scaling table (issue 17), when it is
// larger than the first.
const (
	// LatencyGrowthLimit bounds the largest size's p99 against the first's.
	LatencyGrowthLimit = 1.10
	// ScaledP99Limit bounds the largest size's p99 (real seconds).
	ScaledP99Limit = 300
	// ScaledHBRCallsLimit bounds the largest size's HBR calls per instance.
	ScaledHBRCallsLimit = 1.0
)

// scalingGoals checks the largest row against the first: the latency may
// grow by 10 % at most, and the economy and correctness must hold.
func scalingGoals(rows []ScalingRow) []Goal {
	if len(rows) < 2 {
		return nil
	}
	first, last := rows[0], rows[len(rows)-1]
	n := fmt.Sprintf("_%d", last.Instances)
	growth := ratio(last.P99RealS, first.P99RealS)
	return []Goal{
		goal("running_to_outcome_p99_growth"+n, growth, LatencyGrowthLimit, "×",
			fmt.Sprintf("Running → outcome p99 at %d (%.1f s) / at %d (%.1f s), real", last.Instances, last.P99RealS, first.Instances, first.P99RealS)),
		goal("running_to_outcome_p99_real_seconds"+n, last.P99RealS, ScaledP99Limit, "s", "first Running event → first outcome record, × scale"),
		goal("conflicting"+n, float64(last.Conflicting), 0, "", "record pairs of one instance that disagree, neither superseding the other"),
		goal("lost"+n, float64(last.Lost+last.WithoutRecord), 0, "", "accepted instances with no outcome, or no final ledger record"),
		between("outcome_records_per_instance"+n, last.OutcomeRecordsPerInstance, 1, 1, "×", "outcome records / distinct instances"),
		goal("hbr_calls_per_instance"+n, last.HBRCallsPerInstance, ScaledHBRCallsLimit, "", "every HBR call / instances installed"),
		between("describe_task_ratio_vs_minimum"+n, last.DescribeTaskRatioVsMinimum, 0.9, 1.1, "×", "DescribeTask calls / the schedule's minimum for the tasks' lengths"),
	}
}

// between is a goal with a lower and an upper bound.
func between(name string, value, low, high float64, unit, note string) Goal {
	return Goal{Name: name, Value: round(value, 3), Low: low, Limit: high, Unit: unit, Met: value >= low && value <= high, Note: note}
}

// printScaling writes the scaling table, one column per size.
func printScaling(w io.Writer, rows []ScalingRow, scale float64) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nScaling (the launch world at each size, same scale 1:%g, latency and settings; latencies real seconds)\n", scale)
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', tabwriter.AlignRight)
	line := func(label string, f func(r ScalingRow) string) {
		s := label + "\t"
		for _, r := range rows {
			s += f(r) + "\t"
		}
		fmt.Fprintln(tw, s)
	}
	line("instances", func(r ScalingRow) string { return fmt.Sprint(r.Instances) })
	line("Running → outcome p50 / p99 (real s)", func(r ScalingRow) string { return fmt.Sprintf("%g / %g", r.P50RealS, r.P99RealS) })
	line("HBR calls per instance", func(r ScalingRow) string { return fmt.Sprint(r.HBRCallsPerInstance) })
	line("MNS sends per instance", func(r ScalingRow) string { return fmt.Sprint(r.MNSSendsPerInstance) })
	line("FC invocations per instance", func(r ScalingRow) string { return fmt.Sprint(r.InvocationsPerInstance) })
	line("outcome records per instance", func(r ScalingRow) string { return fmt.Sprint(r.OutcomeRecordsPerInstance) })
	line("conflicting / lost / without record", func(r ScalingRow) string {
		return fmt.Sprintf("%d / %d / %d", r.Conflicting, r.Lost, r.WithoutRecord)
	})
	line("DescribeTask ÷ schedule minimum", func(r ScalingRow) string { return fmt.Sprint(r.DescribeTaskRatioVsMinimum) })
	line("instances per install task", func(r ScalingRow) string { return fmt.Sprint(r.InstancesPerTask) })
	line("processes install / poller", func(r ScalingRow) string {
		return fmt.Sprintf("%d / %d", r.Processes["install"], r.Processes["poller"])
	})
	line("CPU, this run: mean / p90 of the machine", func(r ScalingRow) string {
		return fmt.Sprintf("%.0f%% / %.0f%%", 100*r.CPU.OwnMean, 100*r.CPU.OwnP90)
	})
	line("CPU, whole machine: mean / p90 (≥ 90 %)", func(r ScalingRow) string {
		return fmt.Sprintf("%.0f%% / %.0f%% (%.0f%%)", 100*r.CPU.BusyMean, 100*r.CPU.BusyP90, 100*r.CPU.SaturatedShare)
	})
	line("wall time (s)", func(r ScalingRow) string { return fmt.Sprint(r.Seconds) })
	_ = tw.Flush()
}
