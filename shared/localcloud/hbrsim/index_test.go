package hbrsim_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/hbrsim"
)

// TestTasksSettleInTheOrderTheyEnd: when one call finds several tasks of
// an instance ended, their ends apply in end order, ties in creation order.
func TestTasksSettleInTheOrderTheyEnd(t *testing.T) {
	tests := []struct {
		name        string
		second      time.Duration // the second task's install duration
		wantClient  string
		description string
	}{
		{"same end: creation order", 9 * time.Minute, "INSTALL_FAILED", "the failure (created second) applies last"},
		{"second ends first", 5 * time.Minute, "UNKNOWN", "the expiry (ending last) applies last"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			// The first task expires at 10 min, leaving the client UNKNOWN.
			r.sim.SetInstance("i-x", hbrsim.Behavior{TaskEnd: "expired", InstallDuration: 10 * time.Minute})
			require.NotEmpty(t, r.install("i-x").Body["TaskId"])
			// The second, a minute later, fails.
			r.clock.Set(t0.Add(time.Minute))
			r.sim.SetInstance("i-x", hbrsim.Behavior{FailInstalls: 5, InstallDuration: tc.second})
			require.NotEmpty(t, r.install("i-x").Body["TaskId"])
			r.clock.Set(t0.Add(time.Hour))
			assert.Equal(t, tc.wantClient, r.clientsOf(`["i-x"]`)["i-x"][0], tc.description)
		})
	}
}

// TestReplacedTransitionsDoNotFire: a seeded transition that an install or
// a newer transition replaced does not apply when its time comes.
func TestReplacedTransitionsDoNotFire(t *testing.T) {
	r := newRig(t)
	r.sim.SetDefault(hbrsim.Behavior{InstallDuration: time.Hour})
	r.sim.SetClientTransition("i-installed", "UPGRADING", t0.Add(-time.Hour), "ACTIVATED", 30*time.Second)
	r.sim.SetClientTransition("i-moved", "UPGRADING", t0.Add(-time.Hour), "ACTIVATED", 30*time.Second)
	r.clock.Set(t0.Add(10 * time.Second))
	require.Equal(t, 200, r.install("i-installed").Status)
	r.sim.SetClientTransition("i-moved", "REGISTERED", t0.Add(-time.Hour), "STOPPED", time.Minute)

	r.clock.Set(t0.Add(45 * time.Second))
	got := r.clientsOf(`["i-installed","i-moved"]`)
	assert.Equal(t, "INSTALLING", got["i-installed"][0], "the install replaced the transition")
	assert.Equal(t, "REGISTERED", got["i-moved"][0], "the newer transition replaced the first")
	r.clock.Set(t0.Add(70 * time.Second))
	assert.Equal(t, "STOPPED", r.clientsOf(`["i-moved"]`)["i-moved"][0])
}

// TestDescribeBackupClientsByClientAndInFull: the ClientIds filter finds
// the instances by their clients, and a listing without filters sees
// instances added since the last one, in order.
func TestDescribeBackupClientsByClientAndInFull(t *testing.T) {
	r := newRig(t)
	list := func(form map[string]string) (ids []string, clients []string) {
		d := r.call("DescribeBackupClients", map[string]string{"ClientType": "ECS_CLIENT", "PageSize": "99"}, form, nil)
		require.Equal(t, 200, d.Status, d.Body)
		for _, c := range d.Body["Clients"].([]any) {
			m := c.(map[string]any)
			ids = append(ids, m["InstanceId"].(string))
			clients = append(clients, m["ClientId"].(string))
		}
		assert.Equal(t, float64(len(ids)), d.Body["TotalCount"])
		return ids, clients
	}
	require.Equal(t, 200, r.install("i-c", "i-a").Status)
	ids, clients := list(nil)
	assert.Equal(t, []string{"i-a", "i-c"}, ids)
	require.Equal(t, 200, r.install("i-b", "i-0").Status)
	r.clientsOf(`["i-seen-without-client"]`)
	ids, _ = list(nil)
	assert.Equal(t, []string{"i-0", "i-a", "i-b", "i-c"}, ids)

	ids, _ = list(map[string]string{"ClientIds": `["` + clients[1] + `","c-nobody","` + clients[0] + `"]`})
	assert.Equal(t, []string{"i-a", "i-c"}, ids)
	ids, _ = list(map[string]string{"ClientIds": `["` + clients[1] + `"]`, "InstanceIds": `["i-a","i-c"]`})
	assert.Equal(t, []string{"i-c"}, ids)
	ids, _ = list(map[string]string{"InstanceIds": `["i-c","i-nobody","i-b"]`})
	assert.Equal(t, []string{"i-b", "i-c"}, ids)
}
