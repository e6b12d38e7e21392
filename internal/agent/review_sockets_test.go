package agent

import (
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/listenq"
	"github.com/stallmon/stallmon/internal/tracker"
)

// Review (r-sockets): the scan reports a socket shared by several
// processes once, under the first process found holding it, and over()
// spares a stopped, traced or frozen process only when it is that one.
// A connection passed to a worker (SCM_RIGHTS, or fork after accept)
// whose dispatcher keeps its copy, or a listener shared by a master and
// its worker: the reader (pid 9) is stopped under a debugger, the
// dispatcher (pid 7, found first) sleeps in epoll_wait. The wait is the
// debugger's doing, which the table never kills for, yet work_waiting
// kills pid 7 at kill_after.
func TestReviewSharedSocketReaderTracedNotKilled(t *testing.T) {
	for _, st := range []tracker.TaskState{tracker.StateStopped, tracker.StateTraced, tracker.StateFrozen} {
		var w queueWatch
		t0 := time.Unix(1000, 0)
		snap := func(at time.Time) tracker.Snapshot {
			s := waitSnap(at) // pid 7: epoll_wait and futex, running normally
			s.Threads = append(s.Threads, tracker.Thread{PID: 9, TID: 9, Comm: "worker", State: st, Frozen: st == tracker.StateFrozen})
			return s
		}
		for _, l := range []listenq.Listener{queued(3, 42), unread(10, 42)} {
			w = queueWatch{}
			w.over([]listenq.Listener{l}, snap(t0), waitRule)
			for _, j := range w.over([]listenq.Listener{l}, snap(t0.Add(6*time.Second)), waitRule) {
				if j.overKill() {
					t.Errorf("WRONG KILL: socket (connected=%v) shared by pid 7 and its reader pid 9 %v: pid %d killed by work_waiting at %v; the reader's state is the table's to judge, never a kill", l.Connected, st, j.thread.PID, j.span)
				}
			}
		}
	}
}
