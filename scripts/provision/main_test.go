package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var files = []string{"-policy-template", "../ram/policy.json", "-trust-policy", "../ram/trust-policy.json"}

func TestDryRunPrintsThePolicy(t *testing.T) {
	t.Parallel()
	sts := rpcsim.New(rpcsim.Options{Product: "sts", Version: "2015-04-01", AccessKeyID: "ak", AccessKeySecret: "sk"})
	sts.Handle("GetCallerIdentity", func(rpcsim.Request) (map[string]any, *rpcsim.APIError) {
		return map[string]any{"AccountId": "5555"}, nil
	})
	url, err := sts.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sts.Close() })

	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		account string
	}{
		{"account given, no credentials", []string{"-account", "4444"}, nil, "4444"},
		{"account looked up", []string{"-sts-endpoint", url}, map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "ak", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "sk"}, "5555"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			args := append(append([]string{"-dry-run", "-regions", "cn-hangzhou,cn-beijing", "-queue", "q", "-install-queue", "i", "-dlq", "d"}, files...), tc.args...)
			require.NoError(t, run(context.Background(), args, env(tc.env), &stdout, &stderr))

			var policy struct {
				Statement []struct {
					Action    any
					Resource  any
					Condition any
				}
			}
			require.NoError(t, json.Unmarshal(stdout.Bytes(), &policy))
			require.Len(t, policy.Statement, 5)
			assert.Equal(t, []any{"ecs:DescribeInstances", "ecs:DescribeCloudAssistantStatus"}, policy.Statement[1].Action)
			// MNS's documents disagree on the action BatchSendMessage needs,
			// so the job and dead-letter queues grant both.
			assert.Equal(t, []any{"mns:SendMessage", "mns:BatchSendMessage"}, policy.Statement[2].Action)
			a := tc.account
			assert.Equal(t, []any{
				"acs:mns:cn-hangzhou:" + a + ":/queues/q/messages",
				"acs:mns:cn-beijing:" + a + ":/queues/q/messages",
				"acs:mns:cn-hangzhou:" + a + ":/queues/i/messages",
				"acs:mns:cn-beijing:" + a + ":/queues/i/messages",
				"acs:mns:cn-hangzhou:" + a + ":/queues/d/messages",
				"acs:mns:cn-beijing:" + a + ":/queues/d/messages",
			}, policy.Statement[2].Resource)
			// The ledger: objects under the prefix of each region's bucket,
			// and listing only under the prefix.
			assert.Equal(t, []any{"oss:PutObject", "oss:GetObject", "oss:DeleteObject"}, policy.Statement[3].Action)
			assert.Equal(t, []any{
				"acs:oss:*:" + a + ":hbr-autoinstall-ledger-" + a + "-cn-hangzhou/hbr-autoinstall/ledger/*",
				"acs:oss:*:" + a + ":hbr-autoinstall-ledger-" + a + "-cn-beijing/hbr-autoinstall/ledger/*",
			}, policy.Statement[3].Resource)
			assert.Nil(t, policy.Statement[3].Condition)
			assert.Equal(t, "oss:ListObjects", policy.Statement[4].Action)
			assert.Equal(t, map[string]any{"StringLike": map[string]any{"oss:Prefix": "hbr-autoinstall/ledger/*"}}, policy.Statement[4].Condition)
			assert.Contains(t, stderr.String(), "dry run, nothing changed")
			assert.Contains(t, stderr.String(), "queue i in cn-hangzhou (retention 345600s)")
			assert.Contains(t, stderr.String(), "queue d in cn-beijing (retention 604800s)")
			assert.Contains(t, stderr.String(), "ledger bucket hbr-autoinstall-ledger-"+a+"-cn-beijing in cn-beijing (private, not versioned; entries under hbr-autoinstall/ledger/ expire after 90 days)")
		})
	}
}

