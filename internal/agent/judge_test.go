package agent

import (
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/tracker"
)

const testTable = `
default: {budget: 1s, kill_after: 5s}
states:
  uninterruptible: {budget: 2s, kill_after: 6s}
  running: {budget: 3s, kill_after: never}
  stopped: {budget: 1s, kill_after: never}
syscalls:
  futex: unbounded
  epoll_wait: unbounded
  fsync: {budget: 10s, kill_after: never}
  clone3: {budget: unbounded, uninterruptible: unbounded}
  read:
    by_fd: {pipe: unbounded, socket: unbounded}
  sendfile:
    by_fd: {socket: unbounded, pipe: unbounded}
  splice:
    by_fd: {socket: unbounded, pipe: unbounded}
`

func testJudge(t *testing.T) *judge {
	t.Helper()
	table, err := budget.Parse([]byte(testTable), nil)
	if err != nil {
		t.Fatal(err)
	}
	return newJudge(table)
}

// in builds a thread inside syscall name on fds of the given kinds.
func in(tid int, name string, el time.Duration, st tracker.TaskState, kinds ...fdkind.Kind) tracker.Thread {
	th := tracker.Thread{TID: tid, InSyscall: true, Syscall: name, FD: -1, Elapsed: el, Entered: uint64(tid), State: st}
	for i, k := range kinds {
		th.FDs = append(th.FDs, tracker.FD{Num: 10 + i, Kind: k})
	}
	if len(th.FDs) > 0 {
		th.FD = th.FDs[0].Num
	}
	return th
}

func judgeOnce(j *judge, at time.Time, threads ...tracker.Thread) map[int]judged {
	got := map[int]judged{}
	for _, o := range j.over(tracker.Snapshot{PID: 1, Taken: at, Threads: threads}) {
		got[o.thread.TID] = o
	}
	return got
}

// The syscall rule judges elapsed time by the kind of fd the kernel
// classified; a syscall on two fds takes the stricter of their rules.
func TestJudgeAppliesTableAndFDKinds(t *testing.T) {
	j := testJudge(t)
	S := tracker.StateInterruptible
	got := judgeOnce(j, time.Unix(1000, 0),
		in(1, "futex", time.Hour, S),                                        // unbounded
		in(2, "read", time.Hour, S, fdkind.Pipe),                            // read on a pipe: a wait
		in(3, "read", 2*time.Second, S, fdkind.Regular),                     // read on a file: over 1s
		in(4, "read", 500*time.Millisecond, S, fdkind.Regular),              // under
		in(5, "fsync", 9*time.Second, S, fdkind.Regular),                    // under its own 10s
		in(6, "fsync", time.Hour, S, fdkind.Regular),                        // over, but never killed
		in(7, "openat", 6*time.Second, S),                                   // default rule, past kill_after
		in(8, "read", 2*time.Second, S, fdkind.None),                        // fd gone: syscall rule, never unbounded
		in(9, "sendfile", time.Hour, S, fdkind.Socket, fdkind.Pipe),         // both sides wait by design
		in(10, "sendfile", 2*time.Second, S, fdkind.Socket, fdkind.Regular), // the file side bounds it
	)
	want := map[int]struct {
		kind fdkind.Kind
		kill bool
	}{3: {fdkind.Regular, false}, 6: {fdkind.Regular, false}, 7: {fdkind.None, true}, 8: {fdkind.None, false}, 10: {fdkind.Regular, false}}
	if len(got) != len(want) {
		t.Fatalf("over budget: %v, want tids %v", keys(got), want)
	}
	for tid, w := range want {
		o, ok := got[tid]
		if !ok || o.fd.Kind != w.kind || o.overKill() != w.kill || o.reason != reasonOverBudget {
			t.Errorf("tid %d: %+v (kill %v), want kind %v kill %v", tid, o, o.overKill(), w.kind, w.kill)
		}
	}
	if fd := got[10].fd; fd.Num != 11 {
		t.Errorf("sendfile judged by fd %d, want the regular file's, 11", fd.Num)
	}
}

