package localcloud

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/ecssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/fcsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
)

// SeedFleet gives ECS n running instances, Cloud Assistant ready, every
// tenth with an ACTIVATED backup client created a day before now: the
// fleet a reconcile sweep finds. It returns their IDs.
func (c *Cloud) SeedFleet(n int) []string {
	now := time.Now()
	ids := make([]string, 0, n)
	ins := make([]ecssim.Instance, 0, n)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("i-fleet%07d", i)
		ids = append(ids, id)
		ins = append(ins, ecssim.Instance{ID: id, Created: now.Add(-48 * time.Hour)})
	}
	c.ECS.SetInstances(ins...)
	for i, id := range ids {
		if i%10 == 0 {
			c.HBR.SetClient(id, hbrsim.ClientActivated, now.Add(-24*time.Hour))
		}
	}
	return ids
}

// Sweep invokes the reconcile function directly, as `s invoke` or the
// timer would, with payload (e.g. `{}` or `{"dryRun":true}`), and keeps its
// coverage for the report. The coverage is read from the function's
// response as generic JSON, so it follows the reconcile report's fields: it
// holds the whole response under "report" and the counts "running",
// "activated", "queued" (or "would_install" in a dry run) and "skipped"
// (instances the scope rules leave out, plus those with an install already
// in progress).
func (c *Cloud) Sweep(ctx context.Context, payload string) (map[string]any, error) {
	res, err := c.Function("reconcile").Invoke(ctx, []byte(payload), fcsim.InvokeOptions{})
	if err != nil {
		return nil, fmt.Errorf("invoke reconcile: %w", err)
	}
	if res.Err != nil {
		return nil, fmt.Errorf("reconcile failed: %s: %s", res.Err.Type, res.Err.Message)
	}
	var rep map[string]any
	if err := json.Unmarshal(res.Body, &rep); err != nil {
		return nil, fmt.Errorf("reconcile's response is not a JSON object: %w", err)
	}
	num := func(keys ...string) int {
		for _, k := range keys {
			if v, ok := rep[k].(float64); ok {
				return int(v)
			}
		}
		return 0
	}
	skipped := num("installing", "skipped")
	if ex, ok := rep["excluded"].(map[string]any); ok {
		for _, v := range ex {
			if f, ok := v.(float64); ok {
				skipped += int(f)
			}
		}
	}
	cov := map[string]any{
		"running":   num("total", "listed", "running"),
		"activated": num("covered", "activated"),
		"skipped":   skipped,
		"report":    rep,
	}
	if dry, _ := rep["dryRun"].(bool); dry {
		cov["would_install"] = num("missing", "wouldInstall", "would_install")
	} else {
		cov["queued"] = num("enqueued", "queued")
	}
	c.mu.Lock()
	c.coverage = cov
	c.mu.Unlock()
	return cov, nil
}
