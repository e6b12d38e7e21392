package agent

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/listenq"
	"github.com/stallmon/stallmon/internal/tracker"
)

var waitRule = budget.Rule{Budget: 2 * time.Second, KillAfter: 5 * time.Second}

func queued(n uint32, mark uint64) listenq.Listener {
	return listenq.Listener{PID: 7, FD: 3, Ino: 99, Kind: listenq.TCP, Addr: "127.0.0.1:80", Port: 80,
		Queued: n, Limit: 128, Mark: listenq.Mark{mark}}
}

func waitSnap(at time.Time) tracker.Snapshot {
	return tracker.Snapshot{PID: 7, Taken: at, Threads: []tracker.Thread{
		{PID: 7, TID: 7, Comm: "srv", State: tracker.StateInterruptible, InSyscall: true, Syscall: "epoll_wait"},
		{PID: 7, TID: 8, Comm: "worker", State: tracker.StateInterruptible, InSyscall: true, Syscall: "futex"},
	}}
}

// A queue whose mark stands still is stalled past the budget and killed
// past kill_after; the span counts from the first poll that saw it.
func TestQueueUnmovedStalls(t *testing.T) {
	var w queueWatch
	t0 := time.Unix(1000, 0)
	for _, c := range []struct {
		at        time.Duration
		stalled   bool
		overKill  bool
		wantWaits time.Duration
	}{
		{0, false, false, 0},
		{2 * time.Second, false, false, 2 * time.Second},
		{2500 * time.Millisecond, true, false, 2500 * time.Millisecond},
		{6 * time.Second, true, true, 6 * time.Second},
	} {
		got := w.over([]listenq.Listener{queued(3, 42)}, waitSnap(t0.Add(c.at)), waitRule)
		if (len(got) == 1) != c.stalled {
			t.Fatalf("at %v: %d stalls, want stalled=%v", c.at, len(got), c.stalled)
		}
		if len(w.latest) != 1 || w.latest[0].Waiting != c.wantWaits || w.latest[0].Label != "80" {
			t.Fatalf("at %v: latest %+v, want waiting %v on port 80", c.at, w.latest, c.wantWaits)
		}
		if !c.stalled {
			continue
		}
		j := got[0]
		if j.overKill() != c.overKill || j.reason != "work_waiting" || j.thread.PID != 7 || j.fd.Num != 3 {
			t.Errorf("at %v: %+v, want work_waiting on pid 7 fd 3, overKill=%v", c.at, j, c.overKill)
		}
		if !strings.Contains(j.queue.threads, "7:srv:") || !strings.Contains(j.queue.threads, ":futex") {
			t.Errorf("threads = %q, want both threads with their syscalls", j.queue.threads)
		}
	}
}

// A service that accepts (the mark moves) or whose queue empties is never
// stalled, however long connections keep coming.
func TestQueueMovingOrEmptyNeverStalls(t *testing.T) {
	var w queueWatch
	t0 := time.Unix(1000, 0)
	for i := range 20 {
		at := t0.Add(time.Duration(i) * time.Second)
		l := queued(5, uint64(i)) // a busy service: never empty, always taking
		if i%7 == 3 {
			l = queued(0, 0)
		}
		if got := w.over([]listenq.Listener{l}, waitSnap(at), waitRule); len(got) != 0 {
			t.Fatalf("at %ds: stalled %+v", i, got[0])
		}
	}
	// Emptied: the next wait starts anew.
	w.over([]listenq.Listener{queued(1, 1)}, waitSnap(t0), waitRule)
	w.over([]listenq.Listener{queued(0, 0)}, waitSnap(t0.Add(time.Second)), waitRule)
	if got := w.over([]listenq.Listener{queued(1, 1)}, waitSnap(t0.Add(3*time.Second)), waitRule); len(got) != 0 {
		t.Fatalf("a queue that emptied in between kept its old wait: %+v", got[0])
	}
}

// The stall of one socket is its own: the key differs from the leader's
// own syscall stalls and from another socket's.
func TestQueueStallKeys(t *testing.T) {
	a, b := queued(1, 1), queued(1, 1)
	b.Ino = 100
	snap := waitSnap(time.Unix(0, 0))
	ka, kb := judged{thread: listenerThread(a, snap)}.key(), judged{thread: listenerThread(b, snap)}.key()
	if ka == kb || ka.entered < 1<<62 {
		t.Errorf("keys %+v and %+v", ka, kb)
	}
}

// fakeListeners counts scans and returns one listener, its queue never
// taken.
type fakeListeners struct {
	scans     int
	connected []bool // what each scan asked for
}

func (f *fakeListeners) Scan(pids []int, connected bool) ([]listenq.Listener, error) {
	f.scans++
	f.connected = append(f.connected, connected)
	if len(pids) != 1 || pids[0] != 7 {
		return nil, fmt.Errorf("asked for %v, want [7]", pids)
	}
	return []listenq.Listener{queued(2, 1)}, nil
}

// The listeners are scanned at most every tenth of the budget (at every
// poll when that is shorter); the polls in between repeat the latest
// scan's judgement, unextended.
func TestListenerScanEveryTenthOfBudget(t *testing.T) {
	table, err := budget.Parse([]byte("default: {budget: 5s, kill_after: 60s}\nstates:\n  work_waiting: {budget: 10s, kill_after: 60s}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	src := &fakeListeners{}
	a := &Agent{cfg: Config{Table: table, PollInterval: 100 * time.Millisecond, Listeners: src}}
	t0 := time.Unix(1000, 0)
	var last []judged
	for i := range 201 { // 20s of polls
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		got, err := a.scanListeners(waitSnap(at))
		if err != nil {
			t.Fatal(err)
		}
		last = got
	}
	if src.scans != 21 {
		t.Errorf("%d scans in 20s of 100ms polls under a 10s budget, want 21 (one a second)", src.scans)
	}
	if len(last) != 1 || last[0].span != 20*time.Second {
		t.Fatalf("judged %+v, want the queue waiting 20s", last)
	}
	// At a budget of 1s (a tenth: 100ms) every poll scans.
	table, _ = budget.Parse([]byte("default: {budget: 5s, kill_after: 60s}\nstates:\n  work_waiting: {budget: 1s, kill_after: 3s}\n"), nil)
	src = &fakeListeners{}
	a = &Agent{cfg: Config{Table: table, PollInterval: 100 * time.Millisecond, Listeners: src}}
	for i := range 10 {
		// Polls a few ms early still scan.
		if _, err := a.scanListeners(waitSnap(t0.Add(time.Duration(i) * 98 * time.Millisecond))); err != nil {
			t.Fatal(err)
		}
	}
	if src.scans != 10 {
		t.Errorf("%d scans in 10 polls under a 1s budget, want 10", src.scans)
	}
	// Off: never scanned.
	table, _ = budget.Parse([]byte("default: {budget: 5s, kill_after: 60s}\n"), nil)
	src = &fakeListeners{}
	a = &Agent{cfg: Config{Table: table, PollInterval: 100 * time.Millisecond, Listeners: src}}
	if got, err := a.scanListeners(waitSnap(t0)); err != nil || got != nil || src.scans != 0 {
		t.Errorf("with work_waiting off: %v, %v after %d scans", got, err, src.scans)
	}
}
