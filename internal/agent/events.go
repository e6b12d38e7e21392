package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/tracker"
)

func judgedAttrs(j judged) []slog.Attr {
	t := j.thread
	syscall := t.Syscall
	if syscall == "" {
		syscall = "none"
	}
	attrs := []slog.Attr{
		slog.Int("pid", t.PID),
		slog.Int("tid", t.TID),
		slog.String("comm", t.Comm),
		slog.String("syscall", syscall),
		slog.Int("nr", t.Nr),
		slog.Int("fd", j.fd.Num),
		slog.Float64("elapsed_seconds", t.Elapsed.Seconds()),
		slog.String("state", t.State.String()),
		slog.String("fd_kind", j.fd.Kind.String()),
		slog.String("reason", j.reason),
	}
	if fs := j.fd.FS(); fs != "" {
		attrs = append(attrs, slog.String("fs", fs))
	}
	if len(t.FDs) > 1 {
		// Both fds of a sendfile or splice: which one hangs is not known.
		attrs = append(attrs, slog.String("fds", fdList(t.FDs)))
	}
	if t.ABI != tracker.ABINative {
		attrs = append(attrs, slog.String("abi", t.ABI.String()))
	}
	if t.Kernel {
		// A worker the kernel made inside the process: no syscall of
		// its own, judged by its state.
		attrs = append(attrs, slog.Bool("kernel_worker", true))
	}
	if j.child != nil {
		attrs = append(attrs, childAttrs(j.child)...)
	}
	if w := t.Wait; w.Captured() {
		// Where it sleeps, from its kernel stack: what it waits for.
		attrs = append(attrs, slog.String("wait", w.String()), slog.String("stack", w.Stack()))
	}
	if d := j.death; d != nil {
		// The table did not decide this one: say what the kernel did.
		attrs = append(attrs,
			slog.Float64("in_syscall_seconds", d.InSyscall.Seconds()),
			slog.String("signal", signalName(d.Signal)))
		return attrs
	}
	if j.reason != reasonOverBudget {
		attrs = append(attrs, slog.Float64("state_seconds", j.span.Seconds()))
	}
	if q := j.queue; q != nil {
		attrs = append(attrs, queueAttrs(q, j.span)...)
	}
	if j.onSide {
		// Judged by the fd it waits on, for as long as it has.
		attrs = append(attrs, slog.Float64("fd_wait_seconds", j.span.Seconds()))
	}
	attrs = append(attrs, slog.Float64("budget_seconds", j.rule.Budget.Seconds()))
	if j.rule.Kills() {
		attrs = append(attrs, slog.Float64("kill_after_seconds", j.rule.KillAfter.Seconds()))
	}
	if t.SinceAttach {
		// Entered before stallmon attached: elapsed is a lower bound.
		attrs = append(attrs, slog.Bool("since_attach", true))
	}
	if t.HeldBeforeEntry {
		// Held before the tracker saw it enter (seccomp's user
		// notification): elapsed is a lower bound.
		attrs = append(attrs, slog.Bool("held_before_entry", true))
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

// fdList renders fds as "5:regular:fuse,8:socket:sockfs".
func fdList(fds []tracker.FD) string {
	var b strings.Builder
	for i, f := range fds {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d:%s:%s", f.Num, f.Kind, f.FS())
	}
	return b.String()
}
