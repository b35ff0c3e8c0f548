package protect

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, policy, byTag string
		want                Settings
	}{
		{name: "nothing set"},
		{name: "default only", policy: " po-000abc ", want: Settings{Default: "po-000abc"}},
		{name: "rules", policy: "po-d", byTag: "env=prod:po-aaa, env=dev:po-bbb,backup:po-ccc",
			want: Settings{Default: "po-d", Rules: []Rule{
				{Key: "env", Value: "prod", PolicyID: "po-aaa"},
				{Key: "env", Value: "dev", PolicyID: "po-bbb"},
				{Key: "backup", AnyValue: true, PolicyID: "po-ccc"},
			}}},
		{name: "empty value and colon in value", byTag: "env=:po-a,url=a:b:po-b",
			want: Settings{Rules: []Rule{
				{Key: "env", Value: "", PolicyID: "po-a"},
				{Key: "url", Value: "a:b", PolicyID: "po-b"},
			}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.policy, tt.byTag)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.policy != "" || tt.byTag != "", got.Enabled())
		})
	}
}

func TestParseErrorsNameTheTerm(t *testing.T) {
	many := make([]string, MaxRules+1)
	for i := range many {
		many[i] = fmt.Sprintf("k%d=v:po-a", i)
	}
	tests := []struct {
		name, policy, byTag string
		want                []string
	}{
		{"bad default", "pol-1", "", []string{EnvPolicyID, `"pol-1"`}},
		{"default with dash", "po-a-b", "", []string{EnvPolicyID}},
		{"no policy", "", "env=prod", []string{EnvPolicyByTag, `"env=prod"`}},
		{"bad policy", "", "env=prod:po-aaa,env=dev:p-bbb", []string{EnvPolicyByTag, `"env=dev:p-bbb"`, `"p-bbb"`}},
		{"empty key", "", "=prod:po-a", []string{EnvPolicyByTag, "empty tag key"}},
		{"stray comma", "", "env=prod:po-a,", []string{EnvPolicyByTag, "empty term"}},
		{"control character", "", "env=pr\tod:po-a", []string{EnvPolicyByTag, "control character"}},
		{"repeated tag", "", "env=prod:po-a,env=prod:po-b", []string{EnvPolicyByTag, `"env=prod:po-b"`, `"env=prod:po-a"`}},
		{"long key", "", strings.Repeat("k", 129) + "=v:po-a", []string{"tag key over 128"}},
		{"long value", "", "k=" + strings.Repeat("v", 129) + ":po-a", []string{"tag value over 128"}},
		{"too many", "", strings.Join(many, ","), []string{"more than 50"}},
		{"bad utf8", "", "k=\xff:po-a", []string{"UTF-8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.policy, tt.byTag)
			require.Error(t, err)
			assert.True(t, fault.Is(err, fault.Invalid))
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestPolicyFor(t *testing.T) {
	s := Settings{Default: "po-d", Rules: []Rule{
		{Key: "env", Value: "prod", PolicyID: "po-prod"},
		{Key: "backup", AnyValue: true, PolicyID: "po-any"},
	}}
	tests := []struct {
		tags   map[string]string
		want   string
		wantOK bool
	}{
		{map[string]string{"env": "prod", "backup": "x"}, "po-prod", true},
		{map[string]string{"env": "dev", "backup": ""}, "po-any", true},
		{map[string]string{"env": "Prod"}, "po-d", true},
		{nil, "po-d", true},
	}
	for _, tt := range tests {
		got, ok := s.PolicyFor(tt.tags)
		assert.Equal(t, tt.want, got, tt.tags)
		assert.Equal(t, tt.wantOK, ok)
	}
	_, ok := Settings{Rules: s.Rules}.PolicyFor(map[string]string{})
	assert.False(t, ok)
	assert.Equal(t, []string{"po-prod", "po-any", "po-d"}, s.Policies())
	assert.Equal(t, "env=prod:po-prod", s.Rules[0].String())
	assert.Equal(t, "backup:po-any", s.Rules[1].String())
	assert.True(t, s.NeedsTags())
	assert.False(t, Settings{Default: "po-d"}.NeedsTags())
}

func TestValidPolicyID(t *testing.T) {
	for id, want := range map[string]bool{
		"po-000abc123": true, "po-A1": true, "po-" + strings.Repeat("a", 61): true,
		"po-": false, "po-a-b": false, "PO-abc": false, "po-a\n": false, "": false,
		"po-" + strings.Repeat("a", 62): false, "po-é": false,
	} {
		assert.Equal(t, want, ValidPolicyID(id), "%q", id)
	}
}
