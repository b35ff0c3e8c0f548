package provision

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim"
)

var testCreds = cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: testSecret}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data
}

// testPlan is the repository's policy files with two regions.
func testPlan(t *testing.T) Plan {
	t.Helper()
	return Plan{
		PolicyParams: PolicyParams{
			AccountID:    testAccount,
			Regions:      []string{"cn-hangzhou", "cn-shanghai"},
			Queue:        "hbr-autoinstall-jobs",
			InstallQueue: "hbr-autoinstall-installs",
			DLQ:          "hbr-autoinstall-dlq",
			LedgerBucket: DefaultLedgerBucket,
			LedgerPrefix: DefaultLedgerPrefix,
		},
		RoleName:         "hbr-autoinstall-fc",
		PolicyName:       "hbr-autoinstall-fc-policy",
		PolicyTemplate:   readFile(t, "../../../scripts/ram/policy.json"),
		TrustPolicy:      readFile(t, "../../../scripts/ram/trust-policy.json"),
		LedgerExpiryDays: DefaultLedgerExpiryDays,
	}
}

// wantPolicy is the exact document the repository's template renders to for
// testPlan.
const wantPolicy = `{"Statement":[` +
	`{"Action":["hbr:InstallBackupClients","hbr:DescribeTask","hbr:DescribeBackupClients"],"Effect":"Allow","Resource":"*"},` +
	`{"Action":["ecs:DescribeInstances","ecs:DescribeCloudAssistantStatus"],"Effect":"Allow","Resource":"*"},` +
	`{"Action":["mns:SendMessage","mns:BatchSendMessage"],"Effect":"Allow","Resource":[` +
	`"acs:mns:cn-hangzhou:1234567890123456:/queues/hbr-autoinstall-jobs/messages",` +
	`"acs:mns:cn-shanghai:1234567890123456:/queues/hbr-autoinstall-jobs/messages",` +
	`"acs:mns:cn-hangzhou:1234567890123456:/queues/hbr-autoinstall-installs/messages",` +
	`"acs:mns:cn-shanghai:1234567890123456:/queues/hbr-autoinstall-installs/messages",` +
	`"acs:mns:cn-hangzhou:1234567890123456:/queues/hbr-autoinstall-dlq/messages",` +
	`"acs:mns:cn-shanghai:1234567890123456:/queues/hbr-autoinstall-dlq/messages"]},` +
	`{"Action":["oss:PutObject","oss:GetObject","oss:DeleteObject"],"Effect":"Allow","Resource":[` +
	`"acs:oss:*:1234567890123456:hbr-autoinstall-ledger-1234567890123456-cn-hangzhou/hbr-autoinstall/ledger/*",` +
	`"acs:oss:*:1234567890123456:hbr-autoinstall-ledger-1234567890123456-cn-shanghai/hbr-autoinstall/ledger/*"]},` +
	`{"Action":"oss:ListObjects","Condition":{"StringLike":{"oss:Prefix":"hbr-autoinstall/ledger/*"}},"Effect":"Allow","Resource":[` +
	`"acs:oss:*:1234567890123456:hbr-autoinstall-ledger-1234567890123456-cn-hangzhou",` +
	`"acs:oss:*:1234567890123456:hbr-autoinstall-ledger-1234567890123456-cn-shanghai"]}` +
	`],"Version":"1"}`

