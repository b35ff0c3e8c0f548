package outcome

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
		{Record{Outcome: Protected, PolicyID: "po-000abc"}, "protected:po-000abc"},
		{Record{Outcome: AlreadyProtected, PolicyID: "po-other"}, "already-protected:po-other"},
		{Record{Outcome: BindFailed, Code: "PolicyNotExists", PolicyID: "po-x"}, "bind-failed:PolicyNotExists"},
		{Record{Outcome: WouldProtect, PolicyID: "po-x"}, "would-protect:po-x"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.rec.TagValue())
	}
}

func TestProblemAndSlug(t *testing.T) {
	tests := []struct {
		kind    Kind
		problem bool
		audit   bool
		slug    string
	}{
		{Installed, false, false, "installed"},
		{AlreadyInstalled, false, false, "already"},
		{Failed, true, false, "failed"},
		{Skipped, false, false, "skipped"},
		{WouldInstall, true, true, "would-install"},
		{Protected, false, false, "protected"},
		{AlreadyProtected, false, false, "already-bound"},
		{BindFailed, true, false, "bind-failed"},
		{WouldProtect, true, true, "would-protect"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.problem, tt.kind.Problem(), tt.kind)
		assert.Equal(t, tt.audit, tt.kind.Audit(), tt.kind)
		assert.Equal(t, tt.slug, tt.kind.Slug(), tt.kind)
		assert.Contains(t, Kinds, tt.kind)
	}
}

func TestLogNamesThePolicy(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		rec       Record
		wantLevel string
		wantKey   bool
	}{
		{Record{Outcome: Protected, PolicyID: "po-a"}, "INFO", true},
		{Record{Outcome: AlreadyProtected, PolicyID: "po-b"}, "INFO", true},
		{Record{Outcome: BindFailed, PolicyID: "po-a", Code: "Throttling"}, "WARN", true},
		{Record{Outcome: WouldProtect, PolicyID: "po-a"}, "INFO", true},
		{Record{Outcome: Installed}, "INFO", false},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		Log{Logger: slog.New(slog.NewJSONHandler(&buf, nil)), Now: func() time.Time { return t0 }}.Record(context.Background(), tt.rec)
		var line map[string]any
		require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
		assert.Equal(t, tt.wantLevel, line["level"], tt.rec.Outcome)
		assert.Equal(t, string(tt.rec.Outcome), line["outcome"])
		if tt.wantKey {
			assert.Equal(t, tt.rec.PolicyID, line["policyId"])
		} else {
			assert.NotContains(t, line, "policyId")
		}
	}
}
