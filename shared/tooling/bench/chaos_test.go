package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
)

func TestInstanceConflictsFollowSupersedesChains(t *testing.T) {
	rec := func(id, job, outcome, code, supersedes string) localcloud.Record {
		return localcloud.Record{InstanceID: id, JobID: job, Outcome: outcome, Code: code, Supersedes: supersedes}
	}
	records := []localcloud.Record{
		// A restart (generation 2) and a sweep (generation 3): each names
		// the one before, and the third settles the first too.
		rec("i-a", "j-1", "FAILED", "ExecutionFailed", ""),
		rec("i-a", "j-2", "FAILED", "ExecutionFailed", "j-1/FAILED"),
		rec("i-a", "j-3", "CANCELLED", "TaskCancelled", "j-2/FAILED"),
		// A takeover names the dead owner's job alone.
		rec("i-b", "j-4", "TIMEOUT", "Deadline", ""),
		rec("i-b", "j-5", "INSTALLED", "", "j-4"),
		// Two verdicts that know nothing of each other.
		rec("i-c", "j-6", "INSTALLED", "", ""),
		rec("i-c", "j-7", "FAILED", "X", ""),
		// Identical repeats are no conflict.
		rec("i-d", "j-8", "INSTALLED", "", ""),
		rec("i-d", "j-8", "INSTALLED", "", ""),
	}
	n, samples := instanceConflicts(records, 5)
	assert.Equal(t, 1, n)
	require.Len(t, samples, 1)
	assert.Contains(t, samples[0], "conflicting i-c: j-6 INSTALLED/")
	n, samples = instanceConflicts(records, 0)
	assert.Equal(t, 1, n)
	assert.Empty(t, samples)
}

func TestRestartAndForeignReports(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	rec := func(id, job, outcome, supersedes string) localcloud.Record {
		return localcloud.Record{InstanceID: id, JobID: job, Outcome: outcome, Supersedes: supersedes}
	}
	w := &localcloud.World{Clients: []localcloud.ForeignClient{
		{ID: "i-f1", Status: "ACTIVATED"}, {ID: "i-f2", Status: "STOPPED"}, {ID: "i-f3", Status: "STOPPED"},
	}}
	obs := observation{
		plan: Plan{World: w, Restarts: []string{"i-ok", "i-never", "i-noretry", "i-stuck"}},
		records: []localcloud.Record{
			rec("i-ok", "j-1", "FAILED", ""), rec("i-ok", "j-2", "FAILED", "j-1/FAILED"),
			rec("i-noretry", "j-3", "FAILED", ""),
			rec("i-stuck", "j-4", "TIMEOUT", ""), rec("i-stuck", "j-5", "FAILED", "j-9/FAILED"),
		},
		failed: map[string]localcloud.Record{
			"i-ok": rec("i-ok", "j-1", "FAILED", ""), "i-noretry": rec("i-noretry", "j-3", "FAILED", ""),
			"i-stuck": rec("i-stuck", "j-4", "TIMEOUT", ""),
		},
		restarted: map[string]time.Time{"i-ok": t0, "i-stuck": t0},
		ledger: map[string]ledgerState{
			"i-ok": {generation: 2, final: true}, "i-noretry": {generation: 1, final: true}, "i-stuck": {generation: 2, final: true},
		},
		report: localcloud.Report{Outcomes: map[string]localcloud.InstanceOutcome{
			"i-f1": {Outcome: "ALREADY_INSTALLED"}, "i-f2": {Outcome: "SKIPPED"},
		}},
	}
	rr := restartReport(obs)
	assert.Equal(t, RestartReport{Instances: 4, Failed: 3, Restarted: 2, Superseded: 1, Problems: []string{
		"i-never: no failure recorded (0 records)",
		"i-noretry: FAILED, never restarted",
		"i-stuck: TIMEOUT, restarted, then 2 records, ledger generation 2 (final true)",
	}}, rr)
	byStatus, surprises := foreignReport(obs)
	assert.Equal(t, map[string]map[string]int{"ACTIVATED": {"ALREADY_INSTALLED": 1}, "STOPPED": {"SKIPPED": 1, "LOST": 1}}, byStatus)
	require.Len(t, surprises, 1)
	assert.Contains(t, surprises[0], "(STOPPED client): LOST")
	byStatus, surprises = foreignReport(observation{})
	assert.Nil(t, byStatus)
	assert.Nil(t, surprises)
}

func TestLedgerStates(t *testing.T) {
	p := localcloud.LedgerPrefix + "1234567890123456/cn-hangzhou/"
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	objects := map[string][]byte{
		p + "i-a/g000001/claim":     []byte(`{"jobId":"j-1","leaseUntil":"2026-12-01T00:10:00Z"}`),
		p + "i-a/g000001/final":     []byte(`{}`),
		p + "i-a/g000002/claim":     []byte(`{"jobId":"j-2","leaseUntil":"2026-12-01T00:20:00Z"}`),
		p + "i-a/g000002/intent-01": []byte(`{}`),
		p + "i-a/g000002/task-01":   []byte(`{"leaseUntil":"2026-12-01T00:30:00Z"}`),
		p + "i-a/g000002/task-02":   []byte(`{"leaseUntil":"2026-12-01T00:40:00Z"}`),
		p + "i-b/g000001/claim":     []byte(`{"jobId":"j-3","leaseUntil":"2026-12-01T00:05:00Z"}`),
		p + "i-b/g000001/final":     []byte(`{}`),
		p + "not-a-ledger-key":      []byte(`{}`),
	}
	got := ledgerStatesOf(objects)
	assert.Equal(t, ledgerState{generation: 2, lease: t0.Add(40 * time.Minute)}, got["i-a"], "the latest task's lease")
	assert.Equal(t, ledgerState{generation: 1, final: true, lease: t0.Add(5 * time.Minute)}, got["i-b"])
	assert.Len(t, got, 2)
}
