package fault

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestKindsSurviveWrapping(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name string
		err  error
		kind Kind
		code string
	}{
		{"retryable", Wrap("hbr.DescribeTask", Retryable, "Throttling.User", base), Retryable, "Throttling.User"},
		{"wrapped again", fmt.Errorf("poll t-1: %w", Wrap("hbr.DescribeTask", Retryable, "ServiceUnavailable", base)), Retryable, "ServiceUnavailable"},
		{"invalid", Invalidf("job.Decode", "bad %s", "body"), Invalid, ""},
		{"unclassified is permanent", base, Permanent, ""},
		{"outer kind wins, inner code kept", Wrap("handler", Retryable, "", Wrap("mns", Permanent, "QueueNotExist", base)), Retryable, "QueueNotExist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.kind, KindOf(tt.err))
			assert.True(t, Is(tt.err, tt.kind))
			assert.Equal(t, tt.code, CodeOf(tt.err))
		})
	}
	assert.Nil(t, Wrap("op", Retryable, "", nil))
	assert.False(t, Is(nil, Permanent))
	assert.ErrorIs(t, Wrap("op", Retryable, "", base), base)
}

func TestErrorText(t *testing.T) {
	err := Wrap("hbr.InstallBackupClients", Permanent, "Forbidden.RAM", errors.New("denied"))
	assert.Equal(t, "hbr.InstallBackupClients [Forbidden.RAM]: denied", err.Error())
	assert.Equal(t, "retryable", Retryable.String())
}

func TestIsContext(t *testing.T) {
	assert.True(t, IsContext(fmt.Errorf("x: %w", context.DeadlineExceeded)))
	assert.True(t, IsContext(context.Canceled))
	assert.False(t, IsContext(errors.New("x")))
}
