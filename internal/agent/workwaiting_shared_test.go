package agent

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/listenq"
	"github.com/stallmon/stallmon/internal/tracker"
)

// sharedListener returns one socket (ino 99), never accepted from, found
// first in process first: a listener shared by fork (a master and its
// workers, all in a --tree or --cgroup scope).
type sharedListener struct{ first int }

func (f *sharedListener) Scan(pids []int, connected bool) ([]listenq.Listener, error) {
	l := queued(2, 1)
	l.PID = f.first
	return []listenq.Listener{l}, nil
}

// A work_waiting stall is keyed by the socket, not by the first process
// found holding it: when that pid changes while the same socket stays
// stalled (the process found first exits, pid wrap puts a worker below the
// master), a key by pid would see the stall clear and a new one start, and
// under --late-return=fence (the default) declaredDead would take it for a
// late return and fence the target at once, before kill_after.
func TestSharedListenerPidChangeIsNoLateReturn(t *testing.T) {
	table, err := budget.Parse([]byte("default: {budget: 5s, kill_after: 60s}\nstates:\n  work_waiting: {budget: 1s, kill_after: 60s}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	src := &sharedListener{first: 7}
	a := &Agent{cfg: Config{Table: table, PollInterval: 100 * time.Millisecond, Listeners: src, LateReturn: LateReturnFence, Kill: true},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), stats: newStatsRecorder(100 * time.Millisecond), stalls: newStallSet()}
	snap := func(at time.Time) tracker.Snapshot {
		s := waitSnap(at)
		s.Threads = append(s.Threads, tracker.Thread{PID: 9, TID: 9, Comm: "worker", State: tracker.StateInterruptible})
		return s
	}
	t0 := time.Unix(1000, 0)
	for i := range 40 { // 4 s of 100 ms polls: declared at 1.1 s
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		if i == 20 {
			src.first = 9 // the master (7) is no longer found first
		}
		over, err := a.scanListeners(snap(at))
		if err != nil {
			t.Fatal(err)
		}
		started, cleared := a.stalls.update(over)
		if len(cleared) > 0 && len(started) > 0 {
			t.Errorf("at %v: the same stalled socket cleared and started again (%d/%d)", at.Sub(t0), len(cleared), len(started))
		}
		if _, victim := a.declaredDead(over); victim != nil {
			t.Fatalf("at %v: fenced as a late return (reason %s) while the queue never moved, kill_after 60s", at.Sub(t0), victim.reason)
		}
	}
}

// The table never kills a process that is stopped (SIGSTOP), traced (a
// debugger attached) or frozen (the cgroup freezer: a snapshot, a pause),
// nor one dumping core; each has kill_after: never in the built-in table.
// Clients that queue meanwhile must not get it killed by work_waiting.
func TestStoppedProcessNotKilledByWorkWaiting(t *testing.T) {
	for _, st := range []tracker.TaskState{tracker.StateStopped, tracker.StateTraced, tracker.StateFrozen} {
		var w queueWatch
		t0 := time.Unix(1000, 0)
		snap := func(at time.Time) tracker.Snapshot {
			s := waitSnap(at)
			for i := range s.Threads {
				s.Threads[i].State = st
				s.Threads[i].Frozen = st == tracker.StateFrozen
			}
			return s
		}
		w.over([]listenq.Listener{queued(3, 42)}, snap(t0), waitRule)
		got := w.over([]listenq.Listener{queued(3, 42)}, snap(t0.Add(6*time.Second)), waitRule)
		for _, j := range got {
			if j.overKill() {
				t.Errorf("process %v with clients queued 6s: killed by work_waiting (kill_after %v); the table's %v rule never kills", st, waitRule.KillAfter, st)
			}
		}
	}
}

// The rule's boundary, as docs/budgets.md states it: a pool whose workers
// accept only when free (gunicorn sync, php-fpm, apache prefork), every
// worker on a long request while clients queue, is never flagged as long as
// it accepts at least once per budget; accepting less often than that with
// work queued is what the rule flags, so its budget must exceed the
// longest request.
func TestSlowAccepterWithinBudgetNotFlagged(t *testing.T) {
	for _, c := range []struct {
		every   time.Duration
		flagged bool
	}{{1500 * time.Millisecond, false}, {2500 * time.Millisecond, true}} {
		var w queueWatch
		t0 := time.Unix(1000, 0)
		flagged := false
		for i := range 200 { // 20 s of 100 ms scans
			at := time.Duration(i) * 100 * time.Millisecond
			accepted := uint64(at / c.every)
			if got := w.over([]listenq.Listener{queued(5, 1000+accepted)}, waitSnap(t0.Add(at)), waitRule); len(got) > 0 {
				flagged = true
			}
		}
		if flagged != c.flagged {
			t.Errorf("one accept every %v under a %v budget: flagged %v, want %v", c.every, waitRule.Budget, flagged, c.flagged)
		}
	}
}
