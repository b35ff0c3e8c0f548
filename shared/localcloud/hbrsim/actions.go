package hbrsim

import (
	"cmp"
	"container/heap"
	"crypto/sha256"
	"encoding/json"
	"math/big"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim"
)

// maxFilterIDs bounds the InstanceIds/ClientIds filters of
// DescribeBackupClients. [UNVERIFIED] the real limit is not documented.
const maxFilterIDs = 100

func (s *Server) installBackupClients(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
	raw, ok := req.Params["InstanceIds"]
	if !ok {
		return nil, rpcsim.MissingParameter("InstanceIds")
	}
	ids, apiErr := parseIDList("InstanceIds", raw, MaxInstallIDs)
	if apiErr != nil {
		return nil, apiErr
	}
	if apiErr := checkCrossAccount(req.Params); apiErr != nil {
		return nil, apiErr
	}
	now := req.Time

	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(now)

	statuses := make([]map[string]any, 0, len(ids))
	var items []taskItem
	lastCode := ""
	for _, id := range ids {
		in := s.instance(id, now)
		b := s.behavior(id)
		code := ""
		switch {
		case b.Gone:
			code = CodeInstanceNotExists
		case b.InvalidCode != "":
			code = b.InvalidCode
		case !b.ReadyAt.IsZero() && now.Before(b.ReadyAt), now.Sub(in.firstSeen) < b.ReadyAfter:
			code = cmp.Or(b.NotReadyCode, CodeCloudAssistNotRun)
		}
		statuses = append(statuses, map[string]any{"InstanceId": id, "ValidInstance": code == "", "ErrorCode": code})
		lastCode = code
		if code != "" {
			continue
		}
		in.installs++
		if in.created.IsZero() || in.status == "" {
			// HBR reports CreatedTime in whole seconds.
			in.created = now.Truncate(time.Second)
		}
		if in.status != ClientActivated {
			in.status = ClientInstalling
			in.becomes, in.becomesAt = "", time.Time{}
		}
		items = append(items, taskItem{
			id:       id,
			duration: b.InstallDuration,
			fail:     in.installs <= b.FailInstalls,
			failCode: cmp.Or(b.FailCode, DefaultFailCode),
			end:      b.TaskEnd,
		})
	}

	if len(items) == 0 {
		// Terraform receives the not-ready codes of a lone instance as the
		// call's own error; mirror that.
		if len(ids) == 1 && (lastCode == CodeCloudAssistNotRun || lastCode == CodeInstanceNotRunning) {
			return nil, rpcsim.Errorf(http.StatusBadRequest, lastCode, "%s", notReadyMessage(lastCode))
		}
		return map[string]any{"TaskId": "", "InstanceStatuses": statuses}, nil
	}
	t := s.newTask(now, items)
	return map[string]any{"TaskId": t.id, "InstanceStatuses": statuses}, nil
}

func notReadyMessage(code string) string {
	if code == CodeInstanceNotRunning {
		return "The ECS instance is not running."
	}
	return "Cloud Assistant is not running on the instance."
}

func checkCrossAccount(p map[string]string) *rpcsim.APIError {
	if t, ok := p["CrossAccountType"]; ok && t != "SELF_ACCOUNT" && t != "CROSS_ACCOUNT" {
		return rpcsim.InvalidParameter("The parameter CrossAccountType must be SELF_ACCOUNT or CROSS_ACCOUNT, got %q.", t)
	}
	if u, ok := p["CrossAccountUserId"]; ok {
		if _, err := strconv.ParseInt(u, 10, 64); err != nil {
			return rpcsim.InvalidParameter("The parameter CrossAccountUserId must be an integer, got %q.", u)
		}
	}
	return nil
}

