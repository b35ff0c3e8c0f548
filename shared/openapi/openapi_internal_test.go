package openapi

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident/identtest"
)

// TestChecksMatchRegexps pins the checks of New to the regexps they
// replaced; the rules print those regexps in error messages.
func TestChecksMatchRegexps(t *testing.T) {
	assert.Equal(t, `^[a-z][a-z0-9-]{0,31}$`, productRule.String())
	assert.Equal(t, `^[a-z0-9-]{1,64}$`, ident.Region.String())
	label := strings.Repeat("a", 63)
	identtest.Run(t, []identtest.Case{
		{
			Name: "product", Pattern: `^[a-z][a-z0-9-]{0,31}$`, Valid: productRule.Valid,
			Accept: []string{"ecs", "hbr", "a-", "p" + strings.Repeat("0", 31)},
			Reject: []string{"", "ECS", "1ecs", "-ecs", "ecs\n", "écs", "p" + strings.Repeat("0", 32)},
		},
		{
			Name: "region", Pattern: `^[a-z0-9-]{1,64}$`, Valid: ident.Region.Valid,
			Accept: []string{"cn-hangzhou", strings.Repeat("a", 64)},
			Reject: []string{"", "x y", "cn-hangzhou\n", strings.Repeat("a", 65)},
		},
		{
			Name: "host name", Pattern: `^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`, Valid: validHostname,
			Accept: []string{
				"ecs.cn-hangzhou.aliyuncs.com", "a", "a1", "a-b", "a..b",
				label + "." + label + "." + label + "." + strings.Repeat("b", 61), // 253
			},
			Reject: []string{
				"", "-a", "a-", ".a", "a.", "a_b", "a b", "a\n", "hé", "a\xff",
				label + "." + label + "." + label + "." + strings.Repeat("b", 62), // 254
			},
		},
	})
}
