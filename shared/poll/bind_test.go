package poll

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/job"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/outcome"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/protect"
)

// fakeBinder is a hand-written fake of the two binding calls.
type fakeBinder struct {
	bound    map[string]string
	createFn func(policy string, ids []string) error
	creates  [][]string
	lists    int
}

func (f *fakeBinder) DescribePolicyBindings(_ context.Context, ids []string) (map[string]string, error) {
	f.lists++
	out := map[string]string{}
	for _, id := range ids {
		if p, ok := f.bound[id]; ok {
			out[id] = p
		}
	}
	return out, nil
}

// CreatePolicyBindings refuses the whole call when an instance is bound to
// another policy, as HBR does (an instance has one policy).
func (f *fakeBinder) CreatePolicyBindings(_ context.Context, policy string, ids []string) error {
	f.creates = append(f.creates, append([]string{policy}, ids...))
	if f.createFn != nil {
		return f.createFn(policy, ids)
	}
	for _, id := range ids {
		if p, ok := f.bound[id]; ok && p != policy {
			return fault.Wrap("hbr.CreatePolicyBindings", fault.Permanent, "DataSourceAlreadyBound", assert.AnError)
		}
	}
	return nil
}

// tagInventory is a fake Inventory listing every instance with the same tags.
type tagInventory map[string]string

func (t tagInventory) DescribeInstances(_ context.Context, ids []string) ([]ecs.Instance, error) {
	var out []ecs.Instance
	for _, id := range ids {
		out = append(out, ecs.Instance{ID: id, Status: ecs.StatusRunning, Tags: t})
	}
	return out, nil
}

func (t tagInventory) CloudAssistantReady(context.Context, []string) (map[string]bool, error) {
	return map[string]bool{}, nil
}

func TestBindingAfterActivation(t *testing.T) {
	activated := task("completed", hbr.ClientResult{InstanceID: "i-1", ClientID: "c-1", ClientStatus: "ACTIVATED"},
		hbr.ClientResult{InstanceID: "i-2", ClientID: "c-2", ClientStatus: "ACTIVATED"})
	tests := []struct {
		name     string
		policy   string
		byTag    string
		tags     tagInventory
		audit    bool
		bound    map[string]string
		createFn func(string, []string) error
		want     map[string]string // instance → "OUTCOME policy code"
		creates  int
		bindMsgs int
	}{
		{name: "no policy: INSTALLED as before", want: map[string]string{"i-1": "INSTALLED  ", "i-2": "INSTALLED  "}},
		{name: "bound in one call", policy: "po-default", creates: 1,
			want: map[string]string{"i-1": "PROTECTED po-default ", "i-2": "PROTECTED po-default "}},
		// Installed just now, so bound without asking first; the refusal
		// reveals the binding HBR's own tag policy made, and the other
		// instance is bound once more.
		{name: "already bound elsewhere is never rebound", policy: "po-default", bound: map[string]string{"i-1": "po-other"}, creates: 2,
			want: map[string]string{"i-1": "ALREADY_PROTECTED po-other ", "i-2": "PROTECTED po-default "}},
		{name: "refused for good", policy: "po-gone", creates: 1,
			createFn: func(string, []string) error {
				return fault.Wrap("hbr.CreatePolicyBindings", fault.Permanent, "PolicyNotExists", assert.AnError)
			},
			want: map[string]string{"i-1": "BIND_FAILED po-gone PolicyNotExists", "i-2": "BIND_FAILED po-gone PolicyNotExists"}},
		{name: "throttled: a bind message, no record yet", policy: "po-default", creates: 1, bindMsgs: 1,
			createFn: func(string, []string) error {
				return fault.Wrap("hbr.CreatePolicyBindings", fault.Retryable, "Throttling.User", assert.AnError)
			},
			want: map[string]string{}},
		{name: "audit mode", policy: "po-default", audit: true,
			want: map[string]string{"i-1": "WOULD_PROTECT po-default ", "i-2": "WOULD_PROTECT po-default "}},
		{name: "policy by tag", policy: "po-default", byTag: "env=prod:po-prod", tags: tagInventory{"env": "prod"}, creates: 1,
			want: map[string]string{"i-1": "PROTECTED po-prod ", "i-2": "PROTECTED po-prod "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeHBR{task: activated}
			b := &fakeBinder{bound: tt.bound, createFn: tt.createFn}
			s := newService(f, t0.Add(2*time.Minute))
			settings, err := protect.Parse(tt.policy, tt.byTag)
			require.NoError(t, err)
			s.Protect = &protect.Service{HBR: func(context.Context, string) (protect.Binder, error) { return b, nil },
				Settings: settings, Audit: tt.audit}
			if tt.tags != nil {
				s.Install.ECS = func(context.Context, string) (install.Inventory, error) { return tt.tags, nil }
			}
			res := s.Handle(context.Background(), []job.Message{pollMsg("i-1", "i-2")})
			got := map[string]string{}
			for _, r := range res.Outcomes {
				got[r.InstanceID] = string(r.Outcome) + " " + r.PolicyID + " " + r.Code
				assert.NotEmpty(t, r.ClientID, "the record keeps the client")
				assert.Equal(t, "t-1", r.TaskID, "and the install task")
			}
			assert.Equal(t, tt.want, got, "one record per instance")
			assert.Len(t, b.creates, tt.creates, "one CreatePolicyBindings per policy, never one per instance")
			var binds []job.Message
			for _, n := range res.Next {
				if n.Message.Kind == job.KindBind {
					binds = append(binds, n.Message)
				}
			}
			require.Len(t, binds, tt.bindMsgs)
			for _, m := range binds {
				_, err := job.Encode(m)
				require.NoError(t, err)
				assert.Equal(t, t0.Add(17*time.Minute), m.Deadline, "retried within the job's deadline")
			}
		})
	}
}

