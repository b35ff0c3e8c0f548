package mnsconn

import (
	"strings"
	"testing"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident/identtest"
)

// TestLabelRuleMatchesRegexp pins the account and region check of a
// loopback endpoint to the regexp it replaced.
func TestLabelRuleMatchesRegexp(t *testing.T) {
	identtest.Run(t, []identtest.Case{{
		Name: "label", Pattern: `^[A-Za-z0-9-]+$`, Valid: labelRule.Valid,
		Accept: []string{"1234567890", "cn-hangzhou", "-", strings.Repeat("A", 300)},
		Reject: []string{"", "1.2", "cn_x", "cn-hangzhou\n", "cn-hángzhou"},
	}})
}
