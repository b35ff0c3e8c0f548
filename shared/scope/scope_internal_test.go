package scope

import (
	"strings"
	"testing"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident/identtest"
)

// TestIDRuleMatchesRegexp pins the resource group and VPC id check to the
// regexp it replaced (and still prints in its error).
func TestIDRuleMatchesRegexp(t *testing.T) {
	identtest.Run(t, []identtest.Case{{
		Name: "id", Pattern: `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`, Valid: idRule.Valid,
		Accept: []string{"rg-acfm2abc", "vpc-bp1x.y_z", "0", strings.Repeat("v", 128)},
		Reject: []string{"", ".rg", "-rg", "_rg", "rg b", "vpc=a", "vpc\n", "vpc-ä", strings.Repeat("v", 129)},
	}})
}
