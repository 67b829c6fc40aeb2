package observability

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// PrintfLogger takes a library's printf-style log lines (go-redis's
// internal.Logging has this shape) into slog, so that the JSON log holds
// only JSON: each line becomes a WARN record of component, with the
// request's attributes when the library passes its context on.
type PrintfLogger struct {
	Log       *slog.Logger
	Component string
}

// Printf logs one line.
func (l PrintfLogger) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	l.Log.WarnContext(ctx, msg, "component", l.Component)
}
