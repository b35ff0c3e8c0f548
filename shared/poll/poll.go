// Package poll is the poller's step: it watches install tasks. For each poll
// message it asks HBR how the task is going (DescribeTask) and decides, per
// instance, between a final outcome, another poll after the interval (never
// past the job's deadline), and a reinstall, which it hands back to the
// install function as an install-retry message on the install queue: the
// poller never installs. Outcomes whose client is ACTIVATED are then bound
// to their backup policy (bind.go); a binding that fails transiently goes
// on in a bind message.
//
// Like package install, it sends and logs nothing and returns no error:
// transient failures become delayed copies of the message.
package poll

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fanout"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/protect"
)

// Client statuses DescribeTask reports per instance.
const (
	StatusActivated     = "ACTIVATED"
	StatusInstallFailed = "INSTALL_FAILED"
	StatusDeactivated   = "DEACTIVATED"
	StatusUnknown       = "UNKNOWN"
)

// TaskReader reads install tasks (hbr.Client satisfies it).
type TaskReader interface {
	DescribeTask(ctx context.Context, taskID string) (hbr.Task, error)
}

// Service runs the poll step.
type Service struct {
	// Tasks returns the task reader for a region. Handle polls several
	// tasks at once, so the reader, and the Install service's clients,
	// must be safe for concurrent use.
	Tasks func(ctx context.Context, region string) (TaskReader, error)
	// Parallel bounds the tasks polled at once (fanout.DefaultWorkers for
	// 0).
	Parallel int
	// Install is the install step's service, for its policy and its
	// client checks (Confirm); the poll step never installs with it.
	Install *install.Service
	// Protect binds instances whose client is ACTIVATED to their backup
	// policy; nil, or with no policy configured, leaves their records as
	// they are.
	Protect *protect.Service
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) policy() install.Policy { return s.Install.Policy }

// Handle processes the poll and bind messages of one invocation (other
// kinds are the caller's: install-retry messages belong to the install
// queue). A message delivered twice in one batch is handled once.
func (s *Service) Handle(ctx context.Context, msgs []job.Message) install.Result {
	var res install.Result
	seen := map[string]bool{}
	deadline := map[string]time.Time{}
	binds := map[string][]job.Message{}
	var polls []job.Message
	for _, m := range msgs {
		k := key(m)
		if seen[k] {
			continue // the same message twice in one batch
		}
		seen[k] = true
		switch m.Kind {
		case job.KindBind:
			binds[m.Region] = append(binds[m.Region], m)
		case job.KindPoll:
			for _, in := range m.Instances {
				deadline[in.JobID+"/"+in.ID] = m.Deadline
			}
			polls = append(polls, m)
		}
	}
	// Each task is polled on its own: a batch of tasks waits for its
	// slowest DescribeTask, not for the sum of them (the HBR clients are
	// lent one per call, see Tasks).
	each := make([]install.Result, len(polls))
	fanout.Each(len(polls), s.Parallel, func(i int) { each[i] = s.poll(ctx, polls[i]) })
	for _, r := range each {
		res.Merge(r)
	}
	res = s.bind(ctx, res, deadline)
	for _, region := range slices.Sorted(maps.Keys(binds)) {
		var recs []pending
		retries := 0
		for _, m := range binds[region] {
			for _, in := range m.Instances {
				recs = append(recs, pending{rec: installedRecord(region, in), by: in.ReadyBy})
			}
			retries = max(retries, m.Retries)
		}
		res.Merge(s.protect(ctx, region, recs, retries))
	}
	return res
}

// Bind binds the records of res whose client is ACTIVATED to their backup
// policy (see bind); for outcomes decided outside Handle, such as the
// install function's ALREADY_INSTALLED.
func (s *Service) Bind(ctx context.Context, res install.Result) install.Result {
	return s.bind(ctx, res, nil)
}

func key(m job.Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%s|%d|%d|%d", m.Kind, m.Region, m.TaskID, m.PollCount, m.Retries, m.SentAt.UnixNano())
	for _, in := range m.Instances {
		b.WriteString("|" + in.JobID + "/" + in.ID)
	}
	return b.String()
}

