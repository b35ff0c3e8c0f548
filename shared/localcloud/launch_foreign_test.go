package localcloud

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
)

func TestNewWorldForeignClients(t *testing.T) {
	t.Parallel()
	o := LaunchOptions{Instances: 200, Seed: 3, Speedup: 10, DuplicateRate: 0.05, ForeignClients: 0.02}
	w, err := NewWorld(o)
	require.NoError(t, err)
	require.Len(t, w.Clients, 5*4, "2 %% of 200 instances for each of the five statuses")
	launched := map[string]time.Duration{}
	for _, in := range w.Instances {
		launched[in.ID] = in.Launched
	}
	perStatus := map[string]int{}
	seen := map[string]bool{}
	for i, fc := range w.Clients {
		if i > 0 {
			assert.GreaterOrEqual(t, fc.At, w.Clients[i-1].At, "sorted by time")
		}
		assert.False(t, seen[fc.ID], "%s gets one client", fc.ID)
		seen[fc.ID] = true
		perStatus[fc.Status]++
		after := fc.At - launched[fc.ID]
		assert.True(t, after >= 200*time.Millisecond && after <= time.Second, "%s appears 2–10 s (real) after its launch: %s", fc.ID, after)
		switch fc.Status {
		case hbrsim.ClientInstalling, hbrsim.ClientUpgrading:
			assert.Equal(t, hbrsim.ClientActivated, fc.Then, "%s settles", fc.Status)
			assert.True(t, fc.After >= 3*time.Second && fc.After <= 18*time.Second, "%s settles 30–180 s (real) later: %s", fc.Status, fc.After)
		default:
			assert.Empty(t, fc.Then)
		}
	}
	for _, status := range ForeignStatuses {
		assert.Equal(t, 4, perStatus[status], status)
	}

	o.ForeignClients = 0
	plain, err := NewWorld(o)
	require.NoError(t, err)
	assert.Empty(t, plain.Clients)
	assert.Equal(t, plain.Events, w.Events, "clients leave the events as they were")
	assert.Equal(t, plain.Instances, w.Instances)

	tiny, err := NewWorld(LaunchOptions{Instances: 7, Seed: 3, ForeignClients: 0.001})
	require.NoError(t, err)
	assert.Len(t, tiny.Clients, 5, "at least one per status when asked for")
}

// Another installer's clients are judged by their status, and an instance
// whose installs all fail, announced again after its FAILED record, ends
// with a second generation's record that supersedes the first.
func TestE2ELaunchWorldForeignClientsAndRestart(t *testing.T) {
	t.Parallel()
	w, err := NewWorld(LaunchOptions{Instances: 12, Seed: 8, Speedup: 30, SingleShare: 0.4, MaxBatch: 6, Span: time.Minute,
		ForeignClients: 0.01})
	require.NoError(t, err)
	require.Len(t, w.Clients, 5)
	foreign := map[string]string{}
	for _, fc := range w.Clients {
		foreign[fc.ID] = fc.Status
	}
	var failing string
	for _, id := range w.IDs() {
		if foreign[id] == "" {
			failing = id
			break
		}
	}
	timing := fastTiming()
	timing.MaxAttempts = 1
	opts := Options{Seed: 8, Timing: timing, Instances: map[string]hbrsim.Behavior{
		failing: {InstallDuration: time.Second, FailInstalls: 1000},
	}}
	var cloud *Cloud
	r := run(t, opts, 90*time.Second, func(c *Cloud) {
		cloud = c
		c.Launch(context.Background(), w, false)
		var failedAt time.Time
		require.Eventually(t, func() bool {
			i := slices.IndexFunc(c.Records(), func(r Record) bool { return r.InstanceID == failing && r.Outcome == "FAILED" })
			if i >= 0 {
				failedAt = c.Records()[i].At
			}
			return i >= 0
		}, 60*time.Second, 50*time.Millisecond, "the failing instance's first generation fails")
		// An event's time has whole seconds: the restart comes in a later
		// second than the record, as it would minutes later.
		time.Sleep(time.Until(failedAt.Truncate(time.Second).Add(1100 * time.Millisecond)))
		require.NoError(t, c.Restart(context.Background(), failing))
	})
	want := map[string]string{
		hbrsim.ClientActivated: "ALREADY_INSTALLED", hbrsim.ClientInstalling: "ALREADY_INSTALLED",
		hbrsim.ClientInstallFailed: "INSTALLED", hbrsim.ClientUpgrading: "ALREADY_INSTALLED", hbrsim.ClientStopped: "SKIPPED",
	}
	for id, status := range foreign {
		assert.Equal(t, want[status], r.Outcomes[id].Outcome, "%s with another installer's %s client", id, status)
		assert.Equal(t, 1, r.Faults["foreign_client_"+status], status)
	}
	assert.Equal(t, 1, r.Faults["restarts"])
	var recs []Record
	for _, rec := range cloud.Records() {
		if rec.InstanceID == failing {
			recs = append(recs, rec)
		}
	}
	require.Len(t, recs, 2, "one record per generation: %+v", recs)
	assert.Equal(t, "FAILED", recs[1].Outcome)
	assert.NotEqual(t, recs[0].JobID, recs[1].JobID, "the restart is a job of its own")
	assert.Equal(t, recs[0].JobID+"/FAILED", recs[1].Supersedes, "the second generation supersedes the first")
	assert.Zero(t, r.WithoutRecord)
}