func TestRenderPolicyRepositoryTemplate(t *testing.T) {
	t.Parallel()
	plan := testPlan(t)
	got, err := RenderPolicy(plan.PolicyTemplate, plan.PolicyParams)
	require.NoError(t, err)
	assert.Equal(t, wantPolicy, string(got))

	plan.Regions = []string{"ap-southeast-1"}
	got, err = RenderPolicy(plan.PolicyTemplate, plan.PolicyParams)
	require.NoError(t, err)
	assert.Equal(t, `{"Statement":[`+
		`{"Action":["hbr:InstallBackupClients","hbr:DescribeTask","hbr:DescribeBackupClients"],"Effect":"Allow","Resource":"*"},`+
		`{"Action":["ecs:DescribeInstances","ecs:DescribeCloudAssistantStatus"],"Effect":"Allow","Resource":"*"},`+
		`{"Action":["mns:SendMessage","mns:BatchSendMessage"],"Effect":"Allow","Resource":[`+
		`"acs:mns:ap-southeast-1:1234567890123456:/queues/hbr-autoinstall-jobs/messages",`+
		`"acs:mns:ap-southeast-1:1234567890123456:/queues/hbr-autoinstall-installs/messages",`+
		`"acs:mns:ap-southeast-1:1234567890123456:/queues/hbr-autoinstall-dlq/messages"]},`+
		`{"Action":["oss:PutObject","oss:GetObject","oss:DeleteObject"],"Effect":"Allow",`+
		`"Resource":"acs:oss:*:1234567890123456:hbr-autoinstall-ledger-1234567890123456-ap-southeast-1/hbr-autoinstall/ledger/*"},`+
		`{"Action":"oss:ListObjects","Condition":{"StringLike":{"oss:Prefix":"hbr-autoinstall/ledger/*"}},"Effect":"Allow",`+
		`"Resource":"acs:oss:*:1234567890123456:hbr-autoinstall-ledger-1234567890123456-ap-southeast-1"}`+
		`],"Version":"1"}`, string(got))

	// A bucket named without {region}, and another prefix: one region only.
	plan.LedgerBucket, plan.LedgerPrefix = "ops-ledger-{account}", "ledgers/hbr/"
	got, err = RenderPolicy(plan.PolicyTemplate, plan.PolicyParams)
	require.NoError(t, err)
	assert.Contains(t, string(got), `"Resource":"acs:oss:*:1234567890123456:ops-ledger-1234567890123456/ledgers/hbr/*"`)
	assert.Contains(t, string(got), `{"Action":"oss:ListObjects","Condition":{"StringLike":{"oss:Prefix":"ledgers/hbr/*"}},"Effect":"Allow","Resource":"acs:oss:*:1234567890123456:ops-ledger-1234567890123456"}`)
}

// TestPolicyLimitsTheLedgerToItsPrefix reads the rendered policy as RAM
// would: the object actions reach only keys under the prefix of each
// region's bucket, and listing the bucket is allowed only for prefixes
// under it.
func TestPolicyLimitsTheLedgerToItsPrefix(t *testing.T) {
	t.Parallel()
	plan := testPlan(t)
	doc, err := RenderPolicy(plan.PolicyTemplate, plan.PolicyParams)
	require.NoError(t, err)
	var policy struct {
		Statement []struct {
			Action    any
			Resource  any
			Condition map[string]map[string]any
		}
	}
	require.NoError(t, json.Unmarshal(doc, &policy))
	list := func(v any) []string {
		switch t := v.(type) {
		case string:
			return []string{t}
		case []any:
			out := make([]string, len(t))
			for i, e := range t {
				out[i] = e.(string)
			}
			return out
		}
		return nil
	}
	oss := map[string][]string{} // action → resources
	conditions := map[string]map[string]map[string]any{}
	for _, st := range policy.Statement {
		for _, a := range list(st.Action) {
			if strings.HasPrefix(a, "oss:") {
				oss[a] = append(oss[a], list(st.Resource)...)
				conditions[a] = st.Condition
			}
		}
	}
	objects := []string{
		"acs:oss:*:1234567890123456:hbr-autoinstall-ledger-1234567890123456-cn-hangzhou/hbr-autoinstall/ledger/*",
		"acs:oss:*:1234567890123456:hbr-autoinstall-ledger-1234567890123456-cn-shanghai/hbr-autoinstall/ledger/*",
	}
	assert.Equal(t, map[string][]string{
		"oss:PutObject": objects, "oss:GetObject": objects, "oss:DeleteObject": objects,
		"oss:ListObjects": {
			"acs:oss:*:1234567890123456:hbr-autoinstall-ledger-1234567890123456-cn-hangzhou",
			"acs:oss:*:1234567890123456:hbr-autoinstall-ledger-1234567890123456-cn-shanghai",
		},
	}, oss)
	assert.Equal(t, map[string]map[string]any{"StringLike": {"oss:Prefix": "hbr-autoinstall/ledger/*"}}, conditions["oss:ListObjects"])
	for _, a := range []string{"oss:PutObject", "oss:GetObject", "oss:DeleteObject"} {
		assert.Nil(t, conditions[a], a)
	}
}

