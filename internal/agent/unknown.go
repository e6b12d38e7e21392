package agent

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/tracker"
)

// unknownWatch follows the threads the tracker lost sight of (see
// tracker.Unrecorded). Such a thread may be anywhere, stuck or not, so
// while any is unknown the agent cannot vouch for the target: the gate
// goes blind and the heartbeat stops, until the tracker records the
// thread's next syscall entry (or it exits).
type unknownWatch struct {
	threads map[int]unknownThread // by tid
	// unmarked is the latest count of unrecorded entries that name no
	// thread: no later entry can show that thread recovered, so any
	// keeps the agent blind for the rest of the attach.
	unmarked uint64
}

type unknownThread struct {
	thread tracker.Thread
	since  time.Time // when the tracker lost it, by the agent's clock
}

// noteUnknown takes in a snapshot, logs the threads that became unknown
// and those known again, and returns why the snapshot cannot vouch for
// the target, "" when it can.
func (a *Agent) noteUnknown(snap tracker.Snapshot) string {
	w := &a.unknown
	if w.threads == nil {
		w.threads = map[int]unknownThread{}
	}
	var first *unknownThread
	seen := make(map[int]bool, len(w.threads))
	for _, t := range snap.Threads {
		if t.Unrecorded == nil {
			continue
		}
		seen[t.TID] = true
		u, known := w.threads[t.TID]
		if !known {
			u.since = snap.Taken.Add(-t.Unrecorded.For)
			a.event(slog.LevelWarn, event.ThreadUnknown, unknownAttrs(t, snap.Taken.Sub(u.since))...)
		}
		u.thread = t
		w.threads[t.TID] = u
		if first == nil || u.thread.TID < first.thread.TID {
			first = &u
		}
	}
	for tid, u := range w.threads {
		if seen[tid] {
			continue
		}
		delete(w.threads, tid)
		_, alive := snap.Thread(tid)
		t := u.thread
		a.event(slog.LevelInfo, event.ThreadKnown, slog.Int("pid", t.PID), slog.Int("tid", tid), slog.String("comm", t.Comm),
			slog.Float64("unknown_seconds", snap.Taken.Sub(u.since).Seconds()), slog.Bool("exited", !alive))
	}
	if snap.UnrecordedUnmarked > w.unmarked {
		a.event(slog.LevelError, event.UnrecordedUnmarked, slog.Uint64("entries", snap.UnrecordedUnmarked),
			slog.String("reason", unmarkedReason))
		w.unmarked = snap.UnrecordedUnmarked
	}
	switch {
	case w.unmarked > 0:
		return fmt.Sprintf("%d syscall entries could not be recorded, by threads it cannot name", w.unmarked)
	case first == nil:
		return ""
	case len(w.threads) > 1:
		return fmt.Sprintf("%d threads unknown; thread %d (%s): %s",
			len(w.threads), first.thread.TID, first.thread.Comm, first.thread.Unrecorded.Reason())
	}
	return fmt.Sprintf("thread %d (%s) unknown: %s", first.thread.TID, first.thread.Comm, first.thread.Unrecorded.Reason())
}

const unmarkedReason = "the kernel's table of unrecorded threads was full: the agent stays blind until it is restarted"

func unknownAttrs(t tracker.Thread, unknownFor time.Duration) []slog.Attr {
	u := t.Unrecorded
	attrs := []slog.Attr{
		slog.Int("pid", t.PID),
		slog.Int("tid", t.TID),
		slog.String("comm", t.Comm),
		slog.String("syscall", u.Syscall),
		slog.Int("nr", u.Nr),
		slog.Float64("unknown_seconds", unknownFor.Seconds()),
		slog.String("state", t.State.String()),
		slog.String("reason", u.Reason()),
	}
	if u.ABI != tracker.ABINative {
		attrs = append(attrs, slog.String("abi", u.ABI.String()))
	}
	return attrs
}
