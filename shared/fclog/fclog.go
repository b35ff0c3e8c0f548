// Package fclog builds the structured logger both functions use: JSON lines on
// stdout, each tagged with the Function Compute request id, function name and
// retry count of the invocation in the context. It never logs credentials: it
// reads only those three fields of the FC context.
package fclog

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"github.com/aliyun/fc-runtime-go-sdk/fccontext"
)

// New returns a JSON logger writing to w at the given level ("debug", "info",
// "warn", "error"; unknown values mean info). Log with the *Context methods so
// the invocation's request id is attached.
func New(w io.Writer, level string) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: ParseLevel(level)})
	return slog.New(contextHandler{h})
}

// ParseLevel maps a LOG_LEVEL value to a slog level.
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if fctx, ok := fccontext.FromContext(ctx); ok && fctx != nil {
		r.AddAttrs(slog.String("requestId", fctx.RequestID))
		if fctx.Function.Name != "" {
			r.AddAttrs(slog.String("function", fctx.Function.Name))
		}
		if fctx.RetryCount > 0 {
			r.AddAttrs(slog.Int("retryCount", fctx.RetryCount))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