func TestBindRetryEndsAtTheDeadline(t *testing.T) {
	b := &fakeBinder{createFn: func(string, []string) error {
		return fault.Wrap("hbr.CreatePolicyBindings", fault.Retryable, "ServiceUnavailable", assert.AnError)
	}}
	msg := job.Message{Version: job.BindVersion, Kind: job.KindBind, Region: "cn-hangzhou", Retries: 2,
		Deadline: t0.Add(time.Minute), SentAt: t0, Instances: []job.Instance{{ID: "i-1", JobID: job.JobID("acs.ecs", "ev", "i-1"),
			FirstSeen: t0, ReadyBy: t0.Add(time.Minute), Attempts: 1, Installed: "INSTALLED", ClientID: "c-1", TaskID: "t-1"}}}
	settings, err := protect.Parse("po-default", "")
	require.NoError(t, err)
	for _, tt := range []struct {
		now  time.Time
		want string
	}{
		{t0, ""},
		{t0.Add(time.Minute), "BIND_FAILED"},
	} {
		s := newService(&fakeHBR{}, tt.now)
		s.Protect = &protect.Service{HBR: func(context.Context, string) (protect.Binder, error) { return b, nil }, Settings: settings}
		res := s.Handle(context.Background(), []job.Message{msg})
		if tt.want == "" {
			assert.Empty(t, res.Outcomes)
			require.Len(t, res.Next, 1)
			assert.Equal(t, 3, res.Next[0].Message.Retries)
			continue
		}
		require.Len(t, res.Outcomes, 1)
		assert.Equal(t, outcome.Kind(tt.want), res.Outcomes[0].Outcome)
		assert.Equal(t, "ServiceUnavailable", res.Outcomes[0].Code)
		assert.Empty(t, res.Next)
	}
}

// Issue 18: binding rebuilt records and lost what they said. The bound
// record is the same record: its supersedes, detail and reason stay, also
// across a bind retry.
func TestBindingKeepsWhatTheRecordSaid(t *testing.T) {
	settings, err := protect.Parse("po-default", "")
	require.NoError(t, err)
	throttled := true
	b := &fakeBinder{createFn: func(string, []string) error {
		if throttled {
			return fault.Wrap("hbr.CreatePolicyBindings", fault.Retryable, "Throttling.User", assert.AnError)
		}
		return nil
	}}
	f := &fakeHBR{task: task("expired", hbr.ClientResult{InstanceID: "i-1", ClientID: "c-1", ClientStatus: "UNKNOWN"})}
	twin := &twinHBR{fakeHBR: fakeHBR{task: f.task}, client: hbr.BackupClient{InstanceID: "i-1", ClientID: "c-1", Status: "ACTIVATED"}}
	s := newService(f, t0.Add(2*time.Minute))
	s.Tasks = func(context.Context, string) (TaskReader, error) { return twin, nil }
	s.Install.HBR = func(context.Context, string) (install.Installer, error) { return twin, nil }
	s.Protect = &protect.Service{HBR: func(context.Context, string) (protect.Binder, error) { return b, nil }, Settings: settings}
	m := pollMsg("i-1")
	m.Instances[0].Supersedes = "j-earlier/FAILED"

	res := s.Handle(context.Background(), []job.Message{m})
	require.Empty(t, res.Outcomes, "throttled: the record waits in a bind message")
	require.Len(t, res.Next, 1)
	bind := res.Next[0].Message
	require.Equal(t, job.KindBind, bind.Kind)
	body, err := job.Encode(bind)
	require.NoError(t, err)
	bind, err = job.Decode(body)
	require.NoError(t, err)

	throttled = false
	res = s.Handle(context.Background(), []job.Message{bind})
	require.Len(t, res.Outcomes, 1)
	r := res.Outcomes[0]
	assert.Equal(t, outcome.Protected, r.Outcome)
	assert.Equal(t, "po-default", r.PolicyID)
	assert.Equal(t, "j-earlier/FAILED", r.Supersedes, "supersedes survives the binding")
	assert.Contains(t, r.Reason, "checked after TIMEOUT", "the install's reason survives")
	assert.Contains(t, r.Reason, "bound to backup policy po-default")
	assert.Equal(t, 1, r.Generation)
	assert.Equal(t, "t-1", r.TaskID)
}
