package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ecssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/fcsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/osssim"
)

// ColdStart is one binary's cold start: medians over Runs fresh processes.
type ColdStart struct {
	Runs int `json:"runs"`
	// NextMs runs from process start to its first GET /next: the init the
	// platform waits for before it can hand over the event.
	NextMs float64 `json:"first_next_ms"`
	// AnswerMs runs from process start to the answer to the first event
	// (init, lazy client set-up and the handler's own cloud calls).
	AnswerMs float64 `json:"first_answer_ms"`
	// NextRatio and AnswerRatio compare the medians with the minimal binary's.
	NextRatio   float64 `json:"first_next_ratio"`
	AnswerRatio float64 `json:"first_answer_ratio"`
}

// ColdConfig configures MeasureColdStart.
type ColdConfig struct {
	// Binaries maps every function of localcloud.Functions and Minimal to
	// compiled binaries.
	Binaries map[string]string
	// ModuleDir is the module root (for events/instance-running.json).
	ModuleDir string
	// Runs per binary (at least 9 is sensible); default 11.
	Runs int
}

// coldCreds are the credentials the emulators accept and the functions get.
func coldCreds() cloudauth.Credentials {
	return cloudauth.Credentials{AccessKeyID: "LTAI5tBenchColdStart", AccessKeySecret: "bench-cold-secret", SecurityToken: "bench-cold-token"}
}

// coldInstance is the instance of the poller's sample message; it is in the
// install sample event too.
const coldInstance = "i-bp1demo0000000000001"

