package outcome

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSlugsFitAnMNSMessageTag(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Kinds {
		s := k.Slug()
		assert.LessOrEqual(t, len(s), 16, k)
		assert.False(t, seen[s], "slug %s used twice", s)
		seen[s] = true
	}
}

func TestTagValue(t *testing.T) {
	tests := []struct {
		rec  Record
		want string
	}{
		{Record{Outcome: Installed}, "installed"},
		{Record{Outcome: AlreadyInstalled}, "already-installed"},
		{Record{Outcome: Failed, Code: "ExecutionFailed"}, "failed:ExecutionFailed"},
		{Record{Outcome: Skipped, Reason: "excluded by exclude tag backup=off"}, "skipped:exclude tag backup=off"},
		{Record{Outcome: Skipped, Reason: "excluded by exclude tag url=https://x"}, "skipped:exclude tag url=x"},
		{Record{Outcome: Failed, Code: strings.Repeat("x", 200)}, "failed:" + strings.Repeat("x", 121)},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.rec.TagValue())
	}
}