// parseIDList parses a JSON array of 1..max distinct non-empty strings.
// Duplicates are dropped, order kept.
func parseIDList(name, raw string, max int) ([]string, *rpcsim.APIError) {
	var items []any
	if err := json.Unmarshal([]byte(raw), &items); err != nil {
		return nil, rpcsim.InvalidParameter("The parameter %s must be a JSON array of strings: %v.", name, err)
	}
	if len(items) == 0 || len(items) > max {
		return nil, rpcsim.InvalidParameter("The parameter %s must list 1 to %d IDs, got %d.", name, max, len(items))
	}
	ids := make([]string, 0, len(items))
	for i, it := range items {
		id, ok := it.(string)
		if !ok || strings.TrimSpace(id) == "" {
			return nil, rpcsim.InvalidParameter("The parameter %s must list non-empty strings; item %d is %v.", name, i, it)
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (s *Server) newTask(now time.Time, items []taskItem) *task {
	t := &task{created: now, items: items, final: StateCompleted}
	s.rpc.Rand(func(r *rand.Rand) {
		for {
			t.id = "t-" + randomID(r, 21)
			if s.tasks[t.id] == nil {
				return
			}
		}
	})
	var longest time.Duration
	ending := time.Duration(-1)
	for _, it := range items {
		longest = max(longest, it.duration)
		if it.end != "" && (ending < 0 || it.duration < ending) {
			ending, t.final = it.duration, it.end
		}
	}
	if ending >= 0 {
		t.endAt = now.Add(ending)
	} else {
		t.endAt = now.Add(longest)
	}
	t.seq = len(s.order)
	s.tasks[t.id] = t
	s.order = append(s.order, t)
	heap.Push(&s.ending, t)
	return t
}

// finished reports whether item it completed its install before the task
// ended.
func (t *task) finished(it taskItem) bool {
	if t.final == StateCompleted {
		return true
	}
	return it.end == "" && !t.created.Add(it.duration).After(t.endAt)
}

// advance settles the client records of tasks that have ended by now, in the
// order they ended, and the seeded transitions that are due. Only what is
// due is visited: both wait in heaps by time. Callers hold s.mu.
func (s *Server) advance(now time.Time) {
	for len(s.moving) > 0 && !now.Before(s.moving[0].at) {
		tr := heap.Pop(&s.moving).(transition)
		// An install, or a newer transition, replaced this one.
		if in := tr.in; in.becomes != "" && in.becomesAt.Equal(tr.at) {
			in.status, in.becomes, in.becomesAt = in.becomes, "", time.Time{}
		}
	}
	for len(s.ending) > 0 && !now.Before(s.ending[0].endAt) {
		t := heap.Pop(&s.ending).(*task)
		for _, it := range t.items {
			in := s.instances[it.id]
			switch {
			case in.status == ClientActivated:
				// A working client stays activated whatever a later task did.
			case !t.finished(it):
				in.status = ClientUnknown
			case it.fail:
				in.status = ClientInstallFailed
			default:
				in.status = ClientActivated
			}
		}
	}
}

// transition is a seeded client's pending change of status.
type transition struct {
	at time.Time
	in *instance
}

// transitions is a min-heap of transitions by time.
type transitions []transition

func (h transitions) Len() int           { return len(h) }
func (h transitions) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h transitions) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *transitions) Push(x any)        { *h = append(*h, x.(transition)) }
func (h *transitions) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = transition{}
	*h = old[:len(old)-1]
	return x
}

// taskQueue is a min-heap of tasks by end time, then creation: the order
// in which their ends settle the client records.
type taskQueue []*task

func (h taskQueue) Len() int { return len(h) }
func (h taskQueue) Less(i, j int) bool {
	if !h[i].endAt.Equal(h[j].endAt) {
		return h[i].endAt.Before(h[j].endAt)
	}
	return h[i].seq < h[j].seq
}
func (h taskQueue) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *taskQueue) Push(x any)   { *h = append(*h, x.(*task)) }
func (h *taskQueue) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}

func (s *Server) describeTask(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
	id := req.Params["TaskId"]
	if id == "" {
		return nil, rpcsim.MissingParameter("TaskId")
	}
	now := req.Time
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(now)
	t := s.tasks[id]
	if t == nil {
		return nil, rpcsim.Errorf(http.StatusBadRequest, TaskNotFoundCode, "The specified task %q does not exist.", id)
	}
	resp := map[string]any{
		"Name":        TaskName,
		"CreatedTime": t.created.Unix(),
	}
	if now.Before(t.endAt) {
		total := t.endAt.Sub(t.created)
		progress := int(99 * now.Sub(t.created) / total)
		resp["Description"] = StateCreated
		resp["Progress"] = min(max(progress, 0), 99)
		resp["UpdatedTime"] = now.Unix()
		if progress == 0 {
			resp["Result"] = ""
		} else {
			resp["Result"] = "{}"
		}
		return resp, nil
	}
	resp["Description"] = t.final
	resp["UpdatedTime"] = t.endAt.Unix()
	resp["CompletedTime"] = t.endAt.Unix()
	switch t.final {
	case StateExpired:
		resp["Progress"] = -1
	case StateCancelled:
		done := 0
		for _, it := range t.items {
			if t.finished(it) {
				done++
			}
		}
		resp["Progress"] = 100 * done / len(t.items)
	default:
		resp["Progress"] = 100
	}
	results := make([]map[string]string, 0, len(t.items))
	for _, it := range t.items {
		r := map[string]string{"instanceId": it.id, "clientId": s.instances[it.id].clientID, "errorCode": ""}
		switch {
		case !t.finished(it) && t.final == StateCancelled:
			r["clientStatus"] = ClientInstalling
		case !t.finished(it):
			r["clientStatus"] = ClientUnknown
		case it.fail:
			r["clientStatus"], r["errorCode"] = ClientInstallFailed, it.failCode
		default:
			r["clientStatus"] = ClientActivated
		}
		results = append(results, r)
	}
	data, err := json.Marshal(results)
	if err != nil {
		return nil, rpcsim.Errorf(http.StatusInternalServerError, "InternalError", "encode result: %v", err)
	}
	resp["Result"] = string(data)
	return resp, nil
}

