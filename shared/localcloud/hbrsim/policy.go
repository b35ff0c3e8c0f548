package hbrsim

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim"
)

// Backup-policy bindings: CreatePolicyBindings and DescribePolicyBindings.
// Only policies added with [Server.AddPolicy] exist. An instance (data
// source) is bound to at most one policy, whatever its source type. Binding
// it again to the policy it is bound to fails with AlreadyBoundCode, as HBR
// documents; binding it to another policy fails with BoundElsewhereCode. A
// call is all or nothing, and the first bad item in list order decides the
// error: one bad item rejects the whole list and binds none ([UNVERIFIED]:
// HBR does not say whether a list is bound all or nothing, nor which item's
// error it reports). A data source listed twice in one call is bound once
// ([UNVERIFIED]).

const (
	// AlreadyBoundCode is the error code (HTTP 400) when a data source is
	// bound again to the policy it is already bound to. [DOC] the
	// CreatePolicyBindings API reference (mirrored): code
	// PolicyAlreadyBoundWithThisDataSource, HTTP 400, message "This
	// datasource has already been bound with the policy…".
	AlreadyBoundCode = "PolicyAlreadyBoundWithThisDataSource"
	// PolicyNotFoundCode is the error code (HTTP 404) for an unknown
	// PolicyId. [UNVERIFIED] the real code is not documented; the name
	// follows the "…NotExists" pattern of HBR's published codes.
	PolicyNotFoundCode = "PolicyNotExists"
	// BoundElsewhereCode is the error code (HTTP 400) when a data source is
	// already bound to another policy. [UNVERIFIED] the real code is not
	// documented.
	BoundElsewhereCode = "DataSourceAlreadyBound"
	// MaxBindingItems bounds PolicyBindingList and the DataSourceIds filter.
	// [UNVERIFIED] the real limits are not documented.
	MaxBindingItems = 100
)

// sourceTypes are the SourceType values the API reference lists.
var sourceTypes = []string{"UDM_ECS", "OSS", "NAS", "COMMON_NAS", "ECS_FILE", "File", "COMMON_FILE_SYSTEM", "OTS"}

// Binding is one data source bound to a policy.
type Binding struct {
	PolicyID     string
	DataSourceID string
	SourceType   string
	Created      time.Time
}

// policyState is the emulator's policy model, kept apart from the client
// model (its own lock; never held together with Server.mu).
type policyState struct {
	mu       sync.Mutex
	policies map[string]bool
	bindings map[string]Binding // by data source ID
}

// AddPolicy makes backup policies exist (IDs such as "po-000abc").
func (s *Server) AddPolicy(ids ...string) {
	p := &s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.policies == nil {
		p.policies = map[string]bool{}
	}
	for _, id := range ids {
		p.policies[id] = true
	}
}

// Bind binds a data source to a policy directly, as if done before the run
// (the policy is added if needed; an existing binding is replaced).
func (s *Server) Bind(dataSourceID, policyID, sourceType string, at time.Time) {
	s.AddPolicy(policyID)
	p := &s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bind(Binding{PolicyID: policyID, DataSourceID: dataSourceID, SourceType: sourceType, Created: at})
}

// Bindings returns every binding as data source ID → policy ID.
func (s *Server) Bindings() map[string]string {
	p := &s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]string, len(p.bindings))
	for id, b := range p.bindings {
		out[id] = b.PolicyID
	}
	return out
}

// BindingList returns every binding, sorted by data source ID.
func (s *Server) BindingList() []Binding {
	p := &s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sorted()
}

// bind records b. Callers hold p.mu.
func (p *policyState) bind(b Binding) {
	if p.bindings == nil {
		p.bindings = map[string]Binding{}
	}
	p.bindings[b.DataSourceID] = b
}

// sorted returns the bindings ordered by data source ID. Callers hold p.mu.
func (p *policyState) sorted() []Binding {
	out := make([]Binding, 0, len(p.bindings))
	for _, b := range p.bindings {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DataSourceID < out[j].DataSourceID })
	return out
}

