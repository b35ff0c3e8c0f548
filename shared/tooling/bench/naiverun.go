package bench

import (
	"container/heap"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
)

// NaiveModel says what the naive driver does (README and JSON).
const NaiveModel = "run, not modelled: for every event of the launch world (each RunInstances, Running and FirstHeartbeat, duplicates included), " +
	"one Terraform-like resource per instance named: InstallBackupClients for that instance alone, retried after 30 s, then 10 s longer each time, " +
	"while Cloud Assistant is not ready (5 min budget); then DescribeTask every 5 s until the task ends; a failed install is installed again, " +
	"up to the same number of attempts as ours. Real HBR emulator and adapter, on a virtual real-time clock"

// RunNaive runs the naive policy against the HBR emulator for the plan's
// launch world, in real-cloud time on a virtual clock (one request at a time,
// in time order, through the real hbr adapter and the emulator's wire
// protocol), and counts its HBR calls. The plan's behaviours and timeline
// are local (scaled by s); the run converts them back to real-cloud terms.
func RunNaive(ctx context.Context, p Plan, s Scale, maxAttempts int, seed int64) (Naive, error) {
	if p.World == nil {
		return Naive{}, fmt.Errorf("naive run: the plan has no launch world")
	}
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) // virtual: only offsets matter
	clock := &virtualClock{now: base}
	cred := cloudauth.Credentials{AccessKeyID: "LTAI5tNaiveKey", AccessKeySecret: "naive-secret"}
	sim := hbrsim.New(hbrsim.Options{AccessKeyID: cred.AccessKeyID, AccessKeySecret: cred.AccessKeySecret, Now: clock.Now, Seed: seed})
	heartbeat := map[string]time.Time{}
	for _, in := range p.World.Instances {
		heartbeat[in.ID] = base.Add(s.Real(in.Heartbeat))
	}
	for id, b := range p.Behaviors {
		b.ReadyAfter = 0
		b.ReadyAt = heartbeat[id]
		b.InstallDuration = s.Real(b.InstallDuration)
		sim.SetInstance(id, b)
	}
	client, err := hbr.New(hbr.Config{Region: "cn-hangzhou", Endpoint: "http://127.0.0.1:1", Transport: handlerTransport{sim}}, cred)
	if err != nil {
		return Naive{}, fmt.Errorf("naive run: %w", err)
	}

	d := naiveDriver{ctx: ctx, client: client, clock: clock, base: base, maxAttempts: max(maxAttempts, 1), installed: map[string]bool{}}
	for _, e := range p.World.Events {
		for _, id := range e.IDs {
			d.schedule(&resource{id: id, start: base.Add(s.Real(e.At)), wait: naiveReadyFirst}, base.Add(s.Real(e.At)))
		}
	}
	if err := d.run(); err != nil {
		return Naive{}, err
	}
	n := Naive{Model: NaiveModel, Installed: len(d.installed)}
	calls := sim.Calls()
	n.InstallCalls, n.DescribeCalls = calls["hbr.InstallBackupClients"], calls["hbr.DescribeTask"]
	n.HBRCalls = n.InstallCalls + n.DescribeCalls
	n.HBRCallsPerInstance = ratio(float64(n.HBRCalls), float64(n.Installed))
	if d.tasks > 0 {
		n.DetectionLagSeconds = round((d.lag / time.Duration(d.tasks)).Seconds(), 2)
	}
	return n, nil
}

// resource is one Terraform-like resource: one instance, for one event.
type resource struct {
	id       string
	start    time.Time // when its event arrived
	wait     time.Duration
	attempts int
	task     string
	created  time.Time
}

type step struct {
	at  time.Time
	seq int
	r   *resource
}

type steps []step

func (q steps) Len() int { return len(q) }
func (q steps) Less(i, j int) bool {
	return q[i].at.Before(q[j].at) || (q[i].at.Equal(q[j].at) && q[i].seq < q[j].seq)
}
func (q steps) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *steps) Push(x any)   { *q = append(*q, x.(step)) }
func (q *steps) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

type naiveDriver struct {
	ctx         context.Context
	client      *hbr.Client
	clock       *virtualClock
	base        time.Time
	maxAttempts int
	queue       steps
	seq         int
	installed   map[string]bool
	tasks       int
	lag         time.Duration
}

func (d *naiveDriver) schedule(r *resource, at time.Time) {
	d.seq++
	heap.Push(&d.queue, step{at: at, seq: d.seq, r: r})
}

func (d *naiveDriver) run() error {
	for d.queue.Len() > 0 {
		if err := d.ctx.Err(); err != nil {
			return fmt.Errorf("naive run: %w", err)
		}
		st := heap.Pop(&d.queue).(step)
		d.clock.Set(st.at)
		if err := d.advance(st.r, st.at); err != nil {
			return err
		}
	}
	return nil
}

// advance takes the resource's next step at time now.
func (d *naiveDriver) advance(r *resource, now time.Time) error {
	if r.task == "" {
		res, err := d.client.InstallBackupClients(d.ctx, []string{r.id})
		code := fault.CodeOf(err)
		if err == nil && res.TaskID == "" && len(res.Statuses) > 0 {
			code = res.Statuses[0].ErrorCode
		}
		switch {
		case code == hbrsim.CodeCloudAssistNotRun || code == hbrsim.CodeInstanceNotRunning:
			if next := now.Add(r.wait); next.Sub(r.start) <= naiveCreateBudget {
				d.schedule(r, next)
				r.wait += naiveReadyStep
			}
			return nil
		case err != nil && fault.Is(err, fault.Retryable):
			d.schedule(r, now.Add(naivePoll))
			return nil
		case err != nil || res.TaskID == "":
			return nil // gone, or another error: the resource fails
		}
		r.attempts++
		r.task, r.created = res.TaskID, now
		d.schedule(r, now.Add(naivePoll))
		return nil
	}
	task, err := d.client.DescribeTask(d.ctx, r.task)
	if err != nil || !task.Done() {
		d.schedule(r, now.Add(naivePoll))
		return nil
	}
	d.tasks++
	if task.CompletedTime > 0 {
		d.lag += now.Sub(time.Unix(task.CompletedTime, 0))
	}
	for _, cr := range task.Results {
		if cr.InstanceID != r.id {
			continue
		}
		switch cr.ClientStatus {
		case hbrsim.ClientActivated:
			d.installed[r.id] = true
		case hbrsim.ClientInstallFailed:
			if r.attempts < d.maxAttempts {
				r.task = ""
				d.schedule(r, now)
			}
		}
	}
	return nil
}

// virtualClock is the naive run's clock, moved by the driver.
type virtualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *virtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *virtualClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// handlerTransport serves requests with a handler in process: the wire
// format is kept, the sockets are skipped.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	res := rec.Result()
	res.Request = req
	return res, nil
}
