package agent

import (
	"context"
	"fmt"
	"log/slog"

	"golang.org/x/sys/unix"
)

// Event names are the "msg" of log records; operators and tests match on
// them, so they are part of the interface (see README).
const (
	EvAttached         = "attached"
	EvStall            = "stall"
	EvDiedInSyscall    = "died_in_syscall"
	EvStallCleared     = "stall_cleared"
	EvHeartbeatStopped = "heartbeat_stopped"
	EvHeartbeatResumed = "heartbeat_resumed"
	EvHeartbeatFinal   = "heartbeat_final"
	EvKill             = "kill"
	EvUnkillable       = "unkillable"
	EvNodeFence        = "node_fence"
	EvTargetExited     = "target_exited"
	EvAgentLate        = "agent_late"
	EvPollFailed       = "poll_failed"
	EvPollRecovered    = "poll_recovered"
	EvThreadStarted    = "thread_started"
	EvThreadExited     = "thread_exited"
)

func judgedAttrs(pid int, j judged) []slog.Attr {
	t := j.thread
	attrs := []slog.Attr{
		slog.Int("pid", pid),
		slog.Int("tid", t.TID),
		slog.String("comm", t.Comm),
		slog.String("syscall", t.Syscall),
		slog.Int("nr", t.Nr),
		slog.Int("fd", t.FD),
		slog.Float64("elapsed_seconds", t.Elapsed.Seconds()),
		slog.String("state", t.State.String()),
		slog.String("fd_kind", j.kind.String()),
		slog.String("reason", j.reason()),
	}
	if d := j.death; d != nil {
		// The table did not decide this one: say what the kernel did.
		attrs = append(attrs,
			slog.Float64("in_syscall_seconds", d.InSyscall.Seconds()),
			slog.String("signal", signalName(d.Signal)))
		return attrs
	}
	attrs = append(attrs, slog.Float64("budget_seconds", j.rule.Budget.Seconds()))
	if j.rule.Kills() {
		attrs = append(attrs, slog.Float64("kill_after_seconds", j.rule.KillAfter.Seconds()))
	}
	if t.SinceAttach {
		// Entered before stallmon attached: elapsed is a lower bound.
		attrs = append(attrs, slog.Bool("since_attach", true))
	}
	return attrs
}

func (a *Agent) event(level slog.Level, name string, attrs ...slog.Attr) {
	a.stats.event(name, attrs)
	a.log.LogAttrs(context.Background(), level, name, attrs...)
}

// signalName is "SIGSEGV" rather than Go's "segmentation fault".
func signalName(s unix.Signal) string {
	if s == 0 {
		return ""
	}
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(s))
}