// Time in a state counts across polls from the first that saw it, and
// restarts when the thread leaves the state, enters another syscall or,
// for uninterruptible sleep, woke up in between (its switch count moved).
func TestJudgeStateRules(t *testing.T) {
	t0 := time.Unix(1000, 0)
	D, R, S := tracker.StateUninterruptible, tracker.StateRunning, tracker.StateInterruptible
	kworker := func(tid int, st tracker.TaskState) tracker.Thread {
		return tracker.Thread{TID: tid, Kernel: true, Comm: "iou-wrk-1", State: st, FD: -1}
	}
	fault := func(st tracker.TaskState) tracker.Thread { return tracker.Thread{TID: 9, State: st, Nr: -1, FD: -1} } // outside any syscall
	exiting := fault(S)
	exiting.Exiting = true
	frozen := fault(S)
	frozen.Frozen = true // the cgroup v2 freezer's trap: S, outside any syscall
	cases := []struct {
		name   string
		polls  []tracker.Thread // one thread, at t0, t0+1s, ...
		reason string           // of the last poll's judgement; "" none
		kill   bool
	}{
		{"epoll_wait in D stays asleep", repeat(in(1, "epoll_wait", 0, tracker.StateKillable), 4), "uninterruptible", false},
		{"epoll_wait in D past kill_after", repeat(in(1, "epoll_wait", 0, D), 8), "uninterruptible", true},
		{"epoll_wait asleep in S", repeat(in(1, "epoll_wait", 0, S), 8), "", false},
		{"D, but woken between polls", switching(in(1, "epoll_wait", 0, D), 8), "", false},
		{"D for two polls only", append(repeat(in(1, "epoll_wait", 0, S), 4), repeat(in(1, "epoll_wait", 0, D), 2)...), "", false},
		{"fsync in D within its own 10s", repeat(in(1, "fsync", 0, D, fdkind.Regular), 9), "", false},
		{"clone3 parent in killable D", repeat(in(1, "clone3", 0, tracker.StateKillable), 8), "", false},
		{"a spin in the kernel", repeat(in(1, "epoll_wait", 0, R), 5), "running", false},
		{"kernel worker in D", repeat(kworker(1, D), 4), "uninterruptible", false},
		{"kernel worker idle", repeat(kworker(1, S), 8), "", false},
		{"kernel worker busy polling", repeat(kworker(1, R), 8), "", false},
		{"page fault in D", repeat(fault(D), 4), "page_fault", false},
		{"page fault in S", repeat(fault(S), 4), "page_fault", false},
		{"page fault in S past kill_after", repeat(fault(S), 8), "page_fault", true},
		{"page fault in TASK_IDLE", repeat(fault(tracker.StateIdle), 4), "page_fault", false},
		{"page fault in killable D", repeat(fault(tracker.StateKillable), 4), "page_fault", false},
		{"page fault woken between polls", switching(fault(S), 8), "", false},
		{"asleep outside a syscall in an exit", repeat(exiting, 4), "exiting", false},
		{"frozen outside a syscall", repeat(frozen, 4), "frozen", false},
		{"traced outside a syscall", repeat(fault(tracker.StateTraced), 4), "traced", false},
		{"user space, on a CPU", repeat(tracker.Thread{TID: 1, State: tracker.StateRunning, FD: -1}, 8), "", false},
		{"stopped", repeat(tracker.Thread{TID: 1, State: tracker.StateStopped, FD: -1}, 3), "stopped", false},
		{"user space, runnable", repeat(tracker.Thread{TID: 1, State: R, FD: -1}, 8), "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := testJudge(t)
			var got map[int]judged
			for i, th := range c.polls {
				if th.InSyscall && th.Elapsed == 0 {
					th.Elapsed = time.Duration(i) * time.Second
				}
				got = judgeOnce(j, t0.Add(time.Duration(i)*time.Second), th)
			}
			o, stalled := got[c.polls[0].TID]
			if c.reason == "" {
				if stalled {
					t.Fatalf("judged %+v (reason %s), want no stall", o, o.reason)
				}
				return
			}
			if !stalled || o.reason != c.reason || o.overKill() != c.kill {
				t.Fatalf("judged %+v (stalled %v, kill %v), want reason %s kill %v", o, stalled, o.overKill(), c.reason, c.kill)
			}
			if want := time.Duration(len(c.polls)-1) * time.Second; o.span != want && c.reason != reasonOverBudget {
				t.Errorf("time in state %v, want %v (first to last poll)", o.span, want)
			}
		})
	}
}

