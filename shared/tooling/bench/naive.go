package bench

import (
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
)

// The naive policy is what the Terraform provider (alicloud_hbr_ecs_backup_client)
// does, applied to every instance on its own, modelled from each instance's
// facts rather than run:
//
//   - InstallBackupClients is called for one instance at a time, as soon as
//     the instance is announced; while Cloud Assistant is not up the call
//     fails and is retried after 30 s, then 10 s longer each time (30 s,
//     40 s, 50 s, …), within Terraform's 5-minute create timeout;
//   - once a task is created, DescribeTask is called every 5 s, the first
//     time 5 s after the install, until the task ends: ceil(d / 5 s) calls
//     (at least one) for a task lasting d;
//   - an instance whose install fails is installed again as a new attempt
//     (one call and its polls) up to the same number of attempts as ours;
//   - a gone instance costs its one failing call.
//
// The model counts calls only; it sends no messages and runs no functions.
const (
	naivePoll         = 5 * time.Second
	naiveReadyFirst   = 30 * time.Second
	naiveReadyStep    = 10 * time.Second
	naiveCreateBudget = 5 * time.Minute
)

// Naive is the naive policy's cost for a scenario, in real-cloud terms.
type Naive struct {
	InstallCalls  int `json:"install_calls"`
	DescribeCalls int `json:"describe_task_calls"`
	HBRCalls      int `json:"hbr_calls"`
	Installed     int `json:"installed"`
	// HBRCallsPerInstance is per installed instance.
	HBRCallsPerInstance float64 `json:"hbr_calls_per_instance"`
	// DetectionLagSeconds is the mean time from a task's end to the poll
	// that sees it (real-cloud seconds).
	DetectionLagSeconds float64 `json:"detection_lag_seconds"`
	Model               string  `json:"model"`
}

// naiveCost models the naive policy for instances with the given behaviours
// (local time, converted back to real-cloud terms with s). maxAttempts is the
// number of install attempts allowed per instance.
func naiveCost(behaviors map[string]hbrsim.Behavior, s Scale, maxAttempts int) Naive {
	n := Naive{Model: "per instance: InstallBackupClients alone, retried after 30 s, +10 s each time while not ready (5 min budget); then DescribeTask every 5 s until the task ends; one more attempt per failed install"}
	var lag time.Duration
	tasks := 0
	for _, b := range behaviors {
		if b.Gone {
			n.InstallCalls++
			continue
		}
		// Readiness: call at t = 0, 30 s, 70 s, 120 s, … until ready.
		ready := s.Real(b.ReadyAfter)
		t, wait := time.Duration(0), naiveReadyFirst
		n.InstallCalls++
		for t < ready && t+wait <= naiveCreateBudget {
			t += wait
			wait += naiveReadyStep
			n.InstallCalls++
		}
		if t < ready {
			continue // never ready within the budget
		}
		attempts := min(1+b.FailInstalls, max(maxAttempts, 1))
		d := s.Real(b.InstallDuration)
		polls := max(1, int((d+naivePoll-1)/naivePoll))
		for a := 0; a < attempts; a++ {
			if a > 0 {
				n.InstallCalls++
			}
			n.DescribeCalls += polls
			lag += time.Duration(polls)*naivePoll - d
			tasks++
		}
		if b.TaskEnd == "" && b.FailInstalls < attempts {
			n.Installed++
		}
	}
	n.HBRCalls = n.InstallCalls + n.DescribeCalls
	n.HBRCallsPerInstance = ratio(float64(n.HBRCalls), float64(n.Installed))
	if tasks > 0 {
		n.DetectionLagSeconds = round((lag / time.Duration(tasks)).Seconds(), 2)
	}
	return n
}
