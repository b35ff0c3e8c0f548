package hbrsim

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim"
)

// The cost of one call must not grow with the number of instances and
// tasks the emulator holds: DescribeBackupClients naming instances costs
// O(ids named), and settling tasks visits only those that are due. These
// call the actions directly (no HTTP, no signature) so that only the
// emulator's own work is measured:
//
//	go test -run '^$' -bench . ./shared/localcloud/hbrsim

// worldSizes are the numbers of instances the benchmarks compare; each
// world has a task per 10 instances, still running.
var worldSizes = []int{100, 1000, 10000, 100000}

func benchID(i int) string { return fmt.Sprintf("i-bp1bench%010d", i) }

// benchServer holds n instances with an ACTIVATED client and n/10 install
// tasks of 10 instances each that end in an hour; now moves on a second
// per call.
func benchServer(b *testing.B, n int) (*Server, func() time.Time) {
	b.Helper()
	t := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { t = t.Add(time.Millisecond); return t }
	s := New(Options{Now: now})
	s.SetDefault(Behavior{InstallDuration: time.Hour})
	for i := range n {
		s.SetClient(benchID(i), ClientActivated, t)
	}
	for i := 0; i+10 <= n; i += 10 {
		ids := make([]string, 10)
		for j := range ids {
			ids[j] = fmt.Sprintf("i-bp1task%011d", i+j)
		}
		if _, err := s.installBackupClients(installRequest(now(), ids...)); err != nil {
			b.Fatal(err)
		}
	}
	return s, now
}

func installRequest(now time.Time, ids ...string) rpcsim.Request {
	raw, _ := json.Marshal(ids)
	return rpcsim.Request{Action: "InstallBackupClients", Params: map[string]string{"InstanceIds": string(raw)}, Time: now}
}

// BenchmarkDescribeBackupClients asks for the clients of 10 instances.
func BenchmarkDescribeBackupClients(b *testing.B) {
	for _, n := range worldSizes {
		b.Run(fmt.Sprintf("world=%d", n), func(b *testing.B) {
			s, now := benchServer(b, n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ids := make([]string, 10)
				for j := range ids {
					ids[j] = benchID((i*10 + j*7919) % n)
				}
				i++
				raw, _ := json.Marshal(ids)
				resp, err := s.describeBackupClients(rpcsim.Request{Action: "DescribeBackupClients", Time: now(),
					Params: map[string]string{"ClientType": "ECS_CLIENT", "InstanceIds": string(raw), "PageSize": "99"}})
				if err != nil || resp["TotalCount"] != 10 {
					b.Fatalf("%v %v", resp["TotalCount"], err)
				}
			}
		})
	}
}

// BenchmarkInstallAndDescribeTask starts a task for a new instance and
// asks about it, beside the world's running tasks.
func BenchmarkInstallAndDescribeTask(b *testing.B) {
	for _, n := range worldSizes {
		b.Run(fmt.Sprintf("world=%d", n), func(b *testing.B) {
			s, now := benchServer(b, n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				resp, err := s.installBackupClients(installRequest(now(), fmt.Sprintf("i-bp1new%012d", i)))
				if err != nil {
					b.Fatal(err)
				}
				task := resp["TaskId"].(string)
				if _, err := s.describeTask(rpcsim.Request{Action: "DescribeTask", Params: map[string]string{"TaskId": task}, Time: now()}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