// A core dump stops the heartbeat after its budget without a kill by
// default, judged as one: its writer and the threads it parked in D
// (coredump_task_exit, no switch) are not uninterruptible stalls, and the
// group-exit flag the dump sets is not an exit.
func TestJudgeCoreDump(t *testing.T) {
	j := testJudge(t)
	t0 := time.Unix(1000, 0)
	writer := tracker.Thread{TID: 1, State: tracker.StateUninterruptible, DumpingCore: true, Exiting: true, Nr: -1, FD: -1}
	parked := tracker.Thread{TID: 2, State: tracker.StateUninterruptible, Exiting: true, Nr: -1, FD: -1}
	var got map[int]judged
	for i := range 10 {
		writer.Switches++ // it is writing: no single sleep lasts
		got = judgeOnce(j, t0.Add(time.Duration(i)*time.Second), writer, parked)
		if o, ok := got[1]; i < 2 && ok {
			t.Fatalf("poll %d: stalled %+v before the 1s budget of dumping_core", i, o)
		}
	}
	if len(got) != 1 {
		t.Fatalf("after 9s dumping core: %d stalls %v, want the dump alone", len(got), got)
	}
	if o := got[1]; o.reason != "dumping_core" || o.overKill() {
		t.Fatalf("after 9s dumping core: %+v, want a dumping_core stall that never kills", o)
	}
}

// A core dump concerns the process that dumps. In a tree or cgroup, one
// worker dumping core is a worker dying while the leader serves: no
// stall, however long the dump. The leader's own dump, or a dump with no
// other process left serving, is the service's.
func TestJudgeCoreDumpInScope(t *testing.T) {
	dumper := func(pid int) tracker.Thread {
		return tracker.Thread{PID: pid, TID: pid, State: tracker.StateInterruptible, DumpingCore: true, Exiting: true, Nr: -1, FD: -1}
	}
	serving := func(pid int) tracker.Thread {
		return tracker.Thread{PID: pid, TID: pid, State: tracker.StateInterruptible, InSyscall: true, Syscall: "wait4", Nr: 61, FD: -1}
	}
	for _, c := range []struct {
		name    string
		leader  int // Snapshot.PID: 0 for a cgroup
		threads []tracker.Thread
		quiet   int // threads left out as waiting by design
		stall   int // the tid that stalls, 0 for none
	}{
		{"tree worker", 10, []tracker.Thread{serving(10), dumper(11)}, 0, 0},
		{"cgroup worker", 0, []tracker.Thread{serving(10), dumper(11)}, 0, 0},
		{"cgroup worker, the others quiet", 0, []tracker.Thread{dumper(11)}, 3, 0},
		{"tree leader", 10, []tracker.Thread{dumper(10), serving(11)}, 0, 10},
		{"cgroup, nobody else serving", 0, []tracker.Thread{dumper(11), {PID: 10, TID: 10, Zombie: true, Nr: -1, FD: -1}}, 0, 11},
	} {
		t.Run(c.name, func(t *testing.T) {
			j := testJudge(t)
			var got []judged
			for i := range 10 {
				got = j.over(tracker.Snapshot{PID: c.leader, Taken: time.Unix(1000+int64(i), 0), Threads: c.threads, Quiet: c.quiet})
			}
			switch {
			case c.stall == 0 && len(got) > 0:
				t.Fatalf("after 9s: %+v, want no stall: a worker's dump is the worker's", got)
			case c.stall != 0 && (len(got) != 1 || got[0].thread.TID != c.stall || got[0].reason != "dumping_core"):
				t.Fatalf("after 9s: %+v, want one dumping_core stall on %d", got, c.stall)
			}
		})
	}
}

