package agent

import (
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/listenq"
	"github.com/stallmon/stallmon/internal/tracker"
)

// A socket shared by several processes (a listener shared by a master
// and its worker, a connection passed by SCM_RIGHTS or fork whose
// dispatcher keeps its copy) is reported once, under the first process
// found holding it, with every holder. The reader (pid 9) is stopped
// under a debugger while the dispatcher (pid 7, found first) sleeps in
// epoll_wait: the wait is the debugger's doing, which the table never
// kills for, so work_waiting must not kill pid 7 at kill_after. The same
// socket held by pid 7 alone is still killed. (Found by the cold review.)
func TestSharedSocketReaderStoppedNotKilled(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, st := range []tracker.TaskState{tracker.StateStopped, tracker.StateTraced, tracker.StateFrozen} {
		snap := func(at time.Time) tracker.Snapshot {
			s := waitSnap(at) // pid 7: epoll_wait and futex, running normally
			s.Threads = append(s.Threads, tracker.Thread{PID: 9, TID: 9, Comm: "worker", State: st, Frozen: st == tracker.StateFrozen})
			return s
		}
		for _, l := range []listenq.Listener{queued(3, 42), unread(10, 42)} {
			for _, tc := range []struct {
				holders []int
				more    bool
				kill    bool
			}{
				{[]int{7, 9}, false, false},
				{[]int{7}, true, false}, // pid 9 may be among those left out
				{[]int{7}, false, true},
			} {
				l.Holders, l.MoreHolders = tc.holders, tc.more
				var w queueWatch
				w.over([]listenq.Listener{l}, snap(t0), waitRule)
				killed := false
				for _, j := range w.over([]listenq.Listener{l}, snap(t0.Add(6*time.Second)), waitRule) {
					killed = killed || j.overKill()
				}
				if killed != tc.kill {
					t.Errorf("socket (connected=%v) held by %v (more: %v), pid 9 %v: killed %v, want %v", l.Connected, tc.holders, tc.more, st, killed, tc.kill)
				}
			}
		}
	}
}

// movingSource is one listener whose mark the test moves.
type movingSource struct {
	mark  uint64
	scans int
}

func (m *movingSource) Scan(pids []int, connected bool) ([]listenq.Listener, error) {
	m.scans++
	return []listenq.Listener{queued(3, m.mark)}, nil
}

// poll() defers a kill seen at a late poll to the next on-time poll, so
// that our lateness is never blamed on the target. With budget/10 above
// the poll interval (a 10s budget: a scan a second) the on-time poll used
// to repeat the late poll's scan, taken while the agent and the service
// were starved together: a service that caught up in the first 100 ms
// after the hiccup was killed on that stale judgement (found by the cold
// review). The on-time poll scans afresh: the service that accepted since
// is spared, the one that did not is still killed.
func TestOnTimePollAfterLateOneJudgesAFreshScan(t *testing.T) {
	for _, accepts := range []bool{true, false} {
		table := mustTable(t, "default: {budget: 5s, kill_after: 120s}\nstates:\n  work_waiting: {budget: 10s, kill_after: 60s}\n")
		src := &movingSource{mark: 1}
		a := &Agent{cfg: Config{Table: table, PollInterval: 100 * time.Millisecond, Listeners: src}}
		t0 := time.Unix(1000, 0)
		if _, err := a.scanListeners(waitSnap(t0)); err != nil {
			t.Fatal(err)
		}
		// The host stalls for 61 s (the agent and the service alike):
		// the late poll's scan sees the queue unmoved for 61 s. poll()
		// kills nothing at a late poll.
		late := t0.Add(61 * time.Second)
		if _, err := a.scanListeners(waitSnap(late)); err != nil {
			t.Fatal(err)
		}
		if accepts {
			src.mark = 2
		}
		// The next poll is on time.
		got, err := a.scanListeners(waitSnap(late.Add(100 * time.Millisecond)))
		if err != nil {
			t.Fatal(err)
		}
		killed := false
		for _, j := range got {
			killed = killed || j.overKill()
		}
		if src.scans != 3 || killed == accepts {
			t.Fatalf("service accepted after the hiccup: %v; the on-time poll after it scanned (%d scans, want 3) and killed: %v", accepts, src.scans, killed)
		}
		// The poll after it is on time too and within budget/10: it
		// repeats the on-time scan.
		if _, err := a.scanListeners(waitSnap(late.Add(200 * time.Millisecond))); err != nil || src.scans != 3 {
			t.Fatalf("second on-time poll: %d scans (want 3, the cache reused), err %v", src.scans, err)
		}
	}
}

func mustTable(t *testing.T, src string) *budget.Table {
	t.Helper()
	tb, err := budget.Parse([]byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}
