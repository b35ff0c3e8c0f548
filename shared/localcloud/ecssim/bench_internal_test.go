package ecssim

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim"
)

// The cost of one call must not grow with the number of instances in the
// region: a call naming ids costs O(ids named), and adding an instance
// between calls does not re-sort the region. These call the actions
// directly (no HTTP, no signature) so that only the emulator's own work is
// measured:
//
//	go test -run '^$' -bench . ./shared/localcloud/ecssim

// worldSizes are the region sizes the benchmarks compare.
var worldSizes = []int{100, 1000, 10000, 100000}

func benchServer(b *testing.B, n int) (*Server, time.Time) {
	b.Helper()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := New(Options{Now: func() time.Time { return t0 }})
	ins := make([]Instance, n)
	for i := range ins {
		ins[i] = Instance{ID: benchID(i), AssistantReadyAt: t0.Add(time.Duration(i%3-1) * time.Minute)}
	}
	s.SetInstances(ins...)
	return s, t0
}

func benchID(i int) string { return fmt.Sprintf("i-bp1bench%010d", i) }

// assistantRequest asks for the Cloud Assistant status of ids.
func assistantRequest(now time.Time, ids ...string) rpcsim.Request {
	p := map[string]string{"RegionId": DefaultRegion}
	for i, id := range ids {
		p["InstanceId."+strconv.Itoa(i+1)] = id
	}
	return rpcsim.Request{Action: "DescribeCloudAssistantStatus", Params: p, Time: now}
}

// BenchmarkDescribeCloudAssistantStatus asks for 10 instances of a region
// of n.
func BenchmarkDescribeCloudAssistantStatus(b *testing.B) {
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
				resp, err := s.describeCloudAssistantStatus(assistantRequest(now, ids...))
				if err != nil || resp["TotalCount"] != 10 {
					b.Fatalf("%v %v", resp["TotalCount"], err)
				}
			}
		})
	}
}

// BenchmarkDescribeCloudAssistantStatusGrowing adds one instance to a
// region of n, then asks for it: a launch, where instances keep arriving
// between calls.
func BenchmarkDescribeCloudAssistantStatusGrowing(b *testing.B) {
	for _, n := range worldSizes {
		b.Run(fmt.Sprintf("world=%d", n), func(b *testing.B) {
			s, now := benchServer(b, n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				id := fmt.Sprintf("i-bp1added%010d", i)
				i++
				s.SetInstance(Instance{ID: id})
				resp, err := s.describeCloudAssistantStatus(assistantRequest(now, id))
				if err != nil || resp["TotalCount"] != 1 {
					b.Fatalf("%v %v", resp["TotalCount"], err)
				}
			}
		})
	}
}

// BenchmarkDescribeInstancesByID asks DescribeInstances for 10 instances
// of a region of n.
func BenchmarkDescribeInstancesByID(b *testing.B) {
	for _, n := range worldSizes {
		b.Run(fmt.Sprintf("world=%d", n), func(b *testing.B) {
			s, now := benchServer(b, n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ids := make([]string, 10)
				for j := range ids {
					ids[j] = fmt.Sprintf("%q", benchID((i*10+j*7919)%n))
				}
				i++
				p := map[string]string{"RegionId": DefaultRegion, "InstanceIds": "[" + strings.Join(ids, ",") + "]", "MaxResults": "100"}
				resp, err := s.describeInstances(rpcsim.Request{Action: "DescribeInstances", Params: p, Time: now})
				if err != nil || resp["TotalCount"] != 10 {
					b.Fatalf("%v %v", resp["TotalCount"], err)
				}
			}
		})
	}
}

// TestIndexMatchesTheRegion adds and removes instances at random, with
// listings in between, and checks that the kept order is the region's and
// that a call naming instances answers what a listing filtered to them
// would.
func TestIndexMatchesTheRegion(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := New(Options{Now: func() time.Time { return now }})
	rng := rand.New(rand.NewPCG(1, 2))
	id := func() string { return fmt.Sprintf("i-%03d", rng.IntN(300)) }
	listed := func() []string {
		var out []string
		for page := 1; ; page++ {
			resp, err := s.describeCloudAssistantStatus(rpcsim.Request{Params: map[string]string{
				"RegionId": DefaultRegion, "PageSize": "50", "PageNumber": strconv.Itoa(page)}, Time: now})
			if err != nil {
				t.Fatal(err)
			}
			set := resp["InstanceCloudAssistantStatusSet"].(map[string]any)["InstanceCloudAssistantStatus"].([]map[string]any)
			if len(set) == 0 {
				return out
			}
			for _, e := range set {
				out = append(out, e["InstanceId"].(string))
			}
		}
	}
	for round := range 200 {
		switch rng.IntN(4) {
		case 0, 1:
			var batch []Instance
			for range rng.IntN(20) + 1 {
				batch = append(batch, Instance{ID: id(), OSType: []string{"linux", "windows"}[rng.IntN(2)]})
			}
			s.SetInstances(batch...)
		case 2:
			s.RemoveInstance(id())
		}
		if round%3 == 0 {
			want := slices.Sorted(maps.Keys(s.instances))
			if got := listed(); !slices.Equal(got, want) {
				t.Fatalf("round %d: listing %v, want %v", round, got, want)
			}
		}
		ask := []string{id(), id(), id(), "i-unknown"}
		ask = append(ask, ask[0])
		p := map[string]string{"RegionId": DefaultRegion, "OSType": "linux"}
		for i, a := range ask {
			p["InstanceId."+strconv.Itoa(i+1)] = a
		}
		resp, err := s.describeCloudAssistantStatus(rpcsim.Request{Params: p, Time: now})
		if err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for _, e := range resp["InstanceCloudAssistantStatusSet"].(map[string]any)["InstanceCloudAssistantStatus"].([]map[string]any) {
			got = append(got, e["InstanceId"].(string))
		}
		for _, k := range slices.Sorted(maps.Keys(s.instances)) {
			if slices.Contains(ask, k) && s.instances[k].OSType == "linux" {
				want = append(want, k)
			}
		}
		if !slices.Equal(got, want) || resp["TotalCount"] != len(want) {
			t.Fatalf("round %d: asked %v, got %v (total %v), want %v", round, ask, got, resp["TotalCount"], want)
		}
	}
}
