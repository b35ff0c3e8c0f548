package provision

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim"
)

// Test credentials accepted by the emulators.
const (
	testAK      = "LTAItestkey"
	testSecret  = "test-secret"
	testAccount = "1234567890123456"
)

// ramSim is an in-memory RAM service on rpcsim: roles, custom policies with
// up to 5 versions, and attachments. It records every call in order.
type ramSim struct {
	srv *rpcsim.Server
	url string

	mu       sync.Mutex
	roles    map[string]string // name → trust policy
	policies map[string]*simPolicy
	attached map[string][]string // role → policy names
	calls    []rpcsim.Call
}

type simPolicy struct {
	versions []string // documents; index i is version v(i+1)
	ids      []int
	def      int // index of the default version
	next     int
}

func newRAMSim(t *testing.T) *ramSim {
	t.Helper()
	s := &ramSim{
		srv:      rpcsim.New(rpcsim.Options{Product: "ram", Version: RAMVersion, AccessKeyID: testAK, AccessKeySecret: testSecret}),
		roles:    map[string]string{},
		policies: map[string]*simPolicy{},
		attached: map[string][]string{},
	}
	s.srv.OnCall(func(c rpcsim.Call) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.calls = append(s.calls, c)
	})
	for action, h := range map[string]rpcsim.Handler{
		"GetRole":             s.getRole,
		"CreateRole":          s.createRole,
		"UpdateRole":          s.updateRole,
		"GetPolicy":           s.getPolicy,
		"CreatePolicy":        s.createPolicy,
		"CreatePolicyVersion": s.createPolicyVersion,
		"ListPoliciesForRole": s.listPoliciesForRole,
		"AttachPolicyToRole":  s.attachPolicyToRole,
	} {
		s.srv.Handle(action, h)
	}
	url, err := s.srv.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.srv.Close() })
	s.url = url
	return s
}

// actions returns the actions called so far, in order.
func (s *ramSim) actions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.calls))
	for i, c := range s.calls {
		out[i] = c.Action
	}
	return out
}

// lastCall returns the parameters of the last call of action.
func (s *ramSim) lastCall(action string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.calls) - 1; i >= 0; i-- {
		if s.calls[i].Action == action {
			return s.calls[i].Params
		}
	}
	return nil
}

func (s *ramSim) resetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// defaultDocument returns the default version of a policy.
func (s *ramSim) defaultDocument(name string) (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.policies[name]
	if !ok {
		return "", 0
	}
	return p.versions[p.def], len(p.versions)
}

func (s *ramSim) putPolicy(name string, docs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &simPolicy{}
	for _, d := range docs {
		p.next++
		p.versions = append(p.versions, d)
		p.ids = append(p.ids, p.next)
	}
	p.def = len(docs) - 1
	s.policies[name] = p
}

func (s *ramSim) putRole(name, trust string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[name] = trust
}

func (s *ramSim) attach(role, policy string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attached[role] = append(s.attached[role], policy)
}

func required(req rpcsim.Request, names ...string) *rpcsim.APIError {
	for _, n := range names {
		if req.Params[n] == "" {
			return rpcsim.MissingParameter(n)
		}
	}
	return nil
}

func roleBody(name, trust string) map[string]any {
	return map[string]any{"Role": map[string]any{
		"RoleName":                 name,
		"RoleId":                   "3" + testAccount,
		"Arn":                      "acs:ram::" + testAccount + ":role/" + strings.ToLower(name),
		"AssumeRolePolicyDocument": trust,
		"MaxSessionDuration":       3600,
	}}
}