// MeasureColdStart starts each binary Runs times under the FC runtime
// emulator, interleaved (minimal, then each function, then rotated) so
// machine noise hits all alike, and times each process's first GET /next and
// its answer to a sample event: events/instance-running.json for install
// (with a new instance id each run) and minimal, a poll message for a
// finished task for poller, {"dryRun":true} for reconcile (one instance in
// ECS), {} for a function it does not know (any answer accepted). The
// functions call HBR, ECS and MNS emulators started once for the whole
// measurement. One unrecorded warm-up run per binary fills the page cache
// first.
func MeasureColdStart(ctx context.Context, cfg ColdConfig) (map[string]ColdStart, error) {
	if cfg.Runs <= 0 {
		cfg.Runs = 11
	}
	names := append([]string{Minimal, SDKBaseline}, localcloud.Functions...)
	for _, n := range names {
		if cfg.Binaries[n] == "" {
			return nil, fmt.Errorf("cold start: no binary for %s", n)
		}
	}
	creds := coldCreds()
	hbrSim := hbrsim.New(hbrsim.Options{AccessKeyID: creds.AccessKeyID, AccessKeySecret: creds.AccessKeySecret, SecurityToken: creds.SecurityToken})
	hbrURL, err := hbrSim.Start()
	if err != nil {
		return nil, fmt.Errorf("cold start: start HBR emulator: %w", err)
	}
	defer hbrSim.Close()
	ecsSim := ecssim.New(ecssim.Options{AccessKeyID: creds.AccessKeyID, AccessKeySecret: creds.AccessKeySecret, SecurityToken: creds.SecurityToken})
	ecsSim.SetInstance(ecssim.Instance{ID: coldInstance})
	ecsURL, err := ecsSim.Start()
	if err != nil {
		return nil, fmt.Errorf("cold start: start ECS emulator: %w", err)
	}
	defer ecsSim.Close()
	mnsSim := mnssim.New(mnssim.Options{AccessKeyID: creds.AccessKeyID, AccessKeySecret: creds.AccessKeySecret, SecurityToken: creds.SecurityToken})
	mnsSim.CreateQueue("bench-jobs")
	mnsURL, err := mnsSim.Start()
	if err != nil {
		return nil, fmt.Errorf("cold start: start MNS emulator: %w", err)
	}
	defer mnsSim.Close()
	ossSim := osssim.New(osssim.Options{Principals: callers.Set{{Name: "bench", Credentials: creds}}})
	ossSim.CreateBucket("bench-ledger")
	ossURL, err := ossSim.Start()
	if err != nil {
		return nil, fmt.Errorf("cold start: start OSS emulator: %w", err)
	}
	defer ossSim.Close()
	env := map[string]string{
		"QUEUE_NAME": "bench-jobs", "MNS_ENDPOINT": mnsURL, "HBR_ENDPOINT": hbrURL, "ECS_ENDPOINT": ecsURL,
		"OSS_ENDPOINT": ossURL, "LEDGER_BUCKET": "bench-ledger", "API_TIMEOUT": "5s", "LOG_LEVEL": "info",
	}

	running, err := os.ReadFile(filepath.Join(cfg.ModuleDir, "events", "instance-running.json"))
	if err != nil {
		return nil, fmt.Errorf("cold start: %w", err)
	}
	// Each install run gets the sample event for an instance never seen
	// before, so that it takes the whole path (no client yet → install →
	// poll message) rather than finding the client of an earlier run.
	fresh := func(run int) []byte {
		return bytes.ReplaceAll(running, []byte(coldInstance), []byte(fmt.Sprintf("i-bp1coldstart%07d", run+1)))
	}
	pollSample, err := finishedTaskEvent(ctx, hbrURL, time.Now())
	if err != nil {
		return nil, fmt.Errorf("cold start: %w", err)
	}
	same := func(p []byte) func(int) []byte { return func(int) []byte { return p } }
	samples := map[string]sample{
		Minimal:     {payload: same(running), check: func(b []byte) error { return expectJSON(b, `"ok"`) }},
		SDKBaseline: {payload: same(running), check: func(b []byte) error { return expectJSON(b, `"ok"`) }},
		"install":   {payload: fresh, check: installQueuedOne},
		"poller":    {payload: same(pollSample), check: pollerInstalledOne},
		"reconcile": {payload: same([]byte(`{"dryRun":true}`)), check: reconcileListedOne},
	}

	next := map[string][]time.Duration{}
	answer := map[string][]time.Duration{}
	for r := -1; r < cfg.Runs; r++ {
		for i := range names {
			name := names[(i+max(r, 0))%len(names)]
			s, ok := samples[name]
			if !ok {
				s = sample{payload: same([]byte(`{}`)), anyAnswer: true}
			}
			n, a, err := coldRun(ctx, name, cfg.Binaries[name], env, s, r+1)
			if err != nil {
				return nil, err
			}
			if r >= 0 { // r == -1 is the warm-up
				next[name] = append(next[name], n)
				answer[name] = append(answer[name], a)
			}
		}
	}
	out := map[string]ColdStart{}
	base := ColdStart{NextMs: ms(median(next[Minimal])), AnswerMs: ms(median(answer[Minimal]))}
	for _, name := range names {
		c := ColdStart{Runs: cfg.Runs, NextMs: ms(median(next[name])), AnswerMs: ms(median(answer[name]))}
		c.NextRatio, c.AnswerRatio = ratio(c.NextMs, base.NextMs), ratio(c.AnswerMs, base.AnswerMs)
		out[name] = c
	}
	return out, nil
}

// sample is what one binary is invoked with and how its answer is checked.
type sample struct {
	payload func(run int) []byte
	check   func(answer []byte) error
	// anyAnswer accepts a function error too (an unknown function).
	anyAnswer bool
}

