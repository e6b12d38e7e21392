package agent

import (
	"slices"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/tracker"
)

// spawning is a parent waiting in clone3, in killable D, for child c.
func spawning(tid int, c tracker.VforkChild) tracker.Thread {
	th := in(tid, "clone3", time.Hour, tracker.StateKillable)
	th.VforkChild = &c
	return th
}

func child(tid int, syscall string, st tracker.TaskState, switches uint64) tracker.VforkChild {
	c := tracker.VforkChild{TID: tid, Comm: "spawned", State: st, Switches: switches, Voluntary: switches, Nr: -1}
	if syscall != "" {
		c.InSyscall, c.Nr, c.Syscall = true, 59, syscall
	}
	return c
}

// A parent's wait in clone3 is judged by its vfork child: one asleep in
// D, or asleep interruptibly in its exec, past the rule is a stall of
// the parent, named after the child. A child that waits elsewhere (a
// posix_spawn file action opening a FIFO, a vfork child's sleep), runs,
// or wakes between polls breaks nothing, however long the parent waits.
func TestJudgeVforkChild(t *testing.T) {
	j := testJudge(t)
	S, D, R := tracker.StateInterruptible, tracker.StateKillable, tracker.StateRunning
	t0 := time.Unix(1000, 0)
	polls := func(at time.Time, threads ...tracker.Thread) map[int]judged {
		// A snapshot's threads are sorted by tid.
		slices.SortFunc(threads, func(a, b tracker.Thread) int { return a.TID - b.TID })
		return judgeOnce(j, at, threads...)
	}
	threads := func(k uint64) []tracker.Thread {
		return []tracker.Thread{
			spawning(1, child(101, "execve", S, 7)),    // exec asleep on a hung FUSE server
			spawning(2, child(102, "execve", D, 7)),    // exec asleep in D on a hung disk
			spawning(3, child(103, "openat", S, 7)),    // file action: a FIFO's open, waiting for a writer
			spawning(4, child(104, "nanosleep", S, 7)), // a vfork child's sleep
			spawning(5, child(105, "", R, 7+k)),        // running
			spawning(6, child(106, "execve", D, 7+k)),  // D, but a new sleep each poll
			spawning(7, child(107, "execve", S, 7+k)),  // S in its exec, but woken each poll
			spawning(8, child(108, "", D, 7)),          // D outside any syscall: a page fault
			spawning(12, child(112, "", S, 7)),         // S outside any syscall: a fault on a userfaultfd
			spawning(9, child(109, "openat", D, 7)),    // a file action in D on a hung disk
			spawning(10, child(110, "execve", S, 7)),   // ...but that child is a thread of the target itself
			in(110, "execve", time.Hour, S),            // (tree or cgroup): judged by its own rules
			in(11, "clone3", time.Hour, D),             // no child seen: the exemption holds
		}
	}
	for k := range uint64(4) {
		at := t0.Add(time.Duration(k) * 700 * time.Millisecond)
		got := polls(at, threads(k)...)
		for tid, jd := range got {
			if jd.reason != reasonVforkChild && tid != 110 {
				t.Errorf("poll %d: thread %d stalled for %q", k, tid, jd.reason)
			}
		}
		// Time in the child's sleep: 0.7s a poll. execve's rule (the
		// default, 1s) for S, the uninterruptible rule (2s) for D, the
		// page_fault rule (the default's) outside any syscall.
		want := map[int]bool{1: k >= 2, 2: k >= 3, 8: k >= 2, 9: k >= 3, 12: k >= 2, 110: true}
		for tid := range got {
			if !want[tid] {
				t.Errorf("poll %d: thread %d stalled: %+v", k, tid, got[tid])
			}
		}
		for tid, w := range want {
			jd, ok := got[tid]
			if w != ok {
				t.Errorf("poll %d: thread %d stalled %v, want %v", k, tid, ok, w)
				continue
			}
			if !ok || tid == 110 {
				continue
			}
			if jd.child == nil || jd.child.TID != tid+100 {
				t.Errorf("poll %d: thread %d's stall names child %+v, want %d", k, tid, jd.child, tid+100)
			}
			if jd.thread.TID != tid || jd.thread.Syscall != "clone3" {
				t.Errorf("poll %d: stall on %+v, want the parent %d in clone3", k, jd.thread, tid)
			}
		}
	}
	// The child execs: the parent returns, and its episode is forgotten.
	polls(t0.Add(3*time.Second), in(1, "read", 0, S))
	if _, ok := j.children[1]; ok {
		t.Error("the episode of a child that exec'd is still kept")
	}
	// A new child of the same parent starts a new episode.
	got := polls(t0.Add(4*time.Second), spawning(1, child(201, "execve", S, 1)))
	if _, ok := got[1]; ok {
		t.Errorf("a new child inherited the old one's time: %+v", got[1])
	}
}