func (s *ramSim) getRole(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
	if err := required(req, "RoleName"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := req.Params["RoleName"]
	trust, ok := s.roles[name]
	if !ok {
		return nil, rpcsim.Errorf(http.StatusNotFound, "EntityNotExist.Role", "The role does not exist: %s.", name)
	}
	return roleBody(name, trust), nil
}

func (s *ramSim) createRole(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
	if err := required(req, "RoleName", "AssumeRolePolicyDocument"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := req.Params["RoleName"]
	if _, ok := s.roles[name]; ok {
		return nil, rpcsim.Errorf(http.StatusConflict, "EntityAlreadyExists.Role", "The role already exists: %s.", name)
	}
	s.roles[name] = req.Params["AssumeRolePolicyDocument"]
	return roleBody(name, s.roles[name]), nil
}

func (s *ramSim) updateRole(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
	if err := required(req, "RoleName"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := req.Params["RoleName"]
	if _, ok := s.roles[name]; !ok {
		return nil, rpcsim.Errorf(http.StatusNotFound, "EntityNotExist.Role", "The role does not exist: %s.", name)
	}
	if doc := req.Params["NewAssumeRolePolicyDocument"]; doc != "" {
		s.roles[name] = doc
	}
	return roleBody(name, s.roles[name]), nil
}

func (s *ramSim) getPolicy(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
	if err := required(req, "PolicyName", "PolicyType"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := req.Params["PolicyName"]
	p, ok := s.policies[name]
	if !ok || req.Params["PolicyType"] != policyTypeCustom {
		return nil, rpcsim.Errorf(http.StatusNotFound, "EntityNotExist.Policy", "The policy does not exist: %s.", name)
	}
	version := fmt.Sprintf("v%d", p.ids[p.def])
	return map[string]any{
		"Policy": map[string]any{"PolicyName": name, "PolicyType": policyTypeCustom, "DefaultVersion": version},
		"DefaultPolicyVersion": map[string]any{
			"VersionId": version, "IsDefaultVersion": true, "PolicyDocument": p.versions[p.def],
		},
	}, nil
}

func (s *ramSim) createPolicy(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
	if err := required(req, "PolicyName", "PolicyDocument"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := req.Params["PolicyName"]
	if _, ok := s.policies[name]; ok {
		return nil, rpcsim.Errorf(http.StatusConflict, "EntityAlreadyExists.Policy", "The policy already exists: %s.", name)
	}
	s.policies[name] = &simPolicy{versions: []string{req.Params["PolicyDocument"]}, ids: []int{1}, next: 1}
	return map[string]any{"Policy": map[string]any{"PolicyName": name, "PolicyType": policyTypeCustom, "DefaultVersion": "v1"}}, nil
}

func (s *ramSim) createPolicyVersion(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
	if err := required(req, "PolicyName", "PolicyDocument"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := req.Params["PolicyName"]
	p, ok := s.policies[name]
	if !ok {
		return nil, rpcsim.Errorf(http.StatusNotFound, "EntityNotExist.Policy", "The policy does not exist: %s.", name)
	}
	if len(p.versions) >= 5 {
		if req.Params["RotateStrategy"] != rotateStrategy {
			return nil, rpcsim.Errorf(http.StatusConflict, "LimitExceeded.Policy.Version", "The policy versions exceed the limit of 5.")
		}
		oldest := 0
		if oldest == p.def {
			oldest = 1
		}
		p.versions = append(p.versions[:oldest], p.versions[oldest+1:]...)
		p.ids = append(p.ids[:oldest], p.ids[oldest+1:]...)
		if p.def > oldest {
			p.def--
		}
	}
	p.next++
	p.versions = append(p.versions, req.Params["PolicyDocument"])
	p.ids = append(p.ids, p.next)
	if req.Params["SetAsDefault"] == "true" {
		p.def = len(p.versions) - 1
	}
	return map[string]any{"PolicyVersion": map[string]any{"VersionId": fmt.Sprintf("v%d", p.next)}}, nil
}

func (s *ramSim) listPoliciesForRole(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
	if err := required(req, "RoleName"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := req.Params["RoleName"]
	if _, ok := s.roles[name]; !ok {
		return nil, rpcsim.Errorf(http.StatusNotFound, "EntityNotExist.Role", "The role does not exist: %s.", name)
	}
	names := append([]string{}, s.attached[name]...)
	sort.Strings(names)
	list := []any{}
	for _, n := range names {
		list = append(list, map[string]any{"PolicyName": n, "PolicyType": policyTypeCustom})
	}
	return map[string]any{"Policies": map[string]any{"Policy": list}}, nil
}

func (s *ramSim) attachPolicyToRole(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
	if err := required(req, "PolicyType", "PolicyName", "RoleName"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	role, policy := req.Params["RoleName"], req.Params["PolicyName"]
	if _, ok := s.roles[role]; !ok {
		return nil, rpcsim.Errorf(http.StatusNotFound, "EntityNotExist.Role", "The role does not exist: %s.", role)
	}
	if _, ok := s.policies[policy]; !ok {
		return nil, rpcsim.Errorf(http.StatusNotFound, "EntityNotExist.Policy", "The policy does not exist: %s.", policy)
	}
	for _, p := range s.attached[role] {
		if p == policy {
			return nil, rpcsim.Errorf(http.StatusConflict, "EntityAlreadyExists.Role.Policy", "The policy is already attached to the role.")
		}
	}
	s.attached[role] = append(s.attached[role], policy)
	return map[string]any{}, nil
}
