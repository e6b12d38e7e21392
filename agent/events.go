package agent

import (
	"context"
	"log/slog"

	"github.com/stallmon/stallmon/monitor"
)

// Event names are the "msg" of log records; operators and tests match on
// them, so they are part of the interface (see README).
const (
	EvAttached      = "attached"
	EvStall         = "stall"
	EvStallCleared  = "stall_cleared"
	EvTargetExited  = "target_exited"
	EvThreadStarted = "thread_started"
	EvThreadExited  = "thread_exited"
)

func threadAttrs(pid int, t monitor.Thread) []slog.Attr {
	attrs := []slog.Attr{
		slog.Int("pid", pid),
		slog.Int("tid", t.TID),
		slog.String("comm", t.Comm),
		slog.String("syscall", t.Syscall),
		slog.Int("nr", t.Nr),
		slog.Int("fd", t.FD),
		slog.Float64("elapsed_seconds", t.Elapsed.Seconds()),
		slog.String("state", t.State.String()),
	}
	if t.SinceAttach {
		// Entered before stallmon attached: elapsed is a lower bound.
		attrs = append(attrs, slog.Bool("since_attach", true))
	}
	return attrs
}

func (a *Agent) event(level slog.Level, name string, attrs ...slog.Attr) {
	a.log.LogAttrs(context.Background(), level, name, attrs...)
}
