// Package job defines the message that carries an install job through the
// two queues — install work on the install queue (announcements a sweep
// found, readiness retries, reinstalls), poll, bind and sweep steps on the
// job queue — and its encoding.
//
// The schema is versioned ([Version]); it is documented in the README. A
// message holds at most [MaxInstances] instances so that, encoded, it always
// fits the 64 KB MNS limit with room to spare. Decode returns Invalid errors
// (package fault) for anything malformed.
package job

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Version is the version of poll, install-retry and bind messages: the
// lowest reader version that can act on them (see ReaderVersion for the
// rule). Schema 3 added the instance ledger's ownership (generation, lease)
// to each instance: a reader of schema 2 would act without it.
const Version = 3

// MaxInstances bounds the instances in one message: the HBR limit of one
// InstallBackupClients call, which keeps every message small.
const MaxInstances = 20

// Kind says what the receiver of a message must do.
type Kind string

const (
	// KindInstallRetry is install work, for the install function (the
	// install queue): instances a reconcile sweep announces (generation 0:
	// to be claimed first), and steps of an owner's chain (not ready yet, a
	// call that failed transiently, a client another installer is still
	// installing, a reinstall after a failed attempt).
	KindInstallRetry Kind = "install-retry"
	// KindPoll asks for DescribeTask on TaskID.
	KindPoll Kind = "poll"
	// KindBind asks for the instances, whose clients are ACTIVATED, to be
	// bound to their backup policy (a binding that failed transiently;
	// schema 2, BindVersion).
	KindBind Kind = "bind"
	// KindSweep is declared in version.go.
)

// Message is one job message on the queue.
type Message struct {
	Version int    `json:"version"`
	Kind    Kind   `json:"kind"`
	Region  string `json:"region"`
	// TaskID is the HBR install task to poll (KindPoll only).
	TaskID string `json:"taskId,omitempty"`
	// TaskStartedAt is when InstallBackupClients returned TaskID.
	TaskStartedAt time.Time `json:"taskStartedAt,omitzero"`
	// PollCount counts the DescribeTask calls already made for TaskID.
	PollCount int `json:"pollCount"`
	// Retries counts consecutive transient failures while handling this job
	// step; it grows the back-off and resets when a call succeeds.
	Retries int `json:"retries,omitempty"`
	// Deadline is the hard stop: a poll message received after it ends its
	// instances with TIMEOUT without calling DescribeTask; an install-retry
	// message received after it ends them as NOT_READY (or FAILED when the
	// cause was a transient error).
	Deadline time.Time `json:"deadline"`
	// OriginEventID is the id of the event that started the first instance's
	// job, for tracing.
	OriginEventID string `json:"originEventId,omitempty"`
	// LastError is the code of the transient error that caused this retry.
	LastError string `json:"lastError,omitempty"`
	// Instances are the instances this step covers, 1..MaxInstances.
	Instances []Instance `json:"instances"`
	// SentAt is when the message was produced.
	SentAt time.Time `json:"sentAt"`
	// Hops counts how often a poller too old to read the message put it
	// back on the queue (see Defer).
	Hops int `json:"hops,omitempty"`
	// Sweep is the state of the reconcile sweep a KindSweep message
	// continues.
	Sweep *Sweep `json:"sweep,omitempty"`
}

// Instance is one instance's place in its job.
type Instance struct {
	ID string `json:"id"`
	// JobID is derived from the origin (event id + instance id) and carried
	// into every outcome record; consumers dedupe on (jobId, instanceId).
	JobID string `json:"jobId"`
	// OriginEventID is the id of the event that announced the instance.
	OriginEventID string `json:"originEventId,omitempty"`
	// EventTime is when the announcing event happened, when it could be
	// read; it decides whether a client found at install time predates the
	// job (ALREADY_INSTALLED) or was installed by it.
	EventTime time.Time `json:"eventTime,omitzero"`
	// FirstSeen is when the system first accepted the instance.
	FirstSeen time.Time `json:"firstSeen"`
	// ReadyBy is the readiness deadline: FirstSeen + READINESS_TIMEOUT.
	ReadyBy time.Time `json:"readyBy"`
	// Attempts counts install tasks started for the instance.
	Attempts int `json:"attempts"`
	// NotReady counts "not ready" answers so far (grows the retry delay).
	NotReady int `json:"notReady,omitempty"`
	// LastCode is the most recent failure code (for the final reason).
	LastCode string `json:"lastCode,omitempty"`
	// Installed, ClientID and TaskID are set in bind messages: the outcome
	// the instance reached before binding (INSTALLED or ALREADY_INSTALLED,
	// which it keeps when no policy applies), its client and install task.
	// Reason and Detail are that record's, kept so that the bound record
	// still says how the client was reached.
	Installed string `json:"installed,omitempty"`
	ClientID  string `json:"clientId,omitempty"`
	TaskID    string `json:"taskId,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Detail    string `json:"detail,omitempty"`

	// Generation is the instance ledger generation this job owns (0: not
	// claimed yet, an announcement); LeaseUntil the lease it last renewed;
	// Supersedes what the generation replaces ("<jobId>/<OUTCOME>" or
	// "<jobId>"), copied into its outcome record.
	Generation int       `json:"generation,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	Supersedes string    `json:"supersedes,omitempty"`
	// Sweep marks an announcement by a reconcile sweep (see
	// ledger.Announcement.Sweep); Trigger names what announced it.
	Sweep   bool   `json:"sweep,omitempty"`
	Trigger string `json:"trigger,omitempty"`

	// Via is the delivery the instance arrived in (the MNS message id, or
	// the event id): set by the receiver, never sent.
	Via string `json:"-"`
}

// JobID derives the job id of an instance announced by the event with the
// given source and id: the same event always yields the same job id, so a
// redelivered event produces outcome records a consumer can dedupe.
func JobID(eventSource, eventID, instanceID string) string {
	h := sha256.New()
	h.Write([]byte(eventSource))
	h.Write([]byte{0})
	h.Write([]byte(eventID))
	h.Write([]byte{0})
	h.Write([]byte(instanceID))
	return "j-" + hex.EncodeToString(h.Sum(nil)[:10])
}

// IDs returns the instance ids of m in order.
func (m Message) IDs() []string {
	ids := make([]string, len(m.Instances))
	for i, in := range m.Instances {
		ids[i] = in.ID
	}
	return ids
}

// Chunk splits instances into groups of at most n (n ≤ 0 means MaxInstances).
func Chunk(instances []Instance, n int) [][]Instance {
	if n <= 0 || n > MaxInstances {
		n = MaxInstances
	}
	var out [][]Instance
	for len(instances) > n {
		out = append(out, instances[:n:n])
		instances = instances[n:]
	}
	if len(instances) > 0 {
		out = append(out, instances)
	}
	return out
}
