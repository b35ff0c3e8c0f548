package ebsim_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ebsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/fcsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
)

// The install function's EventBridge rules, as s.yaml deploys them.
var installRules = []string{
	`{"source":["acs.ecs"],"type":["ecs:Instance:StateChange","ecs:CloudAssistant:FirstHeartbeat"]}`,
	`{"source":["acs.ecs"],"type":["ecs:ActionTrail:ApiCall","ecs:ActionTrail:ConsoleOperation","ecs:ActionTrail:AliyunServiceEvent"],"data":{"eventName":["RunInstances"]}}`,
}

// benchFunctions are the function binaries the benchmarks run: fcsim's echo
// function (two log lines, a JSON reply of what it saw) and the nop function
// (one log line, a constant reply), whose own cost is close to nothing.
var benchFunctions = []string{"echofn", "nopfn"}

var (
	nopOnce   sync.Once
	nopBinary string
	nopErr    error
)

// functionBinary returns the built binary of a benchFunctions entry.
func functionBinary(b *testing.B, name string) string {
	b.Helper()
	if name == "echofn" {
		return echoBinary
	}
	nopOnce.Do(func() {
		nopBinary = filepath.Join(filepath.Dir(echoBinary), "nopfn")
		build := exec.Command("go", "build", "-o", nopBinary, "../fcsim/testdata/nopfn")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			nopErr = fmt.Errorf("build nopfn: %w\n%s", err, out)
		}
	})
	if nopErr != nil {
		b.Fatal(nopErr)
	}
	return nopBinary
}

