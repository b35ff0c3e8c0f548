package install

import (
	"fmt"
	"sort"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
)

// expired is the outcome of an instance whose readiness deadline passed.
func (s *Service) expired(region string, in job.Instance) outcome.Record {
	if in.LastCode == CodeInstanceNotFound {
		return record(region, in, outcome.Gone, in.LastCode, "ECS does not list the instance", "")
	}
	if in.LastCode == CodeClientInstalling {
		// The same decision the installing task's own chain reaches at its
		// deadline, so that two copies of one job agree.
		return record(region, in, outcome.Timeout, CodeDeadline,
			"another install of the backup client was still running at the deadline", "")
	}
	if waitingOnClient(in.LastCode) {
		return record(region, in, outcome.Timeout, in.LastCode,
			fmt.Sprintf("the backup client did not settle (%s) by the deadline", in.LastCode), "")
	}
	if isNotReadyCode(in.LastCode) || (in.LastCode == "" && in.NotReady > 0) {
		return record(region, in, outcome.NotReady, in.LastCode,
			fmt.Sprintf("instance not ready (%s) by the readiness deadline", orUnknown(in.LastCode)), "")
	}
	// The transient failures may be any call of the chain before or at
	// the install (ECS's readiness check, DescribeBackupClients, the
	// ledger, InstallBackupClients): the reason does not name one it cannot
	// know; the code says which error it was.
	return record(region, in, outcome.Failed, in.LastCode,
		fmt.Sprintf("the install's calls kept failing with transient errors (%s) until the readiness deadline", orUnknown(in.LastCode)), "")
}

// wait schedules another look at each instance after the growing readiness
// delay (not ready yet, or another install running), or ends it once its
// readiness deadline has passed (NOT_READY, or TIMEOUT for an install that
// never finished).
func (s *Service) wait(region string, instances []job.Instance, code string, now time.Time) Result {
	var res Result
	byDelay := map[time.Duration][]job.Instance{}
	for _, in := range instances {
		if code == CodeAttemptInProgress {
			// Another delivery holds the attempt: its task, or its intent
			// going stale, decides; the readiness window must not end the
			// wait first.
			in.ReadyBy = later(in.ReadyBy, now.Add(2*max(s.Policy.ReadinessDelay, time.Second)))
		} else {
			in.NotReady++
		}
		in.LastCode = code
		left := in.ReadyBy.Sub(now)
		if left <= 0 {
			res.Outcomes = append(res.Outcomes, s.expired(region, in))
			continue
		}
		d := min(s.Policy.Align(now, s.Policy.ReadinessWait(in.NotReady)), left)
		d = max(d.Round(time.Second), time.Second)
		byDelay[d] = append(byDelay[d], in)
	}
	for _, d := range sortedKeys(byDelay) {
		for _, ch := range job.Chunk(byDelay[d], job.MaxInstances) {
			res.Next = append(res.Next, s.retryMessage(region, ch, 0, code, d, now))
		}
	}
	return res
}

// transient re-schedules instances after a retryable failure, with back-off,
// bounded by each instance's readiness deadline.
func (s *Service) transient(region string, instances []job.Instance, retries int, code string, now time.Time) Result {
	var res Result
	if code == "" {
		code = "TransientError"
	}
	d := s.Policy.Backoff(retries)
	if s.Jitter != nil {
		d = s.Jitter(d)
	}
	d = s.Policy.Align(now, d)
	var keep []job.Instance
	for _, in := range instances {
		in.LastCode = code
		if !now.Before(in.ReadyBy) {
			res.Outcomes = append(res.Outcomes, s.expired(region, in))
			continue
		}
		keep = append(keep, in)
	}
	if len(keep) > 0 {
		d = max(min(d, untilEarliest(keep, now)), time.Second)
		for _, ch := range job.Chunk(keep, job.MaxInstances) {
			res.Next = append(res.Next, s.retryMessage(region, ch, retries, code, d, now))
		}
	}
	return res
}

func (s *Service) retryMessage(region string, instances []job.Instance, retries int, code string, delay time.Duration, now time.Time) Next {
	deadline := instances[0].ReadyBy
	for _, in := range instances {
		if in.ReadyBy.After(deadline) {
			deadline = in.ReadyBy
		}
	}
	return Next{
		Message: job.Message{
			Version:       job.Version,
			Kind:          job.KindInstallRetry,
			Region:        region,
			Retries:       retries,
			Deadline:      deadline,
			OriginEventID: instances[0].OriginEventID,
			LastError:     code,
			Instances:     instances,
			SentAt:        now,
		},
		Delay: delay,
	}
}

// untilEarliest is the time left until the earliest readiness deadline (at
// least one second, so a retry still happens right at the deadline).
func untilEarliest(instances []job.Instance, now time.Time) time.Duration {
	d := time.Duration(1<<63 - 1)
	for _, in := range instances {
		d = min(d, in.ReadyBy.Sub(now))
	}
	return max(d, time.Second)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func sortedKeys(m map[time.Duration][]job.Instance) []time.Duration {
	keys := make([]time.Duration, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}