// coldRun starts one fresh process, invokes it once and times it.
func coldRun(ctx context.Context, name, bin string, env map[string]string, s sample, run int) (next, answer time.Duration, err error) {
	f, err := fcsim.Start(ctx, fcsim.Config{
		Name: "bench-" + name, Binary: bin, Env: env, Timeout: 10 * time.Second,
		Credentials: coldCreds(), MaxInstances: 1,
	})
	if err != nil {
		return 0, 0, fmt.Errorf("cold start of %s: %w", name, err)
	}
	defer f.Close()
	res, err := f.Invoke(ctx, s.payload(run), fcsim.InvokeOptions{})
	answered := time.Now()
	if err != nil {
		return 0, 0, fmt.Errorf("cold start of %s: invoke: %w", name, err)
	}
	if res.Err != nil && !s.anyAnswer {
		return 0, 0, fmt.Errorf("cold start of %s: the function failed: %w", name, res.Err)
	}
	if s.check == nil {
		s.check = func([]byte) error { return nil }
	}
	if err := s.check(res.Body); err != nil {
		return 0, 0, fmt.Errorf("cold start of %s: unexpected answer %s: %w", name, res.Body, err)
	}
	ins := f.Instances()
	if len(ins) != 1 {
		return 0, 0, fmt.Errorf("cold start of %s: %d instances, want 1", name, len(ins))
	}
	return ins[0].FirstNext.Sub(ins[0].Started), answered.Sub(ins[0].Started), nil
}

// finishedTaskEvent creates an install task that is already complete in the
// HBR emulator (through the real adapter) and returns an event-stream payload
// with one poll message for it, whose deadline is far ahead.
func finishedTaskEvent(ctx context.Context, hbrURL string, now time.Time) ([]byte, error) {
	cl, err := hbr.New(hbr.Config{Region: "cn-hangzhou", Endpoint: hbrURL}, coldCreds())
	if err != nil {
		return nil, fmt.Errorf("HBR client: %w", err)
	}
	res, err := cl.InstallBackupClients(ctx, []string{coldInstance})
	if err != nil {
		return nil, fmt.Errorf("create a task for the poller sample: %w", err)
	}
	return pollEvent(job.Message{
		Version: job.Version, Kind: job.KindPoll, Region: "cn-hangzhou", TaskID: res.TaskID,
		TaskStartedAt: now, Deadline: now.Add(24 * time.Hour), SentAt: now,
		Instances: []job.Instance{{ID: coldInstance, JobID: job.JobID("acs.ecs", "bench-cold", coldInstance),
			FirstSeen: now, ReadyBy: now.Add(time.Hour), Attempts: 1, Generation: 1}},
	})
}

// pollEvent wraps a job message the way the MNS event stream delivers it to
// the poller (a CloudEvents array, body already base64-decoded).
func pollEvent(m job.Message) ([]byte, error) {
	body, err := job.Encode(m)
	if err != nil {
		return nil, fmt.Errorf("encode the sample message: %w", err)
	}
	return json.Marshal([]map[string]any{{
		"id": "bench-event-0001", "source": "MNS-hbr-autoinstall-jobs", "specversion": "1.0",
		"type": "mns:Queue:SendMessage", "subject": "acs:mns:cn-hangzhou:1234567890123456:queues/bench-jobs",
		"aliyunregionid": "cn-hangzhou",
		"data":           map[string]any{"requestId": "bench-request", "messageId": "BENCHMESSAGE0001", "messageBody": string(body)},
	}})
}

func reconcileListedOne(b []byte) error {
	var s struct {
		DryRun bool `json:"dryRun"`
		Listed int  `json:"listed"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if !s.DryRun || s.Listed != 1 {
		return fmt.Errorf("want a dry run that listed one instance")
	}
	return nil
}

func expectJSON(got []byte, want string) error {
	if string(got) != want {
		return fmt.Errorf("want %s", want)
	}
	return nil
}

func installQueuedOne(b []byte) error {
	var s struct{ Accepted, Queued int }
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s.Accepted != 1 || s.Queued != 1 {
		return fmt.Errorf("want one instance accepted and one message queued")
	}
	return nil
}

func pollerInstalledOne(b []byte) error {
	var s struct{ Outcomes map[string]int }
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s.Outcomes["INSTALLED"] != 1 {
		return fmt.Errorf("want one INSTALLED outcome")
	}
	return nil
}
