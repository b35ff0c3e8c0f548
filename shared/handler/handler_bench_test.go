package handler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fclog"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/handler"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ecssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/osssim"
)

// The warm cost of one invocation: the handlers with the real SDK-backed
// adapters, against the HBR, ECS, MNS and OSS emulators over loopback HTTP
// (every endpoint local: a default endpoint would reach for the real cloud;
// the
// job queue, the install queue, the dead-letter queue and the ledger
// bucket, as deployed), logging JSON lines the way the functions do (to
// io.Discard). `make bench` runs these and reports ns/op and allocs/op.

const benchInstance = "i-bp1demo0000000000001"

// The queues and the ledger bucket of the benchmarks' region.
const (
	benchJobs     = "bench-jobs"
	benchInstalls = "bench-installs"
	benchDLQ      = "bench-dlq"
	benchBucket   = "bench-ledger"
)

// benchEnv is a warm function's world: emulators and the handler deps.
type benchEnv struct {
	deps   handler.Deps
	creds  cloudauth.Credentials
	hbr    *hbrsim.Server
	ecs    *ecssim.Server
	mns    *mnssim.Server
	oss    *osssim.Server
	hbrURL string
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	creds := cloudauth.Credentials{AccessKeyID: "LTAI5tBenchHandler", AccessKeySecret: "bench-handler-secret", SecurityToken: "bench-handler-token"}
	h := hbrsim.New(hbrsim.Options{AccessKeyID: creds.AccessKeyID, AccessKeySecret: creds.AccessKeySecret, SecurityToken: creds.SecurityToken})
	h.SetInstance("i-benchrunning01", hbrsim.Behavior{InstallDuration: 24 * time.Hour})
	hbrURL, err := h.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Close() })
	c := ecssim.New(ecssim.Options{AccessKeyID: creds.AccessKeyID, AccessKeySecret: creds.AccessKeySecret, SecurityToken: creds.SecurityToken})
	ecsURL, err := c.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	m := mnssim.New(mnssim.Options{AccessKeyID: creds.AccessKeyID, AccessKeySecret: creds.AccessKeySecret, SecurityToken: creds.SecurityToken})
	for _, q := range []string{benchJobs, benchInstalls, benchDLQ} {
		m.CreateQueue(q)
	}
	mnsURL, err := m.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Close() })
	o := osssim.New(osssim.Options{Principals: callers.Set{{Name: "bench", Credentials: creds}}})
	o.CreateBucket(benchBucket)
	ossURL, err := o.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = o.Close() })

	env := map[string]string{
		"FC_REGION": "cn-hangzhou", "FC_ACCOUNT_ID": "1234567890123456",
		"QUEUE_NAME": benchJobs, "INSTALL_QUEUE_NAME": benchInstalls, "DLQ_NAME": benchDLQ,
		"MNS_ENDPOINT": mnsURL, "HBR_ENDPOINT": hbrURL, "ECS_ENDPOINT": ecsURL,
		"OSS_ENDPOINT": ossURL, "LEDGER_BUCKET": benchBucket,
		"ALIBABA_CLOUD_ACCESS_KEY_ID":     creds.AccessKeyID,
		"ALIBABA_CLOUD_ACCESS_KEY_SECRET": creds.AccessKeySecret,
		"ALIBABA_CLOUD_SECURITY_TOKEN":    creds.SecurityToken,
	}
	getenv := func(k string) string { return env[k] }
	cfg, err := config.Load(getenv)
	if err != nil {
		b.Fatal(err)
	}
	deps := handler.DepsFrom(cfg)
	deps.Cloud = handler.SDKCloud{Config: cfg, Getenv: getenv}
	deps.Logger = fclog.New(io.Discard, cfg.LogLevel)
	deps.Jitter = handler.FullJitter
	return &benchEnv{deps: deps, creds: creds, hbr: h, ecs: c, mns: m, oss: o, hbrURL: hbrURL}
}

// checkDeadLetters fails the benchmark when a handler dead-lettered
// something: every benchmarked invocation is a healthy one.
func (e *benchEnv) checkDeadLetters(b *testing.B) {
	b.Helper()
	if visible, delayed, inflight := e.mns.Depth(benchDLQ); visible+delayed+inflight > 0 {
		b.Fatalf("%d messages reached the dead-letter queue", visible+delayed+inflight)
	}
}

// finals counts the final records in the ledger bucket.
func (e *benchEnv) finals() int {
	n := 0
	for key := range e.oss.Objects(benchBucket, e.deps.Ledger.Prefix) {
		if strings.HasSuffix(key, "/final") {
			n++
		}
	}
	return n
}