// startWarm starts a function with every instance already running, so the
// measurement sees no cold start. Its output is read line by line as a local
// cloud reads it.
func startWarm(b *testing.B, binary string, instances int) (*fcsim.Function, *atomic.Int64) {
	b.Helper()
	var lines atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := fcsim.Start(ctx, fcsim.Config{
		Name: "bench", Binary: binary, Timeout: time.Minute, MaxInstances: instances,
		Output: func(_ string, _ int, line []byte) {
			if len(line) > 0 {
				lines.Add(1)
			}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	var wg sync.WaitGroup
	for range instances * 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.Invoke(ctx, []byte(`{}`), fcsim.InvokeOptions{}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := len(f.Instances()); n != instances {
		b.Fatalf("warm-up started %d instances, want %d", n, instances)
	}
	return f, &lines
}

// meter measures the CPU time spent by this process (the emulators and the
// benchmark) and by the function processes.
type meter struct {
	f          *fcsim.Function
	self, fns  time.Duration
	start      time.Time
	selfAtStop time.Duration
}

func startMeter(f *fcsim.Function) *meter {
	return &meter{f: f, self: selfCPU(), fns: processCPU(f), start: time.Now()}
}

// report adds the per-invocation metrics for n invocations to b.
func (m *meter) report(b *testing.B, n int, unit string) {
	elapsed := time.Since(m.start)
	self, fns := selfCPU()-m.self, processCPU(m.f)-m.fns
	b.ReportMetric(float64(n)/elapsed.Seconds(), unit+"/s")
	b.ReportMetric(float64(self.Microseconds())/float64(n), "emu-cpu-µs/"+unit)
	b.ReportMetric(float64(fns.Microseconds())/float64(n), "fn-cpu-µs/"+unit)
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU sums the user and system time of the function's live
// processes, read from /proc (clock ticks of 10 ms); 0 where /proc is absent.
func processCPU(f *fcsim.Function) time.Duration {
	var total time.Duration
	for _, in := range f.Instances() {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", in.PID))
		if err != nil {
			continue
		}
		_, rest, ok := bytes.Cut(stat, []byte(") "))
		fields := strings.Fields(string(rest))
		if !ok || len(fields) < 13 {
			continue
		}
		// After "pid (comm) ": state is field 0, utime 11, stime 12.
		user, _ := strconv.ParseInt(fields[11], 10, 64)
		sys, _ := strconv.ParseInt(fields[12], 10, 64)
		total += time.Duration(user+sys) * 10 * time.Millisecond
	}
	return total
}

// ecsEvent is an ECS state-change event, as the default bus carries it.
func ecsEvent(i int) []byte {
	return fmt.Appendf(nil, `{"id":"bench-%08d","source":"acs.ecs","specversion":"1.0","type":"ecs:Instance:StateChange",`+
		`"subject":"acs:ecs:cn-hangzhou:1234567890123456:instance/i-bench%08d","time":"2026-11-27T13:04:41+08:00",`+
		`"datacontenttype":"application/json;charset=utf-8","aliyunaccountid":"1234567890123456",`+
		`"aliyunpublishtime":"2026-11-27T13:04:42.179PRC","aliyuneventbusname":"default","aliyunregionid":"cn-hangzhou",`+
		`"aliyunpublishaddr":"172.25.10.10","data":{"resourceId":"i-bench%08d","resourceType":"ALIYUN::ECS::Instance","state":"Running"}}`,
		i, i, i)
}

// BenchmarkBusToFunction publishes b.N ECS events on the bus at once, with
// the install function's rules, and waits until a real function process has
// answered each: the path of every install invocation in a launch. It
// reports invocations per second and the CPU each invocation costs this
// process (bus, fcsim, runtime API) and the function processes.
//
//	go test -run '^$' -bench BusToFunction -benchtime 5000x ./shared/localcloud/ebsim
func BenchmarkBusToFunction(b *testing.B) {
	for _, fn := range benchFunctions {
		for _, instances := range []int{8, 16} {
			b.Run(fmt.Sprintf("fn=%s/instances=%d", fn, instances), func(b *testing.B) {
				f, _ := startWarm(b, functionBinary(b, fn), instances)
				rules := make([]*ebsim.Pattern, len(installRules))
				for i, src := range installRules {
					p, err := ebsim.CompilePattern(src)
					if err != nil {
						b.Fatal(err)
					}
					rules[i] = p
				}
				var failed atomic.Int64
				bus := &ebsim.Bus{Target: f, Rules: rules, Retry: ebsim.RetryPolicy{Retries: -1},
					OnDelivery: func(d ebsim.Delivery) {
						if d.Failed() {
							failed.Add(1)
						}
					}}
				b.Cleanup(func() { _ = bus.Close() })
				events := make([][]byte, b.N)
				for i := range events {
					events[i] = ecsEvent(i)
				}
				ctx := context.Background()
				m := startMeter(f)
				b.ResetTimer()
				for _, ev := range events {
					if err := bus.Publish(ctx, ev); err != nil {
						b.Fatal(err)
					}
				}
				if err := bus.Wait(ctx); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				m.report(b, b.N, "invocations")
				if n := failed.Load(); n > 0 {
					b.Fatalf("%d of %d invocations failed", n, b.N)
				}
			})
		}
	}
}

// BenchmarkStreamToFunction pushes b.N job messages from an mnssim queue
// through an event stream (batches of up to 10, as the local cloud
// configures the poller's trigger, one batch in flight per instance) to a
// real function process, and waits until every message is deleted. It
// reports messages per second and the CPU per message.
//
//	go test -run '^$' -bench StreamToFunction -benchtime 5000x ./shared/localcloud/ebsim
func BenchmarkStreamToFunction(b *testing.B) {
	for _, fn := range benchFunctions {
		for _, instances := range []int{8} {
			b.Run(fmt.Sprintf("fn=%s/instances=%d", fn, instances), func(b *testing.B) {
				f, _ := startWarm(b, functionBinary(b, fn), instances)
				mns := mnssim.New(mnssim.Options{})
				b.Cleanup(func() { _ = mns.Close() })
				mns.CreateQueue("jobs")
				var failed atomic.Int64
				s := &ebsim.Stream{
					Queue: mns, QueueName: "jobs", Target: f, BatchCount: 10, Base64Decode: true,
					Concurrency: instances, Retry: ebsim.RetryPolicy{Retries: -1},
					OnDelivery: func(d ebsim.Delivery) {
						if d.Failed() {
							failed.Add(1)
						}
					},
				}
				for i := range b.N {
					body := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, `{"kind":"poll","taskId":"t-%08d","pollCount":1}`, i))
					if _, err := mns.Send("jobs", body, 0, 8); err != nil {
						b.Fatal(err)
					}
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				m := startMeter(f)
				b.ResetTimer()
				go func() { done <- s.Run(ctx) }()
				for {
					visible, delayed, inflight := mns.Depth("jobs")
					if visible+delayed+inflight == 0 {
						break
					}
					time.Sleep(time.Millisecond)
				}
				b.StopTimer()
				m.report(b, b.N, "messages")
				cancel()
				<-done
				if n := failed.Load(); n > 0 {
					b.Fatalf("%d pushes failed", n)
				}
			})
		}
	}
}
