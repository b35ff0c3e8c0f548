package localcloud

import (
	"math/rand/v2"
	"sort"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecsevent"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
)

// Mix says which share of instances behaves how; the rest install normally.
type Mix struct {
	NotReady   float64       // Cloud Assistant not running at first
	ReadyAfter time.Duration // how long the not-ready ones take (default 3 s)
	FailOnce   float64       // first install task fails
	Gone       float64       // InstanceNotExists
	Expire     float64       // their task expires
	Cancel     float64       // their task is cancelled
	TaskMin    time.Duration // install duration range (default 1–3 s)
	TaskMax    time.Duration
}

// InstanceIDs returns the instance ids the payloads announce (for assigning
// behaviours before the run).
func InstanceIDs(payloads [][]byte, region string) []string {
	seen := map[string]bool{}
	var ids []string
	for _, p := range payloads {
		b, err := ecsevent.Parse(p, region)
		if err != nil {
			continue
		}
		for _, c := range b.Candidates {
			if !seen[c.InstanceID] {
				seen[c.InstanceID] = true
				ids = append(ids, c.InstanceID)
			}
		}
	}
	sort.Strings(ids)
	return ids
}

// Behaviors assigns each instance a behaviour from the mix, repeatably for a
// seed.
func (m Mix) Behaviors(ids []string, seed int64) map[string]hbrsim.Behavior {
	if m.ReadyAfter == 0 {
		m.ReadyAfter = 3 * time.Second
	}
	if m.TaskMin == 0 {
		m.TaskMin = time.Second
	}
	if m.TaskMax < m.TaskMin {
		m.TaskMax = max(m.TaskMin, 3*time.Second)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0xbe4a))
	out := map[string]hbrsim.Behavior{}
	for _, id := range ids {
		b := hbrsim.Behavior{InstallDuration: m.TaskMin + time.Duration(rng.Int64N(int64(m.TaskMax-m.TaskMin)+1))}
		x := rng.Float64()
		switch {
		case x < m.Gone:
			b.Gone = true
		case x < m.Gone+m.Expire:
			b.TaskEnd = "expired"
		case x < m.Gone+m.Expire+m.Cancel:
			b.TaskEnd = "cancelled"
		}
		if rng.Float64() < m.NotReady {
			b.ReadyAfter = m.ReadyAfter
		}
		if rng.Float64() < m.FailOnce {
			b.FailInstalls = 1
		}
		out[id] = b
	}
	return out
}