// pollEvent claims instance in the ledger (generation 1, as the install
// function does for its first announcement), starts an install task for
// it through the real adapter and returns an event-stream payload with one
// poll message for it.
func (e *benchEnv) pollEvent(b *testing.B, instance string) []byte {
	b.Helper()
	ctx := context.Background()
	now := time.Now()
	jobID := job.JobID("acs.ecs", "bench", instance)
	st, err := e.deps.Cloud.Store(ctx)
	if err != nil {
		b.Fatal(err)
	}
	l := &ledger.Ledger{Store: st, Prefix: e.deps.Ledger.Prefix, Account: e.deps.Ledger.Account, Lease: e.deps.Policy.Lease}
	dec, err := l.Claim(ctx, ledger.Announcement{Region: "cn-hangzhou", Instance: instance, Job: jobID,
		Trigger: "ecs:Instance:StateChange", OriginEventID: "bench", EventTime: now, Via: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if dec.Kind != ledger.Owned || dec.Owner.Generation != 1 {
		b.Fatalf("claim of %s: %s generation %d (%s)", instance, dec.Kind, dec.Owner.Generation, dec.Reason)
	}
	cl, err := hbr.New(hbr.Config{Region: "cn-hangzhou", Endpoint: e.hbrURL}, e.creds)
	if err != nil {
		b.Fatal(err)
	}
	res, err := cl.InstallBackupClients(ctx, []string{instance})
	if err != nil {
		b.Fatal(err)
	}
	body, err := job.Encode(job.Message{
		Version: job.Version, Kind: job.KindPoll, Region: "cn-hangzhou", TaskID: res.TaskID,
		TaskStartedAt: now, Deadline: now.Add(24 * time.Hour), SentAt: now,
		Instances: []job.Instance{{ID: instance, JobID: jobID, FirstSeen: now, ReadyBy: now.Add(time.Hour), Attempts: 1,
			Generation: dec.Owner.Generation, LeaseUntil: dec.Owner.LeaseUntil, Supersedes: dec.Owner.Supersedes}},
	})
	if err != nil {
		b.Fatal(err)
	}
	payload, err := json.Marshal([]map[string]any{{
		"id": "bench-event-0001", "source": "MNS-" + benchJobs, "specversion": "1.0",
		"type": "mns:Queue:SendMessage", "aliyunregionid": "cn-hangzhou",
		"data": map[string]any{"messageId": "BENCHMESSAGE0001", "messageBody": string(body)},
	}})
	if err != nil {
		b.Fatal(err)
	}
	return payload
}

// BenchmarkInstallHandle handles events/instance-running.json, each time for
// a new instance whose Cloud Assistant is ready (set in the ECS emulator
// with the timer stopped): parse, the ledger claim, the readiness check,
// the ledger's intent and task entries, one InstallBackupClients call and
// the task's delayed poll message.
func BenchmarkInstallHandle(b *testing.B) {
	e := newBenchEnv(b)
	template, err := os.ReadFile(filepath.Join("..", "..", "events", "instance-running.json"))
	if err != nil {
		b.Fatal(err)
	}
	h := handler.NewInstall(e.deps)
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		b.StopTimer()
		n++
		id := fmt.Sprintf("i-bp1benchinst%07d", n)
		e.ecs.SetInstance(ecssim.Instance{ID: id})
		payload := bytes.ReplaceAll(template, []byte(benchInstance), []byte(id))
		b.StartTimer()
		sum, err := h.Handle(ctx, payload)
		if err != nil || sum.Queued != 1 {
			b.Fatalf("summary %+v, error %v", sum, err)
		}
	}
	b.StopTimer()
	if got := e.hbr.Calls()["hbr.InstallBackupClients"]; got != n {
		b.Fatalf("%d InstallBackupClients calls for %d instances", got, n)
	}
	if visible, delayed, _ := e.mns.Depth(benchJobs); visible+delayed != n {
		b.Fatalf("%d poll messages for %d instances", visible+delayed, n)
	}
	e.checkDeadLetters(b)
}

// BenchmarkPollHandle handles one poll message for a finished task, each
// time for a new instance (claimed and installed with the timer stopped):
// parse, one DescribeTask call, one INSTALLED record written to the ledger
// and logged.
func BenchmarkPollHandle(b *testing.B) {
	e := newBenchEnv(b)
	h := handler.NewPoller(e.deps)
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		b.StopTimer()
		n++
		payload := e.pollEvent(b, fmt.Sprintf("i-bp1benchpoll%07d", n))
		b.StartTimer()
		sum, err := h.Handle(ctx, payload)
		if err != nil || sum.Outcomes["INSTALLED"] != 1 {
			b.Fatalf("summary %+v, error %v", sum, err)
		}
	}
	b.StopTimer()
	if got := e.finals(); got != n {
		b.Fatalf("%d final records in the ledger for %d instances", got, n)
	}
	e.checkDeadLetters(b)
}

// BenchmarkPollHandleRunning handles one poll message for a task still
// running: parse, one DescribeTask call, the next poll message sent.
func BenchmarkPollHandleRunning(b *testing.B) {
	e := newBenchEnv(b)
	payload := e.pollEvent(b, "i-benchrunning01")
	h := handler.NewPoller(e.deps)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		sum, err := h.Handle(ctx, payload)
		if err != nil || sum.Queued != 1 {
			b.Fatalf("summary %+v, error %v", sum, err)
		}
	}
	b.StopTimer()
	e.checkDeadLetters(b)
}
