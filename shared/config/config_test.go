package config

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident/identtest"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func base() map[string]string {
	return map[string]string{"FC_REGION": "cn-hangzhou", "FC_ACCOUNT_ID": "1234567890123456", "QUEUE_NAME": "hbr-jobs"}
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(base()))
	require.NoError(t, err)
	assert.Equal(t, "https://1234567890123456.mns.cn-hangzhou.aliyuncs.com", c.MNSEndpoint)
	assert.Equal(t, "hbr.{region}.aliyuncs.com", c.HBREndpoint)
	assert.Equal(t, 60*time.Second, c.FirstPollDelay)
	assert.Equal(t, 30*time.Second, c.PollInterval)
	assert.Equal(t, 15*time.Minute, c.TaskTimeout)
	assert.Equal(t, 10*time.Minute, c.ReadinessTimeout)
	assert.Equal(t, 2, c.MaxInstallAttempts)
	assert.Equal(t, 8, c.MessagePriority)
	assert.Equal(t, "info", c.LogLevel)
	assert.False(t, c.Audit())
	assert.False(t, c.NeedsECS(), "no ECS calls unless a feature needs them")
	assert.True(t, c.Scope.Empty())
}

func TestLoadCoverageSettings(t *testing.T) {
	m := base()
	m["MODE"] = "audit"
	m["EXCLUDE_TAGS"] = "backup=off"
	m["OUTCOME_TAG_KEY"] = "hbr-autoinstall"
	m["NOTIFY"] = "all"
	c, err := Load(env(m))
	require.NoError(t, err)
	assert.True(t, c.Audit())
	assert.True(t, c.NeedsECS())
	assert.False(t, c.Scope.Empty())
	assert.True(t, c.NotifyAll)
}

func TestLoadBackupPolicy(t *testing.T) {
	c, err := Load(env(base()))
	require.NoError(t, err)
	assert.False(t, c.Binds(), "nothing set: no binding")

	m := base()
	m["BACKUP_POLICY_ID"] = "po-000abc"
	c, err = Load(env(m))
	require.NoError(t, err)
	assert.True(t, c.Binds())
	assert.Equal(t, "po-000abc", c.Protect.Default)
	assert.False(t, c.NeedsECS(), "a default policy needs no tags")

	m["BACKUP_POLICY_BY_TAG"] = "env=prod:po-aaa,env=dev:po-bbb"
	c, err = Load(env(m))
	require.NoError(t, err)
	assert.Len(t, c.Protect.Rules, 2)
	assert.True(t, c.NeedsECS(), "tag rules need the instances' tags")
	policy, ok := c.Protect.PolicyFor(map[string]string{"env": "dev"})
	assert.True(t, ok)
	assert.Equal(t, "po-bbb", policy)
}

func TestLoadOverrides(t *testing.T) {
	m := base()
	m["FIRST_POLL_DELAY"] = "2"
	m["POLL_INTERVAL"] = "1s"
	m["MNS_ENDPOINT"] = "http://127.0.0.1:9000"
	m["HBR_ENDPOINT"] = "http://127.0.0.1:9001"
	m["CROSS_ACCOUNT_TYPE"] = "CROSS_ACCOUNT"
	m["CROSS_ACCOUNT_USER_ID"] = "1111"
	m["CROSS_ACCOUNT_ROLE_NAME"] = "BackupRole"
	c, err := Load(env(m))
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, c.FirstPollDelay)
	assert.Equal(t, time.Second, c.PollInterval)
	assert.Equal(t, int64(1111), c.CrossAccountUserID)
}

func TestLoadErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		name string
		set  map[string]string
		want string
	}{
		{"missing queue", map[string]string{"QUEUE_NAME": ""}, "QUEUE_NAME is required"},
		{"bad queue", map[string]string{"QUEUE_NAME": "1bad queue"}, "QUEUE_NAME"},
		{"missing region", map[string]string{"FC_REGION": ""}, "FC_REGION"},
		{"no endpoint, no account", map[string]string{"FC_ACCOUNT_ID": ""}, "MNS_ENDPOINT"},
		{"plain http to the cloud", map[string]string{"MNS_ENDPOINT": "http://1.mns.cn-hangzhou.aliyuncs.com"}, "plain http"},
		{"plain http hbr", map[string]string{"HBR_ENDPOINT": "http://hbr.cn-hangzhou.aliyuncs.com"}, "HBR_ENDPOINT"},
		{"bad duration", map[string]string{"POLL_INTERVAL": "soon"}, "POLL_INTERVAL"},
		{"zero delay", map[string]string{"FIRST_POLL_DELAY": "0"}, "FIRST_POLL_DELAY"},
		{"delay beyond MNS", map[string]string{"POLL_INTERVAL": "200h"}, "POLL_INTERVAL"},
		{"priority", map[string]string{"MESSAGE_PRIORITY": "0"}, "MESSAGE_PRIORITY"},
		{"attempts", map[string]string{"MAX_INSTALL_ATTEMPTS": "x"}, "MAX_INSTALL_ATTEMPTS"},
		{"cross account incomplete", map[string]string{"CROSS_ACCOUNT_TYPE": "CROSS_ACCOUNT"}, "CROSS_ACCOUNT_USER_ID"},
		{"cross account type", map[string]string{"CROSS_ACCOUNT_TYPE": "OTHER"}, "CROSS_ACCOUNT_TYPE"},
		{"log level", map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{"retry order", map[string]string{"RETRY_BASE_DELAY": "60s", "RETRY_MAX_DELAY": "10s"}, "RETRY_MAX_DELAY"},
		{"mode", map[string]string{"MODE": "yolo"}, "MODE"},
		{"bad scope rule", map[string]string{"EXCLUDE_TAGS": "=x"}, "EXCLUDE_TAGS"},
		{"reserved tag key", map[string]string{"OUTCOME_TAG_KEY": "aliyun:backup"}, "OUTCOME_TAG_KEY"},
		{"bad topic", map[string]string{"OUTCOME_TOPIC": "no spaces please"}, "OUTCOME_TOPIC"},
		{"notify", map[string]string{"NOTIFY": "sometimes"}, "NOTIFY"},
		{"plain http ecs", map[string]string{"ECS_ENDPOINT": "http://ecs.cn-hangzhou.aliyuncs.com"}, "ECS_ENDPOINT"},
		{"bad policy id", map[string]string{"BACKUP_POLICY_ID": "policy-1"}, "BACKUP_POLICY_ID"},
		{"bad policy term", map[string]string{"BACKUP_POLICY_BY_TAG": "env=prod:po-a,env=dev"}, `BACKUP_POLICY_BY_TAG: term "env=dev"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base()
			for k, v := range tt.set {
				m[k] = v
			}
			_, err := Load(env(m))
			require.Error(t, err)
			assert.True(t, fault.Is(err, fault.Invalid))
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	_, err := Load(env(map[string]string{"POLL_INTERVAL": "x"}))
	require.Error(t, err)
	for _, v := range []string{"FC_REGION", "QUEUE_NAME", "POLL_INTERVAL"} {
		assert.Contains(t, err.Error(), v)
	}
}

// TestChecksMatchRegexps pins the checks of Load to the regexps they
// replaced.
func TestChecksMatchRegexps(t *testing.T) {
	identtest.Run(t, []identtest.Case{
		{
			Name: "FC_REGION", Pattern: `^[a-z0-9-]{1,64}$`, Valid: ident.Region.Valid,
			Accept: []string{"cn-hangzhou", strings.Repeat("a", 64)},
			Reject: []string{"", "cn-hangzhou\n", "CN", strings.Repeat("a", 65)},
		},
		{
			Name: "FC_ACCOUNT_ID", Pattern: `^[0-9]{1,32}$`, Valid: accountRule.Valid,
			Accept: []string{"1234567890123456", "0", strings.Repeat("9", 32)},
			Reject: []string{"", "-1", "12a", "123\n", "１２３", strings.Repeat("9", 33)},
		},
		{
			Name: "QUEUE_NAME and OUTCOME_TOPIC", Pattern: `^[A-Za-z][A-Za-z0-9-]{0,119}$`, Valid: ident.QueueName.Valid,
			Accept: []string{"hbr-jobs", "q", strings.Repeat("q", 120)},
			Reject: []string{"", "1q", "-q", "q_1", "q\n", "qü", strings.Repeat("q", 121)},
		},
		{
			Name: "CROSS_ACCOUNT_ROLE_NAME", Pattern: `^[A-Za-z0-9.\-_]{1,64}$`, Valid: ident.RoleName.Valid,
			Accept: []string{"hbr-role_1.x", "-", strings.Repeat("r", 64)},
			Reject: []string{"", "role:1", "role\n", "rolé", strings.Repeat("r", 65)},
		},
		{
			Name: "HBR_ENDPOINT and ECS_ENDPOINT host", Pattern: `^[A-Za-z0-9.\-{}]+(:[0-9]{1,5})?$`, Valid: validHost,
			Accept: []string{"hbr.{region}.aliyuncs.com", "ecs-vpc.cn-hangzhou.aliyuncs.com:443", "h:1", "h:65535", "h:99999", "{}.-", strings.Repeat("h", 300)},
			Reject: []string{"", ":80", "h:", "h:123456", "h:1:2", "h::1", "h:8a", "h/x", "h:80\n", "hé", "[::1]:80"},
		},
	})
}

func TestVariablesDocumented(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range Variables() {
		assert.False(t, seen[v.Name], "duplicate %s", v.Name)
		seen[v.Name] = true
		assert.NotEmpty(t, v.Doc, v.Name)
		assert.Equal(t, strings.ToUpper(v.Name), v.Name)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30": 30 * time.Second, "90s": 90 * time.Second, "2m": 2 * time.Minute, " 5 ": 5 * time.Second} {
		got, err := ParseDuration(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "-1", "abc", "99999999999"} {
		_, err := ParseDuration(in)
		assert.Error(t, err, in)
	}
}