// TestRenderPolicyOptionalStatements checks the exact documents the
// optional features render to: each adds one statement, nothing else
// changes.
func TestRenderPolicyOptionalStatements(t *testing.T) {
	t.Parallel()
	base := wantPolicy[:len(wantPolicy)-len(`],"Version":"1"}`)]
	const (
		tags = `{"Action":"ecs:TagResources","Effect":"Allow","Resource":[` +
			`"acs:ecs:cn-hangzhou:1234567890123456:instance/*","acs:ecs:cn-shanghai:1234567890123456:instance/*"]}`
		topic = `{"Action":"mns:PublishMessage","Effect":"Allow","Resource":[` +
			`"acs:mns:cn-hangzhou:1234567890123456:/topics/hbr-alerts/messages",` +
			`"acs:mns:cn-shanghai:1234567890123456:/topics/hbr-alerts/messages"]}`
		bind = `{"Action":["hbr:CreatePolicyBindings","hbr:DescribePolicyBindings"],"Effect":"Allow","Resource":"*"}`
	)
	tests := []struct {
		name   string
		params func(p *PolicyParams)
		extra  []string
	}{
		{"none", func(*PolicyParams) {}, nil},
		{"tag write-back", func(p *PolicyParams) { p.TagWriteback = true }, []string{tags}},
		{"topic", func(p *PolicyParams) { p.Topic = "hbr-alerts" }, []string{topic}},
		{"bind", func(p *PolicyParams) { p.Bind = true }, []string{bind}},
		{"all four", func(p *PolicyParams) { p.TagWriteback, p.Topic, p.Bind = true, "hbr-alerts", true }, []string{tags, topic, bind}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plan := testPlan(t)
			tt.params(&plan.PolicyParams)
			got, err := RenderPolicy(plan.PolicyTemplate, plan.PolicyParams)
			require.NoError(t, err)
			want := base
			for _, st := range tt.extra {
				want += "," + st
			}
			assert.Equal(t, want+`],"Version":"1"}`, string(got))
		})
	}

	// One region: every resource is a single string.
	plan := testPlan(t)
	plan.Regions = []string{"ap-southeast-1"}
	plan.TagWriteback, plan.Topic = true, "hbr-alerts"
	got, err := RenderPolicy(plan.PolicyTemplate, plan.PolicyParams)
	require.NoError(t, err)
	assert.Contains(t, string(got), `{"Action":"ecs:TagResources","Effect":"Allow","Resource":"acs:ecs:ap-southeast-1:1234567890123456:instance/*"}`)
	assert.Contains(t, string(got), `{"Action":"mns:PublishMessage","Effect":"Allow","Resource":"acs:mns:ap-southeast-1:1234567890123456:/topics/hbr-alerts/messages"}`)
}