// poll handles one poll message. Non-success verdicts go through
// install.Service.Confirm before they are recorded (the client may be
// ACTIVATED after all); instances to install again go back to the install
// function in an install-retry message.
func (s *Service) poll(ctx context.Context, m job.Message) install.Result {
	var res install.Result
	now := s.now()
	var fails []install.Verdict
	fail := func(in job.Instance, r outcome.Record) {
		fails = append(fails, install.Verdict{Instance: in, Record: r})
	}
	if !now.Before(m.Deadline) {
		for _, in := range m.Instances {
			fail(in, install.Record(m.Region, in, outcome.Timeout, install.CodeDeadline,
				fmt.Sprintf("task %s did not finish before the job deadline", m.TaskID), m.TaskID, ""))
		}
		return s.settle(ctx, m, res, fails, nil, nil, now)
	}
	tasks, err := s.Tasks(ctx, m.Region)
	var task hbr.Task
	if err == nil {
		task, err = tasks.DescribeTask(ctx, m.TaskID)
	}
	if err != nil {
		code := fault.CodeOf(err)
		if fault.Is(err, fault.Retryable) || fault.IsContext(err) {
			next := m
			next.Retries++
			next.LastError = orDefault(code, "TransientError")
			next.SentAt = now
			delay := s.Install.Policy.Backoff(next.Retries)
			if s.Install.Jitter != nil {
				delay = s.Install.Jitter(delay)
			}
			res.Next = append(res.Next, install.Next{Message: next, Delay: clampToDeadline(delay, m.Deadline, now)})
			return res
		}
		// A permanent error (task unknown, access denied): the task cannot be
		// followed; install again if attempts remain.
		var again []job.Instance
		for _, in := range m.Instances {
			r, ok := s.retryOrFail(m, in, orDefault(code, "DescribeTaskFailed"), "DescribeTask failed: "+orDefault(code, "unknown error"))
			if ok {
				again = append(again, r.instance)
			} else {
				r.record.Detail = err.Error()
				fail(in, r.record)
			}
		}
		return s.settle(ctx, m, res, fails, nil, again, now)
	}

	results := map[string]hbr.ClientResult{}
	for _, r := range task.Results {
		results[r.InstanceID] = r
	}
	state := strings.ToLower(task.Description)
	var again, still []job.Instance
	for _, in := range m.Instances {
		r, listed := results[in.ID]
		status := strings.ToUpper(r.ClientStatus)
		if status == StatusActivated {
			res.Outcomes = append(res.Outcomes, install.Record(m.Region, in, outcome.Installed, "",
				"backup client activated", m.TaskID, r.ClientID))
			continue
		}
		// An expired or cancelled task ends every instance it did not
		// activate with that reason, whatever their interim status.
		switch state {
		case "expired":
			fail(in, install.Record(m.Region, in, outcome.Timeout, "TaskExpired",
				fmt.Sprintf("install task %s expired", m.TaskID), m.TaskID, r.ClientID))
			continue
		case "cancelled", "canceled":
			fail(in, install.Record(m.Region, in, outcome.Cancelled, "TaskCancelled",
				fmt.Sprintf("install task %s was cancelled", m.TaskID), m.TaskID, r.ClientID))
			continue
		}
		var code, why string
		switch {
		case status == StatusInstallFailed || status == StatusDeactivated || status == StatusUnknown:
			code = orDefault(r.ErrorCode, status)
			why = fmt.Sprintf("client status %s (%s)", status, code)
		case !task.Done():
			still = append(still, in)
			continue
		case listed && status != "":
			// Finished (or failed, Progress -1) with a status that is no verdict.
			code = orDefault(r.ErrorCode, status)
			why = fmt.Sprintf("task %s ended (%s) with client status %s", m.TaskID, orDefault(state, "unknown state"), status)
		default:
			code = "NoResult"
			why = fmt.Sprintf("task %s ended (%s) without a result for the instance", m.TaskID, orDefault(state, "unknown state"))
		}
		d, ok := s.retryOrFail(m, in, code, why)
		if ok {
			again = append(again, d.instance)
		} else {
			fail(in, d.record)
		}
	}
	return s.settle(ctx, m, res, fails, still, again, now)
}

