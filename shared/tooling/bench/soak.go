package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
)

// soak drives a chaos run's own faults while the launch world plays — an
// MNS send outage, restarts after a failure — and finishes the run: once
// nothing moves, chains that died (a dead-lettered message, a process
// killed twice) are finished the way the daily timer would, by a reconcile
// sweep after their ledger leases pass.
type soak struct {
	// restarts are the instances announced again restartAfter (local)
	// after their first failure.
	restarts     []string
	restartAfter time.Duration
	// outage is how long every MNS send fails, from outageAt after the
	// start (local); base are the MNS faults to restore.
	outage, outageAt time.Duration
	base             mnssim.Faults
	// quiet is how long nothing may move before the run is judged.
	quiet time.Duration
	// maxSweeps bounds the reconcile sweeps; retry is the pause before a
	// failed sweep invocation is retried.
	maxSweeps int
	retry     time.Duration

	cloud *localcloud.Cloud
	start time.Time
	// lastAt is when the world's last event is due (local offset).
	lastAt time.Duration

	mu sync.Mutex
	// failed holds the first failure of each restart instance (by
	// instance), restarted when its restart event went out; ended the
	// restart instances that ended otherwise (no restart follows).
	failed    map[string]localcloud.Record
	restarted map[string]time.Time
	ended     map[string]bool
	// due counts the restarts scheduled and not published yet.
	due    int
	report SoakReport
}

// SoakReport is what the chaos run's own driver did.
type SoakReport struct {
	// OutageFailedSends counts the sends that failed during the MNS
	// outage; OutageAtSeconds is when it began (local seconds).
	OutageFailedSends int     `json:"mns_outage_failed_sends"`
	OutageAtSeconds   float64 `json:"mns_outage_at_seconds"`
	// Sweeps lists the reconcile sweeps the run invoked.
	Sweeps []Sweep `json:"reconcile_sweeps,omitempty"`
}

// Sweep is one reconcile sweep the chaos run invoked, as the daily timer
// would: twice at once, the timer's event delivered twice.
type Sweep struct {
	AtSeconds float64 `json:"at_seconds"`
	// Stuck counts the accepted instances with no final ledger record
	// when the run stopped moving; Samples names a few.
	Stuck   int      `json:"stuck"`
	Samples []string `json:"samples,omitempty"`
	// WaitedSeconds is how long the run waited for their leases to pass.
	WaitedSeconds float64 `json:"waited_seconds"`
	// Queued counts the instances the sweep (an invocation that ran)
	// queued; Retries the invocations retried after a failure; Error the
	// last failure when no invocation ran.
	Queued  int    `json:"queued"`
	Retries int    `json:"retries,omitempty"`
	Error   string `json:"error,omitempty"`
}

// sweepRetries is Function Compute's retry of a failed asynchronous
// invocation (s.yaml's maxAsyncRetryAttempts).
const sweepRetries = 3

// begin starts the faults; they stop with ctx.
func (s *soak) begin(ctx context.Context, wg *sync.WaitGroup, cloud *localcloud.Cloud, rc runConfig, start time.Time) {
	s.cloud, s.start = cloud, start
	s.failed, s.restarted, s.ended = map[string]localcloud.Record{}, map[string]time.Time{}, map[string]bool{}
	if w := rc.plan.World; w != nil && len(w.Events) > 0 {
		s.lastAt = w.Events[len(w.Events)-1].At
	}
	s.base = rc.mnsFaults
	if s.outage > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.mnsOutage(ctx)
		}()
	}
	if len(s.restarts) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.watchFailures(ctx, wg)
		}()
	}
}

// mnsOutage makes every MNS send fail for s.outage, once.
func (s *soak) mnsOutage(ctx context.Context) {
	select {
	case <-time.After(time.Until(s.start.Add(s.outageAt))):
	case <-ctx.Done():
		return
	}
	before := s.cloud.MNS.FailedSends()
	s.cloud.MNS.SetFaults(mnssim.Faults{SendFailRate: 1})
	select {
	case <-time.After(s.outage):
	case <-ctx.Done():
	}
	s.cloud.MNS.SetFaults(s.base)
	s.mu.Lock()
	s.report.OutageFailedSends = s.cloud.MNS.FailedSends() - before
	s.report.OutageAtSeconds = round(s.outageAt.Seconds(), 1)
	s.mu.Unlock()
}