func (s *Server) describeBackupClients(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
	p := req.Params
	clientType, ok := p["ClientType"]
	if !ok || clientType == "" {
		return nil, rpcsim.MissingParameter("ClientType")
	}
	if clientType != "ECS_CLIENT" && clientType != "CONTAINER_CLIENT" {
		return nil, rpcsim.InvalidParameter("The parameter ClientType must be ECS_CLIENT or CONTAINER_CLIENT, got %q.", clientType)
	}
	pageNumber, apiErr := intParam(p, "PageNumber", 1, 1, 1<<30)
	if apiErr != nil {
		return nil, apiErr
	}
	pageSize, apiErr := intParam(p, "PageSize", 10, 1, 99)
	if apiErr != nil {
		return nil, apiErr
	}
	var instanceIDs, clientIDs []string
	if raw, ok := p["InstanceIds"]; ok {
		if instanceIDs, apiErr = parseIDList("InstanceIds", raw, maxFilterIDs); apiErr != nil {
			return nil, apiErr
		}
	}
	if raw, ok := p["ClientIds"]; ok {
		if clientIDs, apiErr = parseIDList("ClientIds", raw, maxFilterIDs); apiErr != nil {
			return nil, apiErr
		}
	}

	now := req.Time
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(now)
	for _, id := range instanceIDs {
		s.instance(id, now)
	}
	var ids []string
	if clientType == "ECS_CLIENT" {
		// Named instances or clients are looked up: O(ids named), whatever
		// the number of instances; without either, every one is listed.
		var candidates []string
		switch {
		case instanceIDs != nil:
			candidates = instanceIDs
		case clientIDs != nil:
			for _, c := range clientIDs {
				if id, ok := s.byClient[c]; ok {
					candidates = append(candidates, id)
				}
			}
		default:
			candidates = s.sortedIDs()
		}
		for _, id := range candidates {
			in := s.instances[id]
			if in == nil || in.status == "" ||
				(clientIDs != nil && !slices.Contains(clientIDs, in.clientID)) {
				continue
			}
			ids = append(ids, id)
		}
	}
	if !sort.StringsAreSorted(ids) {
		sort.Strings(ids)
	}
	clients := []map[string]any{}
	if start := (pageNumber - 1) * pageSize; start < len(ids) {
		for _, id := range ids[start:min(start+pageSize, len(ids))] {
			in := s.instances[id]
			clients = append(clients, map[string]any{
				"ClientId":     in.clientID,
				"InstanceId":   id,
				"ClientType":   "ECS_CLIENT",
				"Status":       in.status,
				"CreatedTime":  in.created.Unix(),
				"OsType":       "linux",
				"ArchType":     "amd64",
				"BackupStatus": "UNPROTECTED",
			})
		}
	}
	return map[string]any{
		"Clients":    clients,
		"TotalCount": len(ids),
		"PageNumber": pageNumber,
		"PageSize":   pageSize,
	}, nil
}

func intParam(p map[string]string, name string, def, lo, hi int) (int, *rpcsim.APIError) {
	raw, ok := p[name]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		return 0, rpcsim.InvalidParameter("The parameter %s must be an integer from %d to %d, got %q.", name, lo, hi, raw)
	}
	return n, nil
}

// instance returns the record of id, creating it as first seen at now.
// Callers hold s.mu.
func (s *Server) instance(id string, now time.Time) *instance {
	in := s.instances[id]
	if in == nil {
		in = &instance{firstSeen: now, clientID: clientID(id)}
		s.instances[id] = in
		s.byClient[in.clientID] = id
		s.ids.Add(id)
	}
	return in
}

// sortedIDs returns every instance ID in order. Callers hold s.mu.
func (s *Server) sortedIDs() []string { return s.ids.Sorted() }

// behavior returns the behaviour of id. Callers hold s.mu.
func (s *Server) behavior(id string) Behavior {
	if b, ok := s.per[id]; ok {
		return b
	}
	return s.def
}

// clientID derives a stable "c-" + 20 lower-case alphanumerics from the
// instance ID, so an instance keeps its client across installs and runs.
func clientID(instanceID string) string {
	sum := sha256.Sum256([]byte(instanceID))
	return "c-" + new(big.Int).SetBytes(sum[:]).Text(36)[:20] // ~50 digits
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

func randomID(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = idAlphabet[r.IntN(len(idAlphabet))]
	}
	return string(b)
}
