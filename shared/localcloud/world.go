package localcloud

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecsevent"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ecssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
)

// behavior is the HBR behaviour the options give an instance.
func (c *Cloud) behavior(id string) hbrsim.Behavior {
	if b, ok := c.opts.Instances[id]; ok {
		return b
	}
	return c.opts.Behavior
}

// announce counts an event and the instances it names (whether or not a
// rule will deliver it). An instance ECS does not know yet is created in it,
// Running, its Cloud Assistant ready when its HBR behaviour says (ECS and
// HBR must agree: the functions ask both), unless its behaviour says it is
// gone.
func (c *Cloud) announce(event []byte) {
	ids := namedInstances(event, c.opts.Region)
	now := time.Now()
	isRunning := describeEventType(event) == TypeStateChange
	c.mu.Lock()
	c.published++
	c.announcements += len(ids)
	var fresh []string
	for _, id := range ids {
		if !c.announced[id] {
			c.announced[id] = true
			fresh = append(fresh, id)
		}
		if _, ok := c.running[id]; isRunning && !ok {
			c.running[id] = now
		}
	}
	c.mu.Unlock()
	for _, id := range fresh {
		if _, known := c.ECS.Instance(id); known {
			continue
		}
		bh := c.behavior(id)
		if bh.Gone {
			continue
		}
		ready := bh.ReadyAt
		if ready.IsZero() {
			ready = now.Add(bh.ReadyAfter)
		}
		c.ECS.SetInstance(ecssim.Instance{ID: id, AssistantReadyAt: ready})
		c.HBR.InstanceSeen(id, now)
	}
}

// namedInstances returns the valid instance IDs an event names, whatever
// its type: what the parser accepts, plus the instances of RunInstances
// records under an ActionTrail type the parser may not know yet.
func namedInstances(event []byte, region string) []string {
	seen := map[string]bool{}
	var ids []string
	add := func(id string) {
		if id != "" && !seen[id] && job.ValidInstanceID(id) {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if b, err := ecsevent.Parse(event, region); err == nil {
		for _, cand := range b.Candidates {
			add(cand.InstanceID)
		}
	}
	var ev struct {
		Data struct {
			EventName  string              `json:"eventName"`
			Referenced map[string][]string `json:"referencedResources"`
		} `json:"data"`
	}
	if json.Unmarshal(event, &ev) == nil && ev.Data.EventName == "RunInstances" {
		for _, id := range ev.Data.Referenced["ACS::ECS::Instance"] {
			add(id)
		}
	}
	return ids
}

func (c *Cloud) onUnmatched(event []byte) {
	c.mu.Lock()
	c.unmatched = append(c.unmatched, describeEvent(event))
	c.mu.Unlock()
	c.entry("event", "no rule matches "+describeEvent(event)+": not delivered")
}

// Launch plays a launch world: from now (the world's start), ECS holds every
// instance (Starting, then Running at its Running event) and Cloud
// Assistant, in ECS and HBR alike, is ready from its FirstHeartbeat on. The
// events are published at their times, in the background (Wait waits for
// them), or all at once when allAtOnce is set (readiness keeps its
// timeline). The world's foreign clients appear in HBR at their times
// (counted in the report's faults as "foreign_client_<STATUS>"), whatever
// allAtOnce says. Launch returns at once.
func (c *Cloud) Launch(ctx context.Context, w World, allAtOnce bool) {
	start := time.Now()
	c.mu.Lock()
	if w.Options.Speedup > 0 {
		c.speedup = w.Options.Speedup
	}
	for _, in := range w.Instances {
		c.announced[in.ID] = true
	}
	c.mu.Unlock()
	ins := make([]ecssim.Instance, 0, len(w.Instances))
	for _, in := range w.Instances {
		ready := start.Add(in.Heartbeat)
		b := c.behavior(in.ID)
		b.ReadyAt = ready
		c.HBR.SetInstance(in.ID, b)
		c.HBR.InstanceSeen(in.ID, start.Add(in.Launched))
		if !b.Gone {
			ins = append(ins, ecssim.Instance{ID: in.ID, Status: ecssim.StatusStarting,
				Created: start.Add(in.Launched), AssistantReadyAt: ready})
		}
	}
	c.ECS.SetInstances(ins...)
	if len(w.Clients) > 0 {
		c.launching.Add(1)
		go func() {
			defer c.launching.Done()
			c.foreignClients(ctx, w.Clients, start)
		}()
	}
	c.launching.Add(1)
	go func() {
		defer c.launching.Done()
		for _, e := range w.Events {
			if !allAtOnce {
				select {
				case <-time.After(time.Until(start.Add(e.At))):
				case <-ctx.Done():
					return
				}
			}
			if e.Type == TypeStateChange {
				for _, id := range e.IDs {
					c.ECS.SetStatus(id, ecssim.StatusRunning)
				}
			}
			if err := c.Publish(ctx, w.Payload(e, start)); err != nil {
				c.addError(fmt.Sprintf("launch: publish %s: %v", e.EventID, err))
			}
		}
	}()
}

// foreignClients creates the clients of other installers at their times.
func (c *Cloud) foreignClients(ctx context.Context, clients []ForeignClient, start time.Time) {
	for _, fc := range clients {
		select {
		case <-time.After(time.Until(start.Add(fc.At))):
		case <-ctx.Done():
			return
		}
		c.HBR.SetClientTransition(fc.ID, fc.Status, time.Now(), fc.Then, fc.After)
		c.fire("foreign_client_" + fc.Status)()
		text := fmt.Sprintf("another installer created a %s client on %s", fc.Status, fc.ID)
		if fc.Then != "" {
			text += fmt.Sprintf(" (%s in %s)", fc.Then, fc.After.Round(time.Millisecond))
		}
		c.entry("hbr", text)
	}
}

// Restart announces an instance again with a StateChange Running event of
// its own (a new event id, the event's time now), as ECS does when the
// instance is stopped and started again: a later announcement that may
// reopen a recorded failure. It is counted in the report's faults as
// "restarts".
func (c *Cloud) Restart(ctx context.Context, id string) error {
	w := World{Options: LaunchOptions{Region: c.opts.Region, AccountID: c.opts.AccountID}}
	now := time.Now()
	e := LaunchEvent{Type: TypeStateChange, EventID: fmt.Sprintf("ev-restart-%s-%d", id, now.UnixNano()), IDs: []string{id}}
	c.ECS.SetStatus(id, ecssim.StatusRunning)
	if err := c.Publish(ctx, w.Payload(e, now)); err != nil {
		return fmt.Errorf("restart %s: %w", id, err)
	}
	c.fire("restarts")()
	return nil
}