// reopening are the outcomes a later announcement reopens (package ledger).
var reopening = []string{"FAILED", "NOT_READY", "TIMEOUT", "CANCELLED", "BIND_FAILED"}

// watchFailures announces each restart instance again restartAfter after
// its first failure record.
func (s *soak) watchFailures(ctx context.Context, wg *sync.WaitGroup) {
	want := map[string]bool{}
	for _, id := range s.restarts {
		want[id] = true
	}
	seen := 0
	every(ctx, 100*time.Millisecond, func() {
		recs := s.cloud.Records()
		for _, r := range recs[seen:] {
			if !want[r.InstanceID] {
				continue
			}
			if !slices.Contains(reopening, r.Outcome) {
				s.mu.Lock()
				s.ended[r.InstanceID] = true
				s.mu.Unlock()
				continue
			}
			s.mu.Lock()
			_, dup := s.failed[r.InstanceID]
			if !dup {
				s.failed[r.InstanceID] = r
				s.due++
			}
			s.mu.Unlock()
			if dup {
				continue
			}
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				s.restart(ctx, id)
			}(r.InstanceID)
		}
		seen = len(recs)
	})
}

func (s *soak) restart(ctx context.Context, id string) {
	defer func() {
		s.mu.Lock()
		s.due--
		s.mu.Unlock()
	}()
	select {
	case <-time.After(s.restartAfter):
	case <-ctx.Done():
		return
	}
	if err := s.cloud.Restart(ctx, id); err != nil {
		return
	}
	s.mu.Lock()
	s.restarted[id] = time.Now()
	s.mu.Unlock()
}

// busy reports whether a restart is still to be published. (A restart
// instance with no record yet is not waited for: if its chain died, only
// a sweep brings its failure, and the restart after it.)
func (s *soak) busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.due > 0
}

// await waits until the run stops moving, sweeps for chains that died (at
// most maxSweeps times), and reports whether every accepted instance ended
// with an outcome and a final ledger record.
func (s *soak) await(ctx context.Context, cloud *localcloud.Cloud) bool {
	for {
		if !s.stillness(ctx) {
			return false
		}
		rep := cloud.Report()
		stuck := s.stuck(rep)
		if len(stuck) == 0 {
			if rep.Lost > 0 {
				return false // recorded in the ledger, never logged: no sweep changes that
			}
			return cloud.Wait(ctx)
		}
		s.mu.Lock()
		n := len(s.report.Sweeps)
		s.mu.Unlock()
		if n >= s.maxSweeps {
			return false
		}
		if !s.sweep(ctx, stuck) {
			return false
		}
	}
}

// stillness returns once nothing has moved for s.quiet: no message queued
// or in flight, no invocation, no restart to come; false when ctx ends.
func (s *soak) stillness(ctx context.Context) bool {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last, since := -1, time.Now()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
		moved := 0
		for _, fn := range localcloud.Functions {
			moved += s.cloud.Function(fn).Invocations()
		}
		for _, q := range []string{localcloud.QueueName, localcloud.InstallQueueName} {
			visible, delayed, inflight := s.cloud.MNS.Depth(q)
			if visible+delayed+inflight > 0 {
				moved = -1
			}
		}
		if moved < 0 || moved != last || s.busy() || time.Since(s.start) < s.lastAt {
			last, since = moved, time.Now()
			continue
		}
		if time.Since(since) >= s.quiet {
			return true
		}
	}
}

// stuck returns the accepted instances whose latest ledger generation has
// no final record, with the lease each holds until (zero: unclaimed).
func (s *soak) stuck(rep localcloud.Report) map[string]time.Time {
	states := ledgerStates(s.cloud)
	out := map[string]time.Time{}
	for id := range rep.Outcomes {
		// A final record that was never logged (Report.Lost) is left to
		// the report: a sweep cannot change it.
		if st := states[id]; !st.final {
			out[id] = st.lease
		}
	}
	return out
}