func TestDryRunOptionalPermissions(t *testing.T) {
	t.Parallel()
	type statement struct {
		Action   any
		Resource any
	}
	tests := []struct {
		name  string
		flags []string
		want  []statement // after the template's five statements
	}{
		{"none", nil, nil},
		{"tag write-back", []string{"-tag-writeback"}, []statement{
			{"ecs:TagResources", []any{"acs:ecs:cn-hangzhou:4444:instance/*", "acs:ecs:cn-beijing:4444:instance/*"}},
		}},
		{"bind", []string{"-bind"}, []statement{
			{[]any{"hbr:CreatePolicyBindings", "hbr:DescribePolicyBindings"}, "*"},
		}},
		{"all", []string{"-bind", "-topic", "hbr-alerts", "-tag-writeback"}, []statement{
			{"ecs:TagResources", []any{"acs:ecs:cn-hangzhou:4444:instance/*", "acs:ecs:cn-beijing:4444:instance/*"}},
			{"mns:PublishMessage", []any{"acs:mns:cn-hangzhou:4444:/topics/hbr-alerts/messages", "acs:mns:cn-beijing:4444:/topics/hbr-alerts/messages"}},
			{[]any{"hbr:CreatePolicyBindings", "hbr:DescribePolicyBindings"}, "*"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			args := append(append([]string{"-dry-run", "-account", "4444", "-regions", "cn-hangzhou cn-beijing"}, files...), tc.flags...)
			require.NoError(t, run(context.Background(), args, env(nil), &stdout, &stderr))
			var policy struct{ Statement []statement }
			require.NoError(t, json.Unmarshal(stdout.Bytes(), &policy))
			require.Len(t, policy.Statement, 5+len(tc.want))
			var added []statement
			if len(tc.want) > 0 {
				added = policy.Statement[5:]
			}
			assert.Equal(t, tc.want, added)
		})
	}
}

func TestRunRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no account and no credentials", []string{}, "-account not given"},
		{"missing template", []string{"-account", "1", "-policy-template", "nope.json"}, "read policy template"},
		{"bad region", []string{"-account", "1", "-regions", "Hangzhou"}, `region "Hangzhou"`},
		{"stray argument", []string{"-account", "1", "extra"}, "unexpected arguments"},
		{"no credentials for a real run", []string{"-account", "1"}, "no credentials"},
		{"unknown flag", []string{"-acount", "1"}, "flag provided but not defined"},
		{"bad topic", []string{"-account", "1", "-topic", "hbr/alerts"}, `topic name "hbr/alerts"`},
		{"install queue is the job queue", []string{"-account", "1", "-install-queue", "hbr-autoinstall-jobs"}, "are both \"hbr-autoinstall-jobs\""},
		{"one bucket for two regions", []string{"-account", "1", "-regions", "cn-hangzhou cn-beijing", "-ledger-bucket", "my-ledger"}, "names one bucket for 2 regions"},
		{"bad prefix", []string{"-account", "1", "-ledger-prefix", "ledger"}, `ledger prefix "ledger"`},
		{"no expiry", []string{"-account", "1", "-ledger-expiry-days", "0"}, "ledger expiry of 0 days"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			args := append(append([]string{}, files...), tc.args...)
			err := run(context.Background(), args, env(nil), &stdout, &stderr)
			require.Error(t, err)
			assert.Contains(t, err.Error()+stderr.String(), tc.want)
		})
	}
}

// TestDryRunLedgerFlags: the ledger's names and expiry reach the policy
// and the plan.
func TestDryRunLedgerFlags(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	args := append([]string{"-dry-run", "-account", "4444", "-regions", "ap-southeast-1",
		"-ledger-bucket", "ops-ledger-{account}", "-ledger-prefix", "hbr/", "-ledger-expiry-days", "30"}, files...)
	require.NoError(t, run(context.Background(), args, env(nil), &stdout, &stderr))
	assert.Contains(t, stdout.String(), `"acs:oss:*:4444:ops-ledger-4444/hbr/*"`)
	assert.Contains(t, stdout.String(), `"oss:Prefix": "hbr/*"`)
	assert.Contains(t, stderr.String(), "ledger bucket ops-ledger-4444 in ap-southeast-1 (private, not versioned; entries under hbr/ expire after 30 days)")
}
