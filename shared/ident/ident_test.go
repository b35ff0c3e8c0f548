package ident_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident/identtest"
)

func TestCharsetContains(t *testing.T) {
	tests := []struct {
		spec ident.Charset
		in   string // members
		out  string // non-members
	}{
		{spec: "a-z0-9-", in: "az09-m5", out: "AZ_.:\n\x00\x7f\x80\xff"},
		{spec: "-a", in: "-a", out: "b`"},
		{spec: "a-", in: "a-", out: "b`"},
		{spec: "A-Za-z0-9._:-", in: "AZaz09._:-", out: "/;@[`{~ \t"},
		{spec: "a-c-e", in: "abc-e", out: "d"},
		{spec: "z-a", in: "", out: "amz-"},
		{spec: "\x00-\x7f", in: "\x00 ~\x7f", out: "\x80\xff"},
		{spec: "é", in: "", out: "é\xc3\xa9"},
		{spec: "", in: "", out: "a\x00"},
	}
	for _, tt := range tests {
		t.Run(string(tt.spec), func(t *testing.T) {
			for i := 0; i < len(tt.in); i++ {
				assert.True(t, tt.spec.Contains(tt.in[i]), "%q", tt.in[i])
			}
			for i := 0; i < len(tt.out); i++ {
				assert.False(t, tt.spec.Contains(tt.out[i]), "%q", tt.out[i])
			}
		})
	}
}

func TestRuleValid(t *testing.T) {
	lower := ident.Rule{Min: 2, Max: 4, First: "a-z", Rest: "a-z0-9"}
	tests := []struct {
		name string
		rule ident.Rule
		s    string
		want bool
	}{
		{"empty below min", lower, "", false},
		{"min", lower, "ab", true},
		{"below min", lower, "a", false},
		{"max", lower, "ab12", true},
		{"max+1", lower, "ab123", false},
		{"first from Rest only", lower, "1ab", false},
		{"trailing newline", lower, "ab\n", false},
		{"leading newline", lower, "\nab", false},
		{"unicode", lower, "aé", false},
		{"invalid utf-8", lower, "a\xff", false},
		{"empty allowed", ident.Rule{Max: 3, First: "a", Rest: "a"}, "", true},
		{"unbounded", ident.Rule{Min: 1, First: "a", Rest: "a"}, strings.Repeat("a", 10000), true},
		{"unbounded, bad byte", ident.Rule{Min: 1, First: "a", Rest: "a"}, strings.Repeat("a", 100) + "b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.rule.Valid(tt.s), "%q", tt.s)
		})
	}
}

// TestSharedRules pins each shared rule to the regexp it replaced.
func TestSharedRules(t *testing.T) {
	rules := map[string]ident.Rule{
		"Region": ident.Region, "QueueName": ident.QueueName, "TopicName": ident.TopicName,
		"RoleName": ident.RoleName, "CloudID": ident.CloudID,
	}
	cases := []identtest.Case{
		{
			Name: "Region", Pattern: `^[a-z0-9-]{1,64}$`, Valid: ident.Region.Valid,
			Accept: []string{"cn-hangzhou", "a", "-", "9", strings.Repeat("z", 64)},
			Reject: []string{"", "cn-hangzhou\n", "Cn-hangzhou", "cn_hangzhou", "cn-hángzhou", strings.Repeat("z", 65)},
		},
		{
			Name: "QueueName", Pattern: `^[A-Za-z][A-Za-z0-9-]{0,119}$`, Valid: ident.QueueName.Valid,
			Accept: []string{"hbr-autoinstall-jobs", "Q", "a-", strings.Repeat("Q", 120)},
			Reject: []string{"", "1queue", "-queue", "queue\n", "que_ue", "quéue", strings.Repeat("Q", 121)},
		},
		{
			Name: "TopicName", Pattern: `^[A-Za-z][A-Za-z0-9-]{0,255}$`, Valid: ident.TopicName.Valid,
			Accept: []string{"hbr-outcomes", "T", strings.Repeat("t", 256)},
			Reject: []string{"", "9topic", "topic\n", "to.pic", "tøpic", strings.Repeat("t", 257)},
		},
		{
			Name: "RoleName", Pattern: `^[A-Za-z0-9._-]{1,64}$`, Valid: ident.RoleName.Valid,
			Accept: []string{"AliyunHBRRole", "_", ".role-1", strings.Repeat("r", 64)},
			Reject: []string{"", "role:x", "role\n", "rôle", strings.Repeat("r", 65)},
		},
		{
			Name: "CloudID", Pattern: `^[A-Za-z0-9._:-]{1,128}$`, Valid: ident.CloudID.Valid,
			Accept: []string{"i-bp1abc", "t-0000:ab.c_d", ":", strings.Repeat("i", 128)},
			Reject: []string{"", "i-bp1 abc", "i-bp1\n", "i/bp1", "ï-bp1", strings.Repeat("i", 129)},
		},
	}
	for _, c := range cases {
		assert.Equal(t, c.Pattern, rules[c.Name].String(), c.Name)
	}
	identtest.Run(t, cases)
}

// TestRuleString checks that String prints a regexp accepting what the rule
// accepts, for the shapes the shared rules do not cover.
func TestRuleString(t *testing.T) {
	tests := []struct {
		rule    ident.Rule
		pattern string
		sample  string
	}{
		{ident.Rule{Min: 1, First: "A-Za-z0-9-", Rest: "A-Za-z0-9-"}, `^[A-Za-z0-9-]+$`, "cn-hangzhou"},
		{ident.Rule{First: "a", Rest: "a"}, `^[a]*$`, "aaa"},
		{ident.Rule{Min: 3, First: "a", Rest: "a"}, `^[a]{3,}$`, "aaaa"},
		{ident.Rule{Min: 2, Max: 2, First: "a", Rest: "a"}, `^[a]{2}$`, "aa"},
		{ident.Rule{Min: 1, Max: 1, First: "a", Rest: "a"}, `^[a]$`, "a"},
		{ident.Rule{Min: 1, First: "a", Rest: "b"}, `^[a][b]*$`, "abb"},
		{ident.Rule{Min: 0, Max: 3, First: "a", Rest: "b"}, `^([a][b]{0,2})?$`, "abb"},
		{ident.Rule{Min: 1, Max: 1, First: "a", Rest: "b"}, `^[a][b]{0}$`, "a"},
		{ident.Rule{Min: 0, Max: 1, First: "a", Rest: "b"}, `^([a][b]{0})?$`, "a"},
		{ident.Rule{First: "a", Rest: "b"}, `^([a][b]*)?$`, "abbb"},
		{ident.Rule{Min: 1, Max: 3, First: `\^`, Rest: "[]"}, `^[\\\^][\[\]]{0,2}$`, `^[]`},
	}
	cases := make([]identtest.Case, 0, len(tests))
	for _, tt := range tests {
		assert.Equal(t, tt.pattern, tt.rule.String())
		cases = append(cases, identtest.Case{Name: tt.pattern, Pattern: tt.pattern, Valid: tt.rule.Valid, Accept: []string{tt.sample}})
	}
	identtest.Run(t, cases)
}

func TestValidAllocatesNothing(t *testing.T) {
	id := strings.Repeat("i", 128)
	allocs := testing.AllocsPerRun(100, func() {
		if !ident.CloudID.Valid(id) || ident.Region.Valid("cn-hangzhou\n") {
			t.Fatal("unexpected result")
		}
	})
	assert.Zero(t, allocs)
}

func BenchmarkRuleValid(b *testing.B) {
	for b.Loop() {
		ident.CloudID.Valid("i-bp1abcdefghijklmnopq")
	}
}
