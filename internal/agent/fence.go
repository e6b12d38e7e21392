package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/sink"
	"github.com/stallmon/stallmon/internal/tracker"
)

// fenceTarget kills the target whose syscall went past kill_after, so it
// cannot resume after a peer has taken over, and confirms the death
// through the pidfd. The heartbeat is already off for good. expired is
// the outcome when ctx ends with the target reported unkillable and still
// alive: Detached when ctx is the run's (stallmon was stopped while it
// waited), TargetUnkillable when it is a stop's own bound on its fence.
func (a *Agent) fenceTarget(ctx context.Context, victim judged, expired Outcome) (Outcome, error) {
	attrs := judgedAttrs(victim)
	a.event(slog.LevelError, event.Kill, append(attrs, slog.String("signal", "SIGKILL"))...)
	killErr := a.kill(unix.SIGKILL)
	if killErr != nil {
		select {
		case <-a.mon.Done():
			// It exited on its own just before the signal.
			killErr = nil
		default:
			// A kill that failed (a member the freeze path could not
			// reach, a cgroup gone read-only) is judged as an
			// unkillable target: the grace, then the report and the
			// node fence. Returning here would end attach, whose
			// watchdog would be disarmed while the service still runs.
			killErr = fmt.Errorf("fencing target: %w", killErr)
		}
	}

	grace := time.NewTimer(a.cfg.KillGrace)
	defer grace.Stop()
	if a.waitExit(ctx, grace.C) {
		a.targetExited()
		a.final(sink.Fenced, &victim)
		return TargetKilled, nil
	}
	if ctx.Err() != nil {
		return Detached, nil
	}

	// A thread in uninterruptible sleep cannot die until the kernel returns
	// from its syscall, which after an oops may be never. Say exactly where
	// it is stuck, and why the kill failed if it did; the heartbeat stays
	// off.
	a.reportUnkillable(ctx, killErr)
	if nf := a.cfg.NodeFence; nf != nil {
		a.log.Error(event.NodeFence, "pid", a.mon.PID(), "method", nf.String())
		if err := nf.Fence(); err != nil {
			a.log.Error(event.NodeFence, "pid", a.mon.PID(), "method", nf.String(), "err", err)
		}
	}
	if a.waitExit(ctx, nil) {
		a.targetExited()
		a.final(sink.Fenced, &victim)
		return TargetUnkillable, nil
	}
	// The wait ran out with the target still alive after the unkillable
	// report. For a stop's fence that is the stop's outcome: exit 0 would
	// tell a supervisor or script that the stop went cleanly while the
	// service it killed sits in D.
	return expired, nil
}

// waitExit waits for the target to exit (true), for timeout or ctx
// (false), feeding the node fencer meanwhile: the wait is stallmon
// working, not stallmon stuck.
func (a *Agent) waitExit(ctx context.Context, timeout <-chan time.Time) bool {
	feed := time.NewTicker(a.cfg.PollInterval)
	defer feed.Stop()
	for {
		select {
		case <-a.mon.Done():
			return true
		case <-ctx.Done():
			return false
		case <-timeout:
			return false
		case <-feed.C:
			a.feed()
		}
	}
}

// DiagnoseDeadline bounds the whole report's /proc diagnoses: each reads
// the kernel stack, which takes a lock the target can hold, and a report
// that waits on the target could keep stallmon from ever ending. Threads
// left when it has run out are reported without a diagnosis.
const DiagnoseDeadline = 2 * time.Second

func (a *Agent) reportUnkillable(ctx context.Context, killErr error) {
	var killAttrs []slog.Attr
	if killErr != nil {
		killAttrs = append(killAttrs, slog.String("kill_err", killErr.Error()))
	}
	snap, err := a.mon.SnapshotAll()
	if err != nil {
		a.event(slog.LevelError, event.Unkillable, append(killAttrs, slog.Int("pid", a.mon.PID()),
			slog.Float64("grace_seconds", a.cfg.KillGrace.Seconds()), slog.String("err", err.Error()))...)
		return
	}
	deadline := time.Now().Add(DiagnoseDeadline)
	reported := 0
	for _, t := range snap.Threads {
		if t.State == tracker.StateDead {
			// An exited thread (often the group leader, a zombie until
			// the last thread goes) is not what keeps the process alive.
			continue
		}
		d := tracker.Diagnosis{TID: t.TID, TimedOut: true}
		if left := time.Until(deadline); left > 0 && ctx.Err() == nil {
			d = a.mon.DiagnoseWithin(t.TID, left)
		}
		a.event(slog.LevelError, event.Unkillable, append([]slog.Attr{
			slog.Int("pid", t.PID), slog.Int("tid", t.TID), slog.String("comm", t.Comm),
			slog.String("syscall", t.Syscall), slog.String("state", t.State.String()),
			slog.String("proc_state", d.State), slog.String("wchan", d.Wchan),
			slog.String("stack", strings.ReplaceAll(d.Stack, "\n", " | ")),
			slog.Float64("grace_seconds", a.cfg.KillGrace.Seconds()),
			slog.Bool("diagnosis_timed_out", d.TimedOut)}, killAttrs...)...)
		reported++
	}
	if reported == 0 {
		// Not one live thread seen, yet the target did not exit: still
		// a target that outlived its kill, and it must be said.
		a.event(slog.LevelError, event.Unkillable, append(killAttrs, slog.Int("pid", a.mon.PID()),
			slog.Float64("grace_seconds", a.cfg.KillGrace.Seconds()))...)
	}
}
