package scope_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/scope"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name                        string
		include, exclude, rgs, vpcs string
		wantMsg                     string
	}{
		{name: "empty key", exclude: "backup=off,=x", wantMsg: `EXCLUDE_TAGS: term "=x" has an empty key`},
		{name: "empty key not-equal", include: "!=x", wantMsg: `INCLUDE_TAGS: term "!=x" has an empty key`},
		{name: "blank key", include: "  = x", wantMsg: `INCLUDE_TAGS: term "= x" has an empty key`},
		{name: "long key", include: strings.Repeat("k", 129) + "=v", wantMsg: "INCLUDE_TAGS: term \"" + strings.Repeat("k", 64) + "…\" has a key of 129 characters, over the tag limit of 128"},
		{name: "long value", exclude: "k=" + strings.Repeat("値", 129), wantMsg: "over the tag limit of 128"},
		{name: "very long string", include: strings.Repeat("a,", 1<<20), wantMsg: "INCLUDE_TAGS: 2097152 bytes, over the limit of 16384"},
		{name: "too many terms", exclude: manyTerms(51), wantMsg: "EXCLUDE_TAGS: more than 50 terms"},
		{name: "bad utf-8", include: "env=\xff", wantMsg: "INCLUDE_TAGS: not valid UTF-8"},
		{name: "control character", include: "env=prod\x00,x", wantMsg: `INCLUDE_TAGS: term "env=prod\x00" holds a control character`},
		{name: "newline", exclude: "a\nb", wantMsg: "holds a control character"},
		{name: "id with space", rgs: "rg-a,rg b", wantMsg: `RESOURCE_GROUPS: "rg b" is not an ID`},
		{name: "id with equals", vpcs: "vpc=a", wantMsg: `VPCS: "vpc=a" is not an ID`},
		{name: "unicode id", vpcs: "vpc-ä", wantMsg: `VPCS: "vpc-ä" is not an ID`},
		{name: "id starting with a dot", rgs: ".rg", wantMsg: `RESOURCE_GROUPS: ".rg" is not an ID (want ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$)`},
		{name: "id of 129 characters", vpcs: strings.Repeat("v", 129), wantMsg: `is not an ID`},
		{name: "contradictory include", include: "env=prod,backup,env=dev", wantMsg: `INCLUDE_TAGS: terms "env=prod" and "env=dev" can never both match`},
		{name: "include and its negation", include: "env=prod,env!=prod", wantMsg: "can never both match"},
		{name: "exclude swallows include", include: "env=prod", exclude: "temp,env", wantMsg: `EXCLUDE_TAGS: term "env" excludes every instance that INCLUDE_TAGS term "env=prod" admits`},
		{name: "exclude equal to include", include: "backup", exclude: "backup", wantMsg: "excludes every instance"},
		{name: "exclude not-equal swallows include", include: "env=prod", exclude: "env!=dev", wantMsg: "excludes every instance"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := scope.Parse(tc.include, tc.exclude, tc.rgs, tc.vpcs)
			require.Error(t, err)
			assert.True(t, fault.Is(err, fault.Invalid), "kind of %v", err)
			var fe *fault.Error
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "scope.Parse", fe.Op)
			assert.Contains(t, err.Error(), tc.wantMsg)
			assert.Less(t, len(err.Error()), 600, "error messages stay short")
			assert.True(t, r.Empty(), "no partial rules")
		})
	}
}

func manyTerms(n int) string {
	terms := make([]string, n)
	for i := range terms {
		terms[i] = "k" + strings.Repeat("x", i)
	}
	return strings.Join(terms, ",")
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name                        string
		include, exclude, rgs, vpcs string
		wantString                  string
		wantEmpty                   bool
	}{
		{name: "all empty", wantString: `INCLUDE_TAGS="" EXCLUDE_TAGS="" RESOURCE_GROUPS="" VPCS=""`, wantEmpty: true},
		{name: "blank terms only", include: " , ,", exclude: ",", wantString: `INCLUDE_TAGS="" EXCLUDE_TAGS="" RESOURCE_GROUPS="" VPCS=""`, wantEmpty: true},
		{name: "spaces trimmed, duplicates once", include: " env = prod ,backup, env=prod,backup ", exclude: "temp,temp",
			wantString: `INCLUDE_TAGS="env=prod,backup" EXCLUDE_TAGS="temp" RESOURCE_GROUPS="" VPCS=""`},
		{name: "value with equals", include: "expr=a=b", wantString: `INCLUDE_TAGS="expr=a=b" EXCLUDE_TAGS="" RESOURCE_GROUPS="" VPCS=""`},
		{name: "empty value", exclude: "backup=", wantString: `INCLUDE_TAGS="" EXCLUDE_TAGS="backup=" RESOURCE_GROUPS="" VPCS=""`},
		{name: "not-equal", include: "env!=dev", wantString: `INCLUDE_TAGS="env!=dev" EXCLUDE_TAGS="" RESOURCE_GROUPS="" VPCS=""`},
		{name: "unicode tags", include: "部门=财务,环境", wantString: `INCLUDE_TAGS="部门=财务,环境" EXCLUDE_TAGS="" RESOURCE_GROUPS="" VPCS=""`},
		{name: "128-character key", include: strings.Repeat("键", 128)},
		{name: "50 terms", exclude: manyTerms(50)},
		{name: "ids", rgs: "rg-a, rg-b,rg-a", vpcs: "vpc-bp1abc",
			wantString: `INCLUDE_TAGS="" EXCLUDE_TAGS="" RESOURCE_GROUPS="rg-a,rg-b" VPCS="vpc-bp1abc"`},
		{name: "compatible include and exclude", include: "env=prod", exclude: "env=dev,env!=prod,backup=off"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := scope.Parse(tc.include, tc.exclude, tc.rgs, tc.vpcs)
			require.NoError(t, err)
			assert.Equal(t, tc.wantEmpty, r.Empty())
			if tc.wantString != "" {
				assert.Equal(t, tc.wantString, r.String())
			}
		})
	}
}