func TestRenderPolicyRejects(t *testing.T) {
	t.Parallel()
	good := PolicyParams{AccountID: testAccount, Regions: []string{"cn-hangzhou"}, Queue: "q", InstallQueue: "i", DLQ: "d",
		LedgerBucket: DefaultLedgerBucket, LedgerPrefix: DefaultLedgerPrefix}
	tmpl := []byte(`{"Version":"1","Statement":[{"Effect":"Allow","Action":"mns:SendMessage","Resource":"acs:mns:${REGION}:${ACCOUNT_ID}:/queues/${QUEUE}/messages"}]}`)
	many := make([]string, 0, 120)
	for i := range 120 {
		many = append(many, "cn-region"+string(rune('a'+i/26))+string(rune('a'+i%26)))
	}
	cases := []struct {
		name   string
		tmpl   []byte
		params func(p *PolicyParams)
		want   string
	}{
		{"account not a number", tmpl, func(p *PolicyParams) { p.AccountID = "acct" }, `account id "acct" is not a number`},
		{"no regions", tmpl, func(p *PolicyParams) { p.Regions = nil }, "no regions"},
		{"bad region", tmpl, func(p *PolicyParams) { p.Regions = []string{"Hangzhou"} }, `region "Hangzhou" is not a region id`},
		{"duplicate region", tmpl, func(p *PolicyParams) { p.Regions = []string{"cn-hangzhou", "cn-hangzhou"} }, "listed twice"},
		{"bad queue", tmpl, func(p *PolicyParams) { p.Queue = "1q" }, `queue name "1q"`},
		{"same queue twice", tmpl, func(p *PolicyParams) { p.DLQ = "q" }, "both \"q\""},
		{"bad install queue", tmpl, func(p *PolicyParams) { p.InstallQueue = "" }, `install queue name ""`},
		{"install queue is the job queue", tmpl, func(p *PolicyParams) { p.InstallQueue = "q" }, `the queue and the install queue are both "q"`},
		{"install queue is the dead-letter queue", tmpl, func(p *PolicyParams) { p.InstallQueue = "d" }, `the install queue and the dead-letter queue are both "d"`},
		{"prefix without the slash", tmpl, func(p *PolicyParams) { p.LedgerPrefix = "ledger" }, `ledger prefix "ledger"`},
		{"prefix with a wildcard", tmpl, func(p *PolicyParams) { p.LedgerPrefix = "led*/" }, `ledger prefix "led*/"`},
		{"prefix from the root", tmpl, func(p *PolicyParams) { p.LedgerPrefix = "/ledger/" }, `ledger prefix "/ledger/"`},
		{"prefix with an empty folder", tmpl, func(p *PolicyParams) { p.LedgerPrefix = "a//b/" }, `ledger prefix "a//b/"`},
		{"one bucket for two regions", tmpl, func(p *PolicyParams) {
			p.Regions, p.LedgerBucket = []string{"cn-hangzhou", "cn-beijing"}, "my-ledger"
		}, `ledger bucket "my-ledger" names one bucket for 2 regions`},
		{"bad bucket name", tmpl, func(p *PolicyParams) { p.LedgerBucket = "Ledger_{region}" }, `ledger bucket "Ledger_cn-hangzhou"`},
		{"bucket name too long", tmpl, func(p *PolicyParams) { p.LedgerBucket = strings.Repeat("a", 50) + "-{account}" }, "an OSS bucket name is 3-63"},
		{"bad topic", tmpl, func(p *PolicyParams) { p.Topic = "alerts/x" }, `topic name "alerts/x"`},
		{"not JSON", []byte(`{"Version":`), func(*PolicyParams) {}, "not a JSON object"},
		{"no statements", []byte(`{"Version":"1","Statement":[]}`), func(*PolicyParams) {}, `missing "Statement" list`},
		{"unknown placeholder", []byte(`{"Version":"1","Statement":[{"Resource":"acs:mns:${REGION}:${ACCOUNT}:/queues/x"}]}`), func(*PolicyParams) {}, "unknown placeholder ${ACCOUNT}"},
		{"too large", tmpl, func(p *PolicyParams) { p.Regions = many }, "over RAM's limit of 6144"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := good
			tc.params(&p)
			_, err := RenderPolicy(tc.tmpl, p)
			require.Error(t, err)
			assert.True(t, fault.Is(err, fault.Invalid), "kind %v", fault.KindOf(err))
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestSameDocument(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		a, b string
		want bool
	}{
		{"identical", wantPolicy, wantPolicy, true},
		{"formatting and key order", `{"Version":"1","Statement":[{"Effect":"Allow","Action":["a:B"]}]}`, "{\n \"Statement\": [ {\"Action\": \"a:B\", \"Effect\": \"Allow\"} ],\n \"Version\": \"1\"\n}", true},
		{"string list order", `{"A":["x","y"]}`, `{"A":["y","x"]}`, true},
		{"different resource", `{"A":["x","y"]}`, `{"A":["x","z"]}`, false},
		{"extra statement", `{"S":[{"a":1}]}`, `{"S":[{"a":1},{"b":2}]}`, false},
		{"number precision", `{"n":1}`, `{"n":1.0}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := SameDocument(tc.a, tc.b)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	_, err := SameDocument("{", "{}")
	assert.Error(t, err)
}

func TestPlanValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		mutate func(p *Plan)
		want   string
	}{
		{"bad role", func(p *Plan) { p.RoleName = "role name" }, `role name "role name"`},
		{"bad policy", func(p *Plan) { p.PolicyName = "policy.name" }, `policy name "policy.name"`},
		{"bad trust", func(p *Plan) { p.TrustPolicy = []byte("[]") }, "trust policy"},
		{"several at once", func(p *Plan) { p.RoleName = ""; p.Queue = "" }, `queue name ""`},
		{"no ledger expiry", func(p *Plan) { p.LedgerExpiryDays = 0 }, "ledger expiry of 0 days: want 1..3650"},
		{"ledger expiry too long", func(p *Plan) { p.LedgerExpiryDays = 3651 }, "ledger expiry of 3651 days"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			plan := testPlan(t)
			tc.mutate(&plan)
			err := plan.Validate()
			require.Error(t, err)
			assert.True(t, fault.Is(err, fault.Invalid))
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	require.NoError(t, testPlan(t).Validate())
}

// fakeQueues records the queues it was asked to ensure and creates each
// once.
type fakeQueues struct {
	mu      sync.Mutex
	existed map[string]bool
	asked   []QueueSpec
	err     error
}

func (f *fakeQueues) ensure(_ context.Context, q QueueSpec) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, q)
	if f.err != nil {
		return false, f.err
	}
	key := q.Region + "/" + q.Name
	if f.existed[key] {
		return false, nil
	}
	if f.existed == nil {
		f.existed = map[string]bool{}
	}
	f.existed[key] = true
	return true, nil
}

// fakeBuckets records the buckets it was asked to ensure, creates each
// once and sets its rule once.
type fakeBuckets struct {
	mu      sync.Mutex
	existed map[string]bool
	asked   []BucketSpec
	err     error
}

func (f *fakeBuckets) ensure(_ context.Context, b BucketSpec) (BucketResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, b)
	if f.err != nil {
		return BucketResult{}, f.err
	}
	if f.existed[b.Name] {
		return BucketResult{Bucket: Unchanged, Lifecycle: Unchanged}, nil
	}
	if f.existed == nil {
		f.existed = map[string]bool{}
	}
	f.existed[b.Name] = true
	return BucketResult{Bucket: Created, Lifecycle: Created}, nil
}

func newProvisioner(t *testing.T, ram *ramSim, queues *fakeQueues) *Provisioner {
	t.Helper()
	client, err := NewRAMClient(testCreds, ram.url, 5*time.Second)
	require.NoError(t, err)
	return &Provisioner{RAM: client, EnsureQueue: queues.ensure, EnsureBucket: (&fakeBuckets{}).ensure}
}

func results(steps []Step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.String()
	}
	return out
}

func TestRunFreshAccountThenNoChanges(t *testing.T) {
	t.Parallel()
	ram := newRAMSim(t)
	queues := &fakeQueues{}
	p := newProvisioner(t, ram, queues)
	plan := testPlan(t)
	ctx := context.Background()

	steps, err := p.Run(ctx, plan)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"role hbr-autoinstall-fc: created",
		"policy hbr-autoinstall-fc-policy: created",
		"attachment hbr-autoinstall-fc-policy→hbr-autoinstall-fc: attached",
		"queue hbr-autoinstall-jobs (cn-hangzhou): created",
		"queue hbr-autoinstall-installs (cn-hangzhou): created",
		"queue hbr-autoinstall-dlq (cn-hangzhou): created",
		"queue hbr-autoinstall-jobs (cn-shanghai): created",
		"queue hbr-autoinstall-installs (cn-shanghai): created",
		"queue hbr-autoinstall-dlq (cn-shanghai): created",
		"bucket hbr-autoinstall-ledger-1234567890123456-cn-hangzhou (cn-hangzhou): created",
		"lifecycle hbr-autoinstall-ledger-1234567890123456-cn-hangzhou/hbr-autoinstall/ledger/* expires after 90 days (cn-hangzhou): created",
		"bucket hbr-autoinstall-ledger-1234567890123456-cn-shanghai (cn-shanghai): created",
		"lifecycle hbr-autoinstall-ledger-1234567890123456-cn-shanghai/hbr-autoinstall/ledger/* expires after 90 days (cn-shanghai): created",
	}, results(steps))
	assert.Equal(t, []string{"GetRole", "CreateRole", "GetPolicy", "CreatePolicy", "ListPoliciesForRole", "AttachPolicyToRole"}, ram.actions())

	create := ram.lastCall("CreatePolicy")
	assert.Equal(t, wantPolicy, create["PolicyDocument"])
	assert.Equal(t, "hbr-autoinstall-fc-policy", create["PolicyName"])
	role := ram.lastCall("CreateRole")
	same, err := SameDocument(role["AssumeRolePolicyDocument"], `{"Version":"1","Statement":[{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{"Service":"fc.aliyuncs.com"}}]}`)
	require.NoError(t, err)
	assert.True(t, same, "trust policy %s", role["AssumeRolePolicyDocument"])
	assert.Equal(t, map[string]string{"PolicyType": "Custom", "PolicyName": "hbr-autoinstall-fc-policy", "RoleName": "hbr-autoinstall-fc"},
		pick(ram.lastCall("AttachPolicyToRole"), "PolicyType", "PolicyName", "RoleName"))
	require.Len(t, queues.asked, 6)
	assert.Equal(t, QueueSpec{Region: "cn-hangzhou", Name: "hbr-autoinstall-installs", MessageRetentionPeriod: 345600, MaxMessageSize: 65536, VisibilityTimeout: 30}, queues.asked[1],
		"the install queue has the job queue's attributes")
	assert.Equal(t, queues.asked[0].MessageRetentionPeriod, queues.asked[1].MessageRetentionPeriod)
	assert.Equal(t, QueueSpec{Region: "cn-hangzhou", Name: "hbr-autoinstall-dlq", MessageRetentionPeriod: 604800, MaxMessageSize: 65536, VisibilityTimeout: 30}, queues.asked[2])

	// A second run reads and changes nothing.
	ram.resetCalls()
	steps, err = p.Run(ctx, plan)
	require.NoError(t, err)
	for _, s := range steps {
		assert.Equal(t, Unchanged, s.Result, s.String())
	}
	assert.Len(t, steps, 13)
	assert.Equal(t, []string{"GetRole", "GetPolicy", "ListPoliciesForRole"}, ram.actions())
}

func pick(m map[string]string, keys ...string) map[string]string {
	out := map[string]string{}
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}

func TestRunConvergesDrift(t *testing.T) {
	t.Parallel()
	plan := testPlan(t)
	const oldTrust = `{"Version":"1","Statement":[{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{"Service":["ecs.aliyuncs.com"]}}]}`
	const oldPolicy = `{"Version":"1","Statement":[{"Effect":"Allow","Action":"hbr:*","Resource":"*"}]}`
	reformatted := "{\n  \"Version\": \"1\",\n  \"Statement\": [\n" +
		"{\"Effect\": \"Allow\", \"Resource\": \"*\", \"Action\": [\"hbr:DescribeTask\", \"hbr:InstallBackupClients\", \"hbr:DescribeBackupClients\"]},\n" +
		"{\"Effect\": \"Allow\", \"Resource\": \"*\", \"Action\": [\"ecs:DescribeInstances\", \"ecs:DescribeCloudAssistantStatus\"]},\n" +
		"{\"Effect\": \"Allow\", \"Action\": [\"mns:BatchSendMessage\", \"mns:SendMessage\"], \"Resource\": [\n" +
		"\"acs:mns:cn-hangzhou:1234567890123456:/queues/hbr-autoinstall-dlq/messages\",\n" +
		"\"acs:mns:cn-shanghai:1234567890123456:/queues/hbr-autoinstall-dlq/messages\",\n" +
		"\"acs:mns:cn-hangzhou:1234567890123456:/queues/hbr-autoinstall-installs/messages\",\n" +
		"\"acs:mns:cn-shanghai:1234567890123456:/queues/hbr-autoinstall-installs/messages\",\n" +
		"\"acs:mns:cn-hangzhou:1234567890123456:/queues/hbr-autoinstall-jobs/messages\",\n" +
		"\"acs:mns:cn-shanghai:1234567890123456:/queues/hbr-autoinstall-jobs/messages\"]},\n" +
		"{\"Effect\": \"Allow\", \"Action\": [\"oss:GetObject\", \"oss:PutObject\", \"oss:DeleteObject\"], \"Resource\": [\n" +
		"\"acs:oss:*:1234567890123456:hbr-autoinstall-ledger-1234567890123456-cn-shanghai/hbr-autoinstall/ledger/*\",\n" +
		"\"acs:oss:*:1234567890123456:hbr-autoinstall-ledger-1234567890123456-cn-hangzhou/hbr-autoinstall/ledger/*\"]},\n" +
		"{\"Condition\": {\"StringLike\": {\"oss:Prefix\": [\"hbr-autoinstall/ledger/*\"]}}, \"Effect\": \"Allow\", \"Action\": [\"oss:ListObjects\"], \"Resource\": [\n" +
		"\"acs:oss:*:1234567890123456:hbr-autoinstall-ledger-1234567890123456-cn-hangzhou\",\n" +
		"\"acs:oss:*:1234567890123456:hbr-autoinstall-ledger-1234567890123456-cn-shanghai\"]}]}"
	cases := []struct {
		name        string
		setup       func(s *ramSim)
		wantActions []string
		wantSteps   []Result
		wantVersion int
	}{
		{
			name: "trust policy and policy differ, not attached",
			setup: func(s *ramSim) {
				s.putRole(plan.RoleName, oldTrust)
				s.putPolicy(plan.PolicyName, oldPolicy)
			},
			wantActions: []string{"GetRole", "UpdateRole", "GetPolicy", "CreatePolicyVersion", "ListPoliciesForRole", "AttachPolicyToRole"},
			wantSteps:   []Result{Updated, Updated, Attached},
			wantVersion: 2,
		},
		{
			name: "policy at the version limit rotates",
			setup: func(s *ramSim) {
				s.putRole(plan.RoleName, string(plan.TrustPolicy))
				s.putPolicy(plan.PolicyName, oldPolicy, oldPolicy, oldPolicy, oldPolicy, oldPolicy)
				s.attach(plan.RoleName, plan.PolicyName)
			},
			wantActions: []string{"GetRole", "GetPolicy", "CreatePolicyVersion", "ListPoliciesForRole"},
			wantSteps:   []Result{Unchanged, Updated, Unchanged},
			wantVersion: 5,
		},
		{
			name: "same documents formatted differently",
			setup: func(s *ramSim) {
				s.putRole(plan.RoleName, `{"Statement":[{"Principal":{"Service":"fc.aliyuncs.com"},"Effect":"Allow","Action":"sts:AssumeRole"}],"Version":"1"}`)
				s.putPolicy(plan.PolicyName, reformatted)
				s.attach(plan.RoleName, "SomeOtherPolicy")
				s.attach(plan.RoleName, plan.PolicyName)
			},
			wantActions: []string{"GetRole", "GetPolicy", "ListPoliciesForRole"},
			wantSteps:   []Result{Unchanged, Unchanged, Unchanged},
			wantVersion: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ram := newRAMSim(t)
			tc.setup(ram)
			p := newProvisioner(t, ram, &fakeQueues{})
			steps, err := p.Run(context.Background(), plan)
			require.NoError(t, err)
			assert.Equal(t, tc.wantActions, ram.actions())
			require.Len(t, steps, 13)
			for i, want := range tc.wantSteps {
				assert.Equal(t, want, steps[i].Result, steps[i].String())
			}
			doc, versions := ram.defaultDocument(plan.PolicyName)
			same, err := SameDocument(doc, wantPolicy)
			require.NoError(t, err)
			assert.True(t, same, "default version %s", doc)
			assert.Equal(t, tc.wantVersion, versions)
			if v := ram.lastCall("CreatePolicyVersion"); v != nil {
				assert.Equal(t, "true", v["SetAsDefault"])
				assert.Equal(t, "DeleteOldestNonDefaultVersionWhenLimitExceeded", v["RotateStrategy"])
				assert.Equal(t, wantPolicy, v["PolicyDocument"])
			}
			if v := ram.lastCall("UpdateRole"); v != nil {
				assert.Equal(t, string(plan.TrustPolicy), v["NewAssumeRolePolicyDocument"])
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		setup     func(s *ramSim, q *fakeQueues, p *Provisioner)
		plan      func(p *Plan)
		wantKind  fault.Kind
		wantCode  string
		wantSteps int
		wantCalls int
	}{
		{
			name:     "invalid plan makes no call",
			plan:     func(p *Plan) { p.AccountID = "" },
			wantKind: fault.Invalid,
		},
		{
			name: "throttled",
			setup: func(s *ramSim, _ *fakeQueues, _ *Provisioner) {
				s.srv.SetFaults(rpcsim.Faults{ThrottleNext: 1})
			},
			wantKind:  fault.Retryable,
			wantCode:  "Throttling.User",
			wantCalls: 1,
		},
		{
			name: "server error",
			setup: func(s *ramSim, _ *fakeQueues, _ *Provisioner) {
				s.srv.SetFaults(rpcsim.Faults{ServerErrorNext: 1})
			},
			wantKind:  fault.Retryable,
			wantCode:  "ServiceUnavailable",
			wantCalls: 1,
		},
		{
			name: "access denied",
			setup: func(s *ramSim, _ *fakeQueues, _ *Provisioner) {
				s.srv.Handle("CreatePolicy", func(rpcsim.Request) (map[string]any, *rpcsim.APIError) {
					return nil, rpcsim.Errorf(http.StatusForbidden, "NoPermission", "You are not authorized to do this action.")
				})
			},
			wantKind:  fault.Permanent,
			wantCode:  "NoPermission",
			wantSteps: 1,
			wantCalls: 4,
		},
		{
			name: "wrong secret",
			setup: func(s *ramSim, _ *fakeQueues, p *Provisioner) {
				client, err := NewRAMClient(cloudauth.Credentials{AccessKeyID: testAK, AccessKeySecret: "wrong"}, s.url, time.Second)
				if err == nil {
					p.RAM = client
				}
			},
			wantKind:  fault.Permanent,
			wantCode:  "SignatureDoesNotMatch",
			wantCalls: 1,
		},
		{
			name: "queue conflict",
			setup: func(_ *ramSim, q *fakeQueues, _ *Provisioner) {
				q.err = fault.Wrap("mns.CreateQueue", fault.Permanent, "QueueAlreadyExist", errors.New("exists with other attributes"))
			},
			wantKind:  fault.Permanent,
			wantCode:  "QueueAlreadyExist",
			wantSteps: 3,
			wantCalls: 6,
		},
		{
			name: "versioned ledger bucket",
			setup: func(_ *ramSim, _ *fakeQueues, p *Provisioner) {
				p.EnsureBucket = (&fakeBuckets{err: fault.Wrap("provision.LedgerBucket", fault.Permanent, "BucketVersioned", ErrVersioned)}).ensure
			},
			wantKind:  fault.Permanent,
			wantCode:  "BucketVersioned",
			wantSteps: 9,
			wantCalls: 6,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ram := newRAMSim(t)
			queues := &fakeQueues{}
			p := newProvisioner(t, ram, queues)
			plan := testPlan(t)
			if tc.plan != nil {
				tc.plan(&plan)
			}
			if tc.setup != nil {
				tc.setup(ram, queues, p)
			}
			steps, err := p.Run(context.Background(), plan)
			require.Error(t, err)
			assert.Equal(t, tc.wantKind, fault.KindOf(err), "%v", err)
			assert.Equal(t, tc.wantCode, fault.CodeOf(err))
			assert.Len(t, steps, tc.wantSteps)
			assert.Len(t, ram.actions(), tc.wantCalls)
		})
	}
}

func TestRAMClientTransportErrors(t *testing.T) {
	t.Parallel()
	ram := newRAMSim(t)
	require.NoError(t, ram.srv.Close())
	client, err := NewRAMClient(testCreds, ram.url, time.Second)
	require.NoError(t, err)
	_, err = client.GetRole(context.Background(), "r")
	require.Error(t, err)
	assert.True(t, fault.Is(err, fault.Retryable), "%v", err)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = client.GetRole(ctx, "r")
	require.ErrorIs(t, err, context.Canceled)
	assert.True(t, fault.Is(err, fault.Permanent))
}

func TestGetRoleNotFound(t *testing.T) {
	t.Parallel()
	ram := newRAMSim(t)
	client, err := NewRAMClient(testCreds, ram.url, time.Second)
	require.NoError(t, err)
	_, err = client.GetRole(context.Background(), "missing")
	require.ErrorIs(t, err, ErrNotFound)
	assert.Equal(t, "EntityNotExist.Role", fault.CodeOf(err))
	_, err = client.GetPolicy(context.Background(), "missing")
	require.ErrorIs(t, err, ErrNotFound)
	assert.Equal(t, "EntityNotExist.Policy", fault.CodeOf(err))
}

func TestNewRAMClientRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		creds    cloudauth.Credentials
		endpoint string
	}{
		{"no credentials", cloudauth.Credentials{}, ""},
		{"http to a remote host", testCreds, "http://ram.aliyuncs.com"},
		{"a path", testCreds, "https://ram.aliyuncs.com/x"},
		{"a bad host", testCreds, "ram.aliyuncs.com/x"},
		{"ftp", testCreds, "ftp://127.0.0.1:21"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewRAMClient(tc.creds, tc.endpoint, 0)
			require.Error(t, err)
			assert.True(t, fault.Is(err, fault.Invalid), "%v", err)
		})
	}
	c, err := NewRAMClient(testCreds, "", 0)
	require.NoError(t, err)
	assert.Equal(t, RAMEndpoint, c.rpc.endpoint)
	assert.Equal(t, "HTTPS", c.rpc.scheme)
}

func TestAccountID(t *testing.T) {
	t.Parallel()
	token := "sts-token"
	sts := rpcsim.New(rpcsim.Options{Product: "sts", Version: STSVersion, AccessKeyID: testAK, AccessKeySecret: testSecret, SecurityToken: token})
	sts.Handle("GetCallerIdentity", func(rpcsim.Request) (map[string]any, *rpcsim.APIError) {
		return map[string]any{"AccountId": testAccount, "IdentityType": "RAMUser", "Arn": "acs:ram::" + testAccount + ":user/deployer"}, nil
	})
	url, err := sts.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sts.Close() })

	creds := testCreds
	creds.SecurityToken = token
	id, err := AccountID(context.Background(), creds, url, time.Second)
	require.NoError(t, err)
	assert.Equal(t, testAccount, id)

	_, err = AccountID(context.Background(), testCreds, url, time.Second) // no token
	require.Error(t, err)
	assert.True(t, fault.Is(err, fault.Permanent), "%v", err)
}