// SIGSTOP stops every thread: one stall for the process, never killed.
// A freezer that parks threads in D (cgroup v1, kernels before 6.1) is a
// freeze, not an uninterruptible stall.
func TestJudgeProcessStates(t *testing.T) {
	for _, c := range []struct {
		name   string
		thread tracker.Thread
		reason string
	}{
		{"stopped", tracker.Thread{State: tracker.StateStopped}, "stopped"},
		{"frozen in D", tracker.Thread{State: tracker.StateUninterruptible, Frozen: true}, "frozen"},
	} {
		t.Run(c.name, func(t *testing.T) {
			j := testJudge(t)
			var got map[int]judged
			for i := range 8 {
				var threads []tracker.Thread
				for tid := 1; tid <= 50; tid++ {
					th := c.thread
					th.TID, th.Nr, th.FD = tid, -1, -1
					threads = append(threads, th)
				}
				got = judgeOnce(j, time.Unix(1000+int64(i), 0), threads...)
			}
			if len(got) != 1 {
				t.Fatalf("%d stalls for one %s process of 50 threads, want 1", len(got), c.name)
			}
			for _, o := range got {
				if o.reason != c.reason || o.overKill() {
					t.Fatalf("judged %+v, want %s without a kill", o, c.reason)
				}
			}
		})
	}
}

// A spin in the kernel counts only while the thread never sleeps: a
// syscall that is runnable at each poll but slept in between (its
// voluntary switch count moved) is not running continuously.
func TestJudgeRunningResetsOnSleep(t *testing.T) {
	j := testJudge(t)
	th := in(1, "epoll_wait", 0, tracker.StateRunnable)
	var got map[int]judged
	for i := range 8 {
		th.Voluntary = uint64(i)
		th.Switches = uint64(2 * i)
		got = judgeOnce(j, time.Unix(1000+int64(i), 0), th)
	}
	if o, ok := got[1]; ok {
		t.Fatalf("judged %+v: a thread that slept between polls is not a spin", o)
	}
}

func repeat(th tracker.Thread, n int) []tracker.Thread {
	out := make([]tracker.Thread, n)
	for i := range out {
		out[i] = th
	}
	return out
}

// switching is repeat with a context switch between every two polls.
func switching(th tracker.Thread, n int) []tracker.Thread {
	out := repeat(th, n)
	for i := range out {
		out[i].Switches = uint64(i)
	}
	return out
}

func keys(m map[int]judged) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A thread that went into D as its syscall began is over both its
// syscall's budget and the uninterruptible rule, with the same limits:
// the syscall's rule is reported, even when the time in D, read on
// another clock, comes out a hair longer than the syscall.
func TestJudgeTieGoesToTheSyscallRule(t *testing.T) {
	table, err := budget.Parse([]byte("default: {budget: 300ms, kill_after: 1s}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	j := newJudge(table)
	t0 := time.Unix(1000, 0)
	th := in(7, "ioctl", 10*time.Millisecond, tracker.StateUninterruptible, fdkind.Device)
	judgeOnce(j, t0, th)
	th.Elapsed = 385 * time.Millisecond // the D episode measures 386ms
	got := judgeOnce(j, t0.Add(386*time.Millisecond), th)
	if g, ok := got[7]; !ok || g.reason != reasonOverBudget {
		t.Fatalf("judged %+v, want over_budget", got[7])
	}
}