func TestDecide(t *testing.T) {
	prod := ecs.Instance{ID: "i-1", VpcID: "vpc-a", ResourceGroupID: "rg-a", Tags: map[string]string{"env": "prod", "backup": "on"}}
	tests := []struct {
		name                        string
		include, exclude, rgs, vpcs string
		in                          ecs.Instance
		wantOK                      bool
		wantRule                    string
	}{
		{name: "no rules", in: ecs.Instance{ID: "i-bare"}, wantOK: true},
		{name: "include all terms match", include: "env=prod,backup", in: prod, wantOK: true},
		{name: "include term missing", include: "env=prod,owner", in: prod, wantRule: "include tag owner not matched"},
		{name: "include value differs", include: "env=dev", in: prod, wantRule: "include tag env=dev not matched"},
		{name: "include on untagged", include: "env=prod", in: ecs.Instance{ID: "i-2"}, wantRule: "include tag env=prod not matched"},
		{name: "not-equal matches absent key", include: "env!=dev", in: ecs.Instance{ID: "i-2"}, wantOK: true},
		{name: "not-equal fails on the value", include: "backup!=on", in: prod, wantRule: "include tag backup!=on not matched"},
		{name: "exclude any term", exclude: "temp,backup=on", in: prod, wantRule: "exclude tag backup=on"},
		{name: "exclude other value", exclude: "backup=off", in: prod, wantOK: true},
		{name: "exclude key present", exclude: "backup", in: prod, wantRule: "exclude tag backup"},
		{name: "exclude first in written order", exclude: "env,backup", in: prod, wantRule: "exclude tag env"},
		{name: "exclude wins over include", include: "env=prod", exclude: "backup=on", in: prod, wantRule: "exclude tag backup=on"},
		{name: "resource group listed", rgs: "rg-b,rg-a", in: prod, wantOK: true},
		{name: "resource group not listed", rgs: "rg-b", in: prod, wantRule: `resource group "rg-a" is not in RESOURCE_GROUPS`},
		{name: "no resource group", rgs: "rg-b", in: ecs.Instance{ID: "i-2"}, wantRule: `resource group "" is not in RESOURCE_GROUPS`},
		{name: "vpc not listed", vpcs: "vpc-b", in: prod, wantRule: `vpc "vpc-a" is not in VPCS`},
		{name: "classic network", vpcs: "vpc-a", in: ecs.Instance{ID: "i-2"}, wantRule: `vpc "" is not in VPCS`},
		{name: "everything matches", include: "env=prod", exclude: "temp", rgs: "rg-a", vpcs: "vpc-a", in: prod, wantOK: true},
		{name: "keys are case-sensitive", include: "Env=prod", in: prod, wantRule: "include tag Env=prod not matched"},
		{name: "unicode match", include: "部门=财务", in: ecs.Instance{Tags: map[string]string{"部门": "财务"}}, wantOK: true},
		{name: "empty value term", exclude: "backup=", in: ecs.Instance{Tags: map[string]string{"backup": ""}}, wantRule: "exclude tag backup="},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := scope.Parse(tc.include, tc.exclude, tc.rgs, tc.vpcs)
			require.NoError(t, err)
			ok, rule := r.Decide(tc.in)
			assert.Equal(t, tc.wantOK, ok)
			assert.Equal(t, tc.wantRule, rule)
			again, ruleAgain := r.Decide(tc.in)
			assert.Equal(t, ok, again)
			assert.Equal(t, rule, ruleAgain, "deterministic")
		})
	}
}

func TestZeroRulesIncludeAll(t *testing.T) {
	var r scope.Rules
	assert.True(t, r.Empty())
	ok, rule := r.Decide(ecs.Instance{})
	assert.True(t, ok)
	assert.Empty(t, rule)
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{"env=prod,backup", "backup=off,temp", "a!=b", "=x", "k=a=b", " , ", "部门=财务"} {
		f.Add(seed, seed)
	}
	f.Fuzz(func(t *testing.T, include, exclude string) {
		r, err := scope.Parse(include, exclude, "", "")
		if err != nil {
			assert.True(t, fault.Is(err, fault.Invalid))
			return
		}
		// Decide never panics and names a rule exactly when it excludes.
		in := ecs.Instance{Tags: map[string]string{"env": "prod"}}
		ok, rule := r.Decide(in)
		assert.Equal(t, ok, rule == "")
	})
}
