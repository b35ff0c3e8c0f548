package handler

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFirstHeartbeatWithoutInstanceIsNoFailure: such an event must not fail
// the invocation (retries, then the dead-letter queue, as noise); it is
// ignored with a debug line.
func TestFirstHeartbeatWithoutInstanceIsNoFailure(t *testing.T) {
	var logs bytes.Buffer
	d := deps(&fakeCloud{}, &recorder{})
	d.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sum, err := NewInstall(d).Handle(context.Background(), event(t, "cloudassistant-first-heartbeat-no-instance.json"))
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Ignored)
	assert.Empty(t, sum.Rejected)
	line := logLine(t, &logs, "ignored event")
	assert.Equal(t, "DEBUG", line["level"])
}