// sweep waits until the stuck instances' leases have passed, then invokes
// the reconcile function twice at once with the same timer event.
func (s *soak) sweep(ctx context.Context, stuck map[string]time.Time) bool {
	var until time.Time
	var ids []string
	for id, lease := range stuck {
		ids = append(ids, id)
		if lease.After(until) {
			until = lease
		}
	}
	slices.Sort(ids)
	sw := Sweep{Stuck: len(ids), Samples: ids[:min(len(ids), 5)]}
	began := time.Now()
	select {
	case <-time.After(time.Until(until.Add(time.Second))):
	case <-ctx.Done():
		return false
	}
	sw.WaitedSeconds = round(time.Since(began).Seconds(), 1)
	if len(s.stuck(s.cloud.Report())) == 0 {
		return true // the chains finished meanwhile: no sweep
	}
	sw.AtSeconds = round(time.Since(s.start).Seconds(), 1)
	// The timer's event, delivered twice at once; a failed invocation is
	// retried as Function Compute retries an asynchronous one.
	timer := fmt.Sprintf(`{"triggerTime":%q,"triggerName":"daily","payload":"{}"}`, time.Now().UTC().Format(time.RFC3339))
	var wg sync.WaitGroup
	covs := make([]map[string]any, 2)
	errs := make([]error, 2)
	retries := make([]int, 2)
	for i := range covs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for try := 0; try <= sweepRetries; try++ {
				if try > 0 {
					retries[i]++
					select {
					case <-time.After(s.retry):
					case <-ctx.Done():
						return
					}
				}
				if covs[i], errs[i] = s.cloud.Sweep(ctx, timer); errs[i] == nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	sw.Retries = retries[0] + retries[1]
	switch {
	case errs[0] == nil:
		sw.Queued, _ = covs[0]["queued"].(int)
	case errs[1] == nil:
		sw.Queued, _ = covs[1]["queued"].(int)
	default:
		sw.Error = errs[0].Error()
	}
	s.mu.Lock()
	s.report.Sweeps = append(s.report.Sweeps, sw)
	s.mu.Unlock()
	return true
}

// end adds what the soak did to the observation.
func (s *soak) end(cloud *localcloud.Cloud, o *observation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o.soak = s.report
	o.failed = map[string]localcloud.Record{}
	for id, r := range s.failed {
		o.failed[id] = r
	}
	o.restarted = map[string]time.Time{}
	for id, at := range s.restarted {
		o.restarted[id] = at
	}
}

// ledgerState is what the ledger's keys and entries say of an instance's
// latest generation.
type ledgerState struct {
	generation int
	final      bool
	// lease is when the generation stops holding the instance.
	lease time.Time
}

// ledgerStates reads the ledger bucket of the local cloud.
func ledgerStates(cloud *localcloud.Cloud) map[string]ledgerState {
	return ledgerStatesOf(cloud.OSS.Objects(localcloud.LedgerBucket, localcloud.LedgerPrefix))
}

// ledgerStatesOf reads the ledger's objects (key → body), keys under
// localcloud.LedgerPrefix.
func ledgerStatesOf(objects map[string][]byte) map[string]ledgerState {
	type gen struct {
		claim *ledger.Claim
		final bool
		task  *ledger.Task
		tasks int
	}
	prefix := localcloud.LedgerPrefix
	by := map[string]map[int]*gen{}
	for key, body := range objects {
		parts := strings.Split(strings.TrimPrefix(key, prefix), "/")
		// <account>/<region>/<instance>/g000001/<name>
		if len(parts) != 5 || len(parts[3]) != 7 || parts[3][0] != 'g' {
			continue
		}
		n, err := strconv.Atoi(parts[3][1:])
		if err != nil {
			continue
		}
		id, name := parts[2], parts[4]
		if by[id] == nil {
			by[id] = map[int]*gen{}
		}
		g := by[id][n]
		if g == nil {
			g = &gen{}
			by[id][n] = g
		}
		switch {
		case name == "claim":
			var c ledger.Claim
			if json.Unmarshal(body, &c) == nil {
				g.claim = &c
			}
		case name == "final":
			g.final = true
		case strings.HasPrefix(name, "task-"):
			var t ledger.Task
			if k, err := strconv.Atoi(strings.TrimPrefix(name, "task-")); err == nil && k > g.tasks && json.Unmarshal(body, &t) == nil {
				g.tasks, g.task = k, &t
			}
		}
	}
	out := map[string]ledgerState{}
	for id, gens := range by {
		var st ledgerState
		for n, g := range gens {
			if g.claim != nil && n > st.generation {
				st.generation = n
			}
		}
		if g := gens[st.generation]; g != nil && g.claim != nil {
			st.final = g.final
			st.lease = g.claim.LeaseUntil
			if g.task != nil && g.task.LeaseUntil.After(st.lease) {
				st.lease = g.task.LeaseUntil
			}
		}
		out[id] = st
	}
	return out
}