func (s *Server) createPolicyBindings(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
	policyID := req.Params["PolicyId"]
	if policyID == "" {
		return nil, rpcsim.MissingParameter("PolicyId")
	}
	raw, ok := req.Params["PolicyBindingList"]
	if !ok {
		return nil, rpcsim.MissingParameter("PolicyBindingList")
	}
	var items []map[string]any
	if err := json.Unmarshal([]byte(raw), &items); err != nil {
		return nil, rpcsim.InvalidParameter("The parameter PolicyBindingList must be a JSON array of objects: %v.", err)
	}
	if len(items) == 0 || len(items) > MaxBindingItems {
		return nil, rpcsim.InvalidParameter("The parameter PolicyBindingList must list 1 to %d items, got %d.", MaxBindingItems, len(items))
	}
	var wanted []Binding
	sourceType := ""
	for i, it := range items {
		st, _ := it["SourceType"].(string)
		id, _ := it["DataSourceId"].(string)
		switch {
		case st == "":
			return nil, rpcsim.MissingParameter("PolicyBindingList." + strconv.Itoa(i+1) + ".SourceType")
		case !slices.Contains(sourceTypes, st):
			return nil, rpcsim.InvalidParameter("The parameter PolicyBindingList item %d has an unknown SourceType %q.", i+1, st)
		case sourceType != "" && st != sourceType:
			return nil, rpcsim.InvalidParameter("The data sources of one call must share one SourceType: %q and %q.", sourceType, st)
		case strings.TrimSpace(id) == "":
			return nil, rpcsim.MissingParameter("PolicyBindingList." + strconv.Itoa(i+1) + ".DataSourceId")
		}
		if v, ok := it["CrossAccountType"]; ok && v != "SELF_ACCOUNT" && v != "CROSS_ACCOUNT" {
			return nil, rpcsim.InvalidParameter("The parameter CrossAccountType must be SELF_ACCOUNT or CROSS_ACCOUNT, got %v.", v)
		}
		sourceType = st
		wanted = append(wanted, Binding{PolicyID: policyID, DataSourceID: id, SourceType: st, Created: req.Time})
	}

	p := &s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.policies[policyID] {
		return nil, rpcsim.Errorf(http.StatusNotFound, PolicyNotFoundCode, "The specified policy %q does not exist.", policyID)
	}
	for _, b := range wanted {
		old, ok := p.bindings[b.DataSourceID]
		switch {
		case !ok:
		case old.PolicyID == policyID:
			return nil, rpcsim.Errorf(http.StatusBadRequest, AlreadyBoundCode,
				"This datasource has already been bound with the policy. DataSourceId: %s.", b.DataSourceID)
		default:
			return nil, rpcsim.Errorf(http.StatusBadRequest, BoundElsewhereCode,
				"The data source %q is already bound to policy %q.", b.DataSourceID, old.PolicyID)
		}
	}
	for _, b := range wanted {
		if _, ok := p.bindings[b.DataSourceID]; !ok {
			p.bind(b)
		}
	}
	return map[string]any{}, nil
}

func (s *Server) describePolicyBindings(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
	params := req.Params
	size, apiErr := intParam(params, "MaxResults", 10, 10, 100)
	if apiErr != nil {
		return nil, apiErr
	}
	offset := 0
	if tok, ok := params["NextToken"]; ok && tok != "" {
		n, err := strconv.ParseInt(strings.TrimPrefix(tok, "nt"), 36, 64)
		if !strings.HasPrefix(tok, "nt") || err != nil || n < 0 {
			return nil, rpcsim.InvalidParameter("The parameter NextToken %q is not valid.", tok)
		}
		offset = int(n)
	}
	var ids []string
	if raw, ok := params["DataSourceIds"]; ok {
		if ids, apiErr = parseIDList("DataSourceIds", raw, MaxBindingItems); apiErr != nil {
			return nil, apiErr
		}
	}
	policyID, sourceType := params["PolicyId"], params["SourceType"]
	if sourceType != "" && !slices.Contains(sourceTypes, sourceType) {
		return nil, rpcsim.InvalidParameter("The parameter SourceType %q is not valid.", sourceType)
	}

	p := &s.pol
	p.mu.Lock()
	defer p.mu.Unlock()
	var match []Binding
	for _, b := range p.sorted() {
		if (ids != nil && !slices.Contains(ids, b.DataSourceID)) ||
			(policyID != "" && b.PolicyID != policyID) ||
			(sourceType != "" && b.SourceType != sourceType) {
			continue
		}
		match = append(match, b)
	}
	list := []map[string]any{}
	if offset < len(match) {
		for _, b := range match[offset:min(offset+size, len(match))] {
			list = append(list, map[string]any{
				"PolicyBindingId":          bindingID(b),
				"PolicyId":                 b.PolicyID,
				"DataSourceId":             b.DataSourceID,
				"SourceType":               b.SourceType,
				"Disabled":                 false,
				"PolicyBindingDescription": "",
				"CreatedTime":              b.Created.Unix(),
				"UpdatedTime":              b.Created.Unix(),
			})
		}
	}
	resp := map[string]any{"PolicyBindings": list, "MaxResults": size, "TotalCount": len(match)}
	if next := offset + size; next < len(match) {
		resp["NextToken"] = "nt" + strconv.FormatInt(int64(next), 36)
	}
	return resp, nil
}

// bindingID derives a stable "pd-" ID for a binding.
func bindingID(b Binding) string {
	return "pd-" + clientID(b.PolicyID + "/" + b.DataSourceID)[2:]
}