// settle confirms the message's failure verdicts (see install.Confirm),
// polls again, after the interval and never past the deadline, for the
// instances still installing (those of the task, and those whose verdict
// waits for another task installing their client), and hands the
// instances to install again to the install function. Past the deadline
// there is no waiting: the verdict stands.
func (s *Service) settle(ctx context.Context, m job.Message, res install.Result, fails []install.Verdict, still, again []job.Instance, now time.Time) install.Result {
	final, busy := s.Install.Confirm(ctx, m.Region, fails)
	res.Outcomes = append(res.Outcomes, final...)
	for _, v := range busy {
		if !now.Before(m.Deadline) {
			res.Outcomes = append(res.Outcomes, v.Record)
			continue
		}
		still = append(still, v.Instance)
	}
	if len(still) > 0 {
		next := m
		next.Instances = still
		next.PollCount++
		next.Retries = 0
		next.LastError = ""
		next.SentAt = now
		res.Next = append(res.Next, install.Next{Message: next, Delay: clampToDeadline(s.nextPoll(m.TaskStartedAt, now), m.Deadline, now)})
	}
	for _, part := range job.Chunk(again, job.MaxInstances) {
		by := part[0].ReadyBy
		for _, in := range part {
			if in.ReadyBy.After(by) {
				by = in.ReadyBy
			}
		}
		res.Next = append(res.Next, install.Next{Message: job.Message{Version: job.Version, Kind: job.KindInstallRetry,
			Region: m.Region, Deadline: by, OriginEventID: part[0].OriginEventID, LastError: part[0].LastCode,
			Instances: part, SentAt: now}, Delay: time.Second})
	}
	return res
}

// nextPoll is the delay to a task's next poll. Polls keep to the task's
// own grid, FirstPollDelay after it started and every PollInterval after
// that, rather than PollInterval after this poll: the queue's delivery
// and the batch window add a few seconds to every poll, which would
// otherwise add up over a task's life (a 3-minute task would be polled
// less often than the schedule says and its outcome seen later). The next
// grid point at least half an interval away is taken, so a poll that ran
// late never makes the next one follow in a burst. A message without the
// task's start (from an older version) waits PollInterval.
func (s *Service) nextPoll(started, now time.Time) time.Duration {
	p := s.policy()
	if started.IsZero() || p.PollInterval <= 0 {
		return p.PollInterval
	}
	first := started.Add(p.FirstPollDelay)
	earliest := now.Add(p.PollInterval / 2)
	if !first.Before(earliest) {
		return first.Sub(now)
	}
	k := (earliest.Sub(first) + p.PollInterval - 1) / p.PollInterval
	return first.Add(k * p.PollInterval).Sub(now)
}

type decision struct {
	instance job.Instance
	record   outcome.Record
}

// retryOrFail installs again while attempts remain, else ends the instance as
// FAILED with code. A reinstall gets a fresh readiness window.
func (s *Service) retryOrFail(m job.Message, in job.Instance, code, why string) (decision, bool) {
	if in.Attempts < s.policy().MaxAttempts {
		in.LastCode = code
		in.NotReady = 0
		in.ReadyBy = s.now().Add(s.policy().ReadinessTimeout)
		return decision{instance: in}, true
	}
	return decision{record: install.Record(m.Region, in, outcome.Failed, code,
		fmt.Sprintf("install failed after %d attempt(s): %s", in.Attempts, why), m.TaskID, "")}, false
}

// clampToDeadline keeps a delay from carrying a message past its deadline
// (a message delivered at or after the deadline ends its instances with
// TIMEOUT without calling DescribeTask).
func clampToDeadline(d time.Duration, deadline, now time.Time) time.Duration {
	left := deadline.Sub(now)
	if d > left {
		d = left
	}
	return max(d, time.Second)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
