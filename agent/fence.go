package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/heartbeat"
)

// fenceTarget kills the target whose syscall went past kill_after, so it
// cannot resume after a peer has taken over, and confirms the death
// through the pidfd. The heartbeat is already off for good.
func (a *Agent) fenceTarget(ctx context.Context, victim judged) (Outcome, error) {
	attrs := judgedAttrs(a.mon.PID(), victim)
	a.event(slog.LevelError, EvKill, append(attrs, slog.String("signal", "SIGKILL"))...)
	if err := a.mon.Kill(unix.SIGKILL); err != nil {
		select {
		case <-a.mon.Done():
			// It exited on its own just before the signal.
		default:
			return TargetKilled, fmt.Errorf("fencing target: %w", err)
		}
	}

	grace := time.NewTimer(a.cfg.KillGrace)
	defer grace.Stop()
	select {
	case <-a.mon.Done():
		a.targetExited()
		a.final(heartbeat.StateFenced, &victim)
		return TargetKilled, nil
	case <-ctx.Done():
		return Detached, nil
	case <-grace.C:
	}

	// A thread in uninterruptible sleep cannot die until the kernel returns
	// from its syscall, which after an oops may be never. Say exactly where
	// it is stuck; the heartbeat stays off.
	a.reportUnkillable()
	select {
	case <-a.mon.Done():
		a.targetExited()
		a.final(heartbeat.StateFenced, &victim)
		return TargetUnkillable, nil
	case <-ctx.Done():
		return Detached, nil
	}
}

func (a *Agent) reportUnkillable() {
	snap, err := a.mon.Snapshot()
	if err != nil {
		a.log.Error(EvUnkillable, "pid", a.mon.PID(), "grace_seconds", a.cfg.KillGrace.Seconds(), "err", err)
		return
	}
	for _, t := range snap.Threads {
		d := a.mon.Diagnose(t.TID)
		a.event(slog.LevelError, EvUnkillable,
			slog.Int("pid", snap.PID), slog.Int("tid", t.TID), slog.String("comm", t.Comm),
			slog.String("syscall", t.Syscall), slog.String("state", t.State.String()),
			slog.String("proc_state", d.State), slog.String("wchan", d.Wchan),
			slog.String("stack", strings.ReplaceAll(d.Stack, "\n", " | ")),
			slog.Float64("grace_seconds", a.cfg.KillGrace.Seconds()))
	}
}
