package handler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fclog"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/handler"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
)

// The warm cost of one invocation: the handlers with the real SDK-backed
// adapters, against the HBR and MNS emulators over loopback HTTP, logging
// JSON lines the way the functions do (to io.Discard). `make bench` runs
// these and reports ns/op and allocs/op.

const benchInstance = "i-bp1demo0000000000001"

// benchEnv is a warm function's world: emulators and the handler deps.
type benchEnv struct {
	deps   handler.Deps
	creds  cloudauth.Credentials
	hbr    *hbrsim.Server
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
	m := mnssim.New(mnssim.Options{AccessKeyID: creds.AccessKeyID, AccessKeySecret: creds.AccessKeySecret, SecurityToken: creds.SecurityToken})
	m.CreateQueue("bench-jobs")
	mnsURL, err := m.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Close() })

	env := map[string]string{
		"FC_REGION": "cn-hangzhou", "FC_ACCOUNT_ID": "1234567890123456",
		"QUEUE_NAME": "bench-jobs", "MNS_ENDPOINT": mnsURL, "HBR_ENDPOINT": hbrURL,
		"ALIBABA_CLOUD_ACCESS_KEY_ID":     creds.AccessKeyID,
		"ALIBABA_CLOUD_ACCESS_KEY_SECRET": creds.AccessKeySecret,
		"ALIBABA_CLOUD_SECURITY_TOKEN":    creds.SecurityToken,
	}
	getenv := func(k string) string { return env[k] }
	cfg, err := config.Load(getenv)
	if err != nil {
		b.Fatal(err)
	}
	return &benchEnv{
		deps: handler.Deps{
			Region: cfg.Region,
			Policy: install.PolicyFrom(cfg),
			Cloud:  handler.SDKCloud{Config: cfg, Getenv: getenv},
			Logger: fclog.New(io.Discard, cfg.LogLevel),
			Jitter: handler.FullJitter,
		},
		creds: creds, hbr: h, hbrURL: hbrURL,
	}
}

// pollEvent starts an install task for instance through the real adapter and
// returns an event-stream payload with one poll message for it.
func (e *benchEnv) pollEvent(b *testing.B, instance string) []byte {
	b.Helper()
	cl, err := hbr.New(hbr.Config{Region: "cn-hangzhou", Endpoint: e.hbrURL}, e.creds)
	if err != nil {
		b.Fatal(err)
	}
	res, err := cl.InstallBackupClients(context.Background(), []string{instance})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	body, err := job.Encode(job.Message{
		Version: job.Version, Kind: job.KindPoll, Region: "cn-hangzhou", TaskID: res.TaskID,
		TaskStartedAt: now, Deadline: now.Add(24 * time.Hour), SentAt: now,
		Instances: []job.Instance{{ID: instance, JobID: job.JobID("acs.ecs", "bench", instance),
			FirstSeen: now, ReadyBy: now.Add(time.Hour), Attempts: 1}},
	})
	if err != nil {
		b.Fatal(err)
	}
	payload, err := json.Marshal([]map[string]any{{
		"id": "bench-event-0001", "source": "MNS-bench-jobs", "specversion": "1.0",
		"type": "mns:Queue:SendMessage", "aliyunregionid": "cn-hangzhou",
		"data": map[string]any{"messageId": "BENCHMESSAGE0001", "messageBody": string(body)},
	}})
	if err != nil {
		b.Fatal(err)
	}
	return payload
}

// BenchmarkInstallHandle handles events/instance-running.json, each time for
// a new instance: parse, the HBR calls of a first install, one delayed MNS
// message.
func BenchmarkInstallHandle(b *testing.B) {
	e := newBenchEnv(b)
	template, err := os.ReadFile(filepath.Join("..", "..", "events", "instance-running.json"))
	if err != nil {
		b.Fatal(err)
	}
	payloads := func(n int) []byte {
		return bytes.ReplaceAll(template, []byte(benchInstance), []byte(fmt.Sprintf("i-bp1benchinst%07d", n)))
	}
	h := handler.NewInstall(e.deps)
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		sum, err := h.Handle(ctx, payloads(n))
		if err != nil || sum.Queued != 1 {
			b.Fatalf("summary %+v, error %v", sum, err)
		}
	}
}

// BenchmarkPollHandle handles one poll message for a finished task: parse,
// one DescribeTask call, one INSTALLED record.
func BenchmarkPollHandle(b *testing.B) {
	e := newBenchEnv(b)
	payload := e.pollEvent(b, benchInstance)
	h := handler.NewPoller(e.deps)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		sum, err := h.Handle(ctx, payload)
		if err != nil || sum.Outcomes["INSTALLED"] != 1 {
			b.Fatalf("summary %+v, error %v", sum, err)
		}
	}
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
}
