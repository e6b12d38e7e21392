package agent

import (
	"slices"
	"time"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/tracker"
)

// Why a thread is judged stalled, as events and metrics name it.
const (
	reasonOverBudget = "over_budget"     // the syscall ran past its budget
	reasonDied       = "died_in_syscall" // the kernel killed the thread inside it
)

// judged is a thread measured against the rule it broke.
type judged struct {
	thread tracker.Thread
	// fd is the fd argument whose kind chose the syscall rule (Num -1 when
	// the syscall's own rule did).
	fd   tracker.FD
	rule budget.Rule
	// reason is reasonOverBudget, reasonDied or the name of the state
	// whose rule was broken (budget.State's String).
	reason string
	// span is how long what the rule judges has lasted: the syscall's
	// elapsed time for over_budget, the time in the state otherwise.
	span time.Duration
	// death is set when the kernel killed the thread inside the syscall:
	// past budget and kill_after at once, whatever the rule says.
	death *tracker.Death
	// child is set when the thread's wait for its vfork child was judged
	// by what the child does (reasonVforkChild).
	child *tracker.VforkChild
	// onSide marks a two-fd syscall judged by the fd it waits on: span
	// is the time it has waited there (waitside.go).
	onSide bool
	// queue is set for a work_waiting stall: the listener whose
	// connections wait (workwaiting.go). span is how long they have.
	queue *queueWait
}

func (j judged) overBudget() bool {
	return j.death != nil || (!j.rule.Unbounded && j.span > j.rule.Budget)
}

func (j judged) overKill() bool {
	return j.death != nil || (j.overBudget() && j.rule.Kills() && j.span > j.rule.KillAfter)
}

// key identifies the stall: one syscall instance of one thread, or for a
// thread outside any syscall the thread itself.
func (j judged) key() stallKey {
	if j.queue != nil {
		// One stall per socket, whichever process holds it: a listener
		// shared by fork may be found first in another process next
		// poll, which must not read as a stall that ended (a late
		// return, fenced at once).
		return stallKey{0, j.thread.Entered}
	}
	return stallKey{j.thread.TID, j.thread.Entered}
}

// judge applies the timeout table to snapshots. It remembers, across
// polls, how long each thread has been in its current state, which is how
// time in a state is measured: from the first poll that saw the thread in
// it, for as long as every later poll sees it there (for uninterruptible
// sleep, with no context switch either: one sleep that never woke). It is
// a lower bound, short by at most one poll interval.
type judge struct {
	table *budget.Table
	since map[int]stateSpan // tid -> current state episode
	// procSince is when each process was first seen in each
	// process-wide state; absent while it is not.
	procSince map[procState]time.Time
	// children: tid -> the episode of the vfork child it waits for.
	children map[int]childSpan
	// sides is the side each two-fd syscall waits on (waitside.go).
	sides map[int]sideSpan
}

// stateSpan is one thread's current episode in one state.
type stateSpan struct {
	state     budget.State
	entered   uint64 // the syscall instance it is in (0 outside)
	switches  uint64
	voluntary uint64
	first     time.Time
}

// noState marks a thread in no judged state (in user space, or asleep
// interruptibly: waiting by design).
const noState budget.State = 255

func newJudge(table *budget.Table) *judge {
	return &judge{table: table, since: map[int]stateSpan{}, procSince: map[procState]time.Time{}, children: map[int]childSpan{}, sides: map[int]sideSpan{}}
}

// over returns the threads of snap that break a rule, at most one
// judgement each: the one that kills soonest.
func (j *judge) over(snap tracker.Snapshot) []judged {
	now := snap.Taken
	var out []judged
	live := make(map[int]bool, len(snap.Threads))
	// A core dump stops every other thread in D (coredump_task_exit)
	// and its writer may wait on storage: the dump is judged as one,
	// by its own rule, rather than thread by thread.
	dumping := map[int]bool{} // processes dumping core
	for _, t := range snap.Threads {
		if t.DumpingCore {
			dumping[t.PID] = true
		}
	}
	for _, t := range snap.Threads {
		live[t.TID] = true
		if t.Zombie {
			delete(j.since, t.TID)
			continue
		}
		span := j.track(t, now)
		side := j.side(t, now)
		if dumping[t.PID] || isProcessState(span.state) {
			continue
		}
		cands := append(j.candidates(t, now.Sub(span.first), span.state, side), j.vforkChild(t, snap)...)
		if w, ok := worst(cands); ok {
			out = append(out, w)
		}
	}
	forgetGone(j.since, live)
	forgetGone(j.children, live)
	forgetGone(j.sides, live)
	return append(out, j.process(snap)...)
}

// forgetGone drops the episodes of threads the snapshot no longer has.
func forgetGone[V any](episodes map[int]V, live map[int]bool) {
	for tid := range episodes {
		if !live[tid] {
			delete(episodes, tid)
		}
	}
}

// track updates t's state episode and returns it.
func (j *judge) track(t tracker.Thread, now time.Time) stateSpan {
	st := stateOf(t)
	prev, ok := j.since[t.TID]
	cur := stateSpan{state: st, entered: t.Entered, switches: t.Switches, voluntary: t.Voluntary, first: now}
	// One D sleep never wakes; a spin in the kernel may be preempted
	// (an involuntary switch) but never sleeps.
	same := ok && prev.state == st && prev.entered == t.Entered
	switch st {
	case budget.Uninterruptible, budget.PageFault:
		same = same && prev.switches == t.Switches
	case budget.Running:
		same = same && prev.voluntary == t.Voluntary
	}
	if same {
		cur.first = prev.first
	}
	j.since[t.TID] = cur
	return cur
}

// stateOf is the state rule t's scheduler state falls under. TASK_IDLE
// (D without load) is a sleep its waker chose to make long, like S. A
// frozen thread comes first: before 6.1 the freezer parks it in D. A
// thread asleep outside any syscall, in any sleep, is in a page fault:
// nothing waits there by design, the stops, the freezer, an exit and a
// core dump aside, which their own rules judge (a kernel-made thread has
// no syscalls; asleep in S it idles, unless it waits on I/O). A fault
// never waits on a socket or a pipe: asleep there outside a syscall, a
// thread runs the final close of its file as task work after the syscall
// that dropped it returned (dup2 over a lingering socket), waiting for a
// peer by design. A kernel-made worker asleep in S on I/O is held to the
// D rule: nothing of the process's can wake it either.
func stateOf(t tracker.Thread) budget.State {
	if t.Frozen {
		return budget.Frozen
	}
	if !t.InSyscall && !t.Kernel && !t.Exiting && !t.DumpingCore && t.State.Asleep() && !t.Wait.Class.Peer() {
		return budget.PageFault
	}
	if workerBlockedOnIO(t) {
		return budget.Uninterruptible
	}
	switch t.State {
	case tracker.StateKillable, tracker.StateUninterruptible:
		return budget.Uninterruptible
	case tracker.StateRunning, tracker.StateRunnable:
		if t.InSyscall {
			return budget.Running
		}
	case tracker.StateStopped:
		return budget.Stopped
	case tracker.StateTraced:
		return budget.Traced
	}
	return noState
}

// candidates lists every rule t could be breaking; side is the fd its
// two-fd syscall waits on, if known.
func (j *judge) candidates(t tracker.Thread, held time.Duration, st budget.State, side waitSide) []judged {
	var out []judged
	if t.InSyscall && !t.Kernel && held > t.Elapsed {
		// An episode inside this syscall cannot have lasted longer than
		// the syscall; the two are read on different clocks, a few µs
		// apart. Capped, a tie goes to the syscall's own rule, which
		// names what hangs.
		held = t.Elapsed
	}
	syscall := ""
	fd := tracker.FD{Num: -1}
	kind := fdkind.None
	if t.InSyscall && !t.Kernel {
		syscall = t.Syscall
		kinds := make([]fdkind.Kind, len(t.FDs))
		for i, f := range t.FDs {
			kinds[i] = f.Kind
		}
		rule, decided := j.table.LookupFDs(syscall, kinds...)
		kind = decided
		fd = blamedFD(t.FDs, rule, decided)
		jd := judged{thread: t, fd: fd, rule: rule, reason: reasonOverBudget, span: t.Elapsed}
		if side.ok {
			// It waits on one fd: that fd's rule, for the time it
			// has waited there.
			kind, fd = side.fd.Kind, side.fd
			jd.rule, jd.fd, jd.span, jd.onSide = j.table.Lookup(syscall, kind), fd, side.held, true
		}
		out = append(out, jd)
	}
	switch {
	case st == budget.Uninterruptible || st == budget.PageFault:
		// Kernel-made threads and threads outside any syscall (a page
		// fault on a hung mapping) answer to the table's rule.
		out = append(out, judged{thread: t, fd: fd, rule: j.table.StateRule(syscall, kind, st), reason: st.String(), span: held})
	case st == budget.Running && syscall != "":
		out = append(out, judged{thread: t, fd: fd, rule: j.table.StateRule(syscall, kind, st), reason: st.String(), span: held})
	}
	return out
}

// isProcessState reports the states judged once for the whole process,
// not thread by thread: SIGSTOP or a freeze takes every thread at once.
func isProcessState(st budget.State) bool {
	return st == budget.Stopped || st == budget.Traced || st == budget.Frozen
}

// process judges the conditions of each whole process: stopped, traced or
// frozen (any of its own threads), a core dump or an exit in progress.
// Each is one stall per process, reported on the first thread found in
// it.
//
// A core dump is the death of the process that dumps: it stalls the
// service only when that process is the service's leader (the watched
// pid, the root of a tree), or when no other process of the scope still
// serves. One worker of a tree or cgroup dumping core is a worker dying,
// which its siblings outlive: stalling the scope for it would fail over a
// healthy service, and, under the fence policy, kill it when the dump
// ended.
func (j *judge) process(snap tracker.Snapshot) []judged {
	var out []judged
	byPID := map[int][]tracker.Thread{}
	var pids []int
	for _, t := range snap.Threads {
		if _, seen := byPID[t.PID]; !seen {
			pids = append(pids, t.PID)
		}
		byPID[t.PID] = append(byPID[t.PID], t)
	}
	// Threads left out as quiet wait by design in a process that does not
	// dump (a dump makes every thread of its process loud): they serve.
	serving := snap.Quiet
	for _, pid := range pids {
		threads := byPID[pid]
		dumps := slices.ContainsFunc(threads, func(t tracker.Thread) bool { return t.DumpingCore })
		if !dumps && slices.ContainsFunc(threads, func(t tracker.Thread) bool { return !t.Zombie }) {
			serving++
		}
	}
	live := map[procState]bool{}
	for _, pid := range pids {
		dumpConcernsScope := pid == snap.PID || serving == 0
		out = append(out, j.processStates(pid, byPID[pid], snap.Taken, dumpConcernsScope, live)...)
	}
	for k := range j.procSince {
		if !live[k] {
			delete(j.procSince, k)
		}
	}
	return out
}

// procState is one process in one process-wide state.
type procState struct {
	pid int
	st  budget.State
}

func (j *judge) processStates(pid int, threads []tracker.Thread, now time.Time, dumpConcernsScope bool, live map[procState]bool) []judged {
	var out []judged
	inState := func(st budget.State) func(tracker.Thread) bool {
		return func(t tracker.Thread) bool { return !t.Kernel && !t.Zombie && stateOf(t) == st }
	}
	dumping := func(t tracker.Thread) bool { return t.DumpingCore }
	judgedDump := func(t tracker.Thread) bool { return dumpConcernsScope && t.DumpingCore }
	for _, c := range []struct {
		st budget.State
		on func(tracker.Thread) bool
	}{
		{budget.DumpingCore, judgedDump},
		// A core dump sets the group-exit flag too: it is judged as
		// a dump, never killed by default, not as an exit.
		{budget.Exiting, func(t tracker.Thread) bool { return t.Exiting && !slices.ContainsFunc(threads, dumping) }},
		{budget.Stopped, inState(budget.Stopped)},
		{budget.Traced, inState(budget.Traced)},
		{budget.Frozen, inState(budget.Frozen)},
	} {
		i := slices.IndexFunc(threads, c.on)
		if i < 0 {
			continue
		}
		key := procState{pid, c.st}
		live[key] = true
		first, ok := j.procSince[key]
		if !ok {
			first = now
			j.procSince[key] = first
		}
		who := threads[i]
		// Entered keeps the stall apart from any of the thread's own.
		t := tracker.Thread{PID: pid, TID: who.TID, Comm: who.Comm, State: who.State, Nr: -1, FD: -1, Entered: 1<<63 | uint64(c.st)}
		jd := judged{thread: t, fd: tracker.FD{Num: -1}, rule: j.table.ProcessRule(c.st), reason: c.st.String(), span: now.Sub(first)}
		if jd.overBudget() {
			out = append(out, jd)
		}
	}
	return out
}

// worst picks, among the broken rules, the one that kills first: a kill
// due now, then the earliest kill, then any stall.
func worst(cands []judged) (judged, bool) {
	var best judged
	found := false
	for _, c := range cands {
		if !c.overBudget() {
			continue
		}
		if !found || killsSooner(c, best) {
			best, found = c, true
		}
	}
	return best, found
}

func killsSooner(a, b judged) bool {
	if a.overKill() != b.overKill() {
		return a.overKill()
	}
	left := func(j judged) time.Duration {
		if !j.rule.Kills() {
			return 1<<63 - 1
		}
		return j.rule.KillAfter - j.span
	}
	return left(a) < left(b)
}

// blamedFD is the fd argument a stall is reported on: the one whose kind
// chose the rule, or, when every kind left the syscall unbounded, a file
// or device over a socket or pipe, since storage is what hangs in D.
func blamedFD(fds []tracker.FD, rule budget.Rule, decided fdkind.Kind) tracker.FD {
	if len(fds) == 0 {
		return tracker.FD{Num: -1}
	}
	for _, f := range fds {
		if rule.Unbounded && (f.Kind == fdkind.Regular || f.Kind == fdkind.Device) {
			return f
		}
		if !rule.Unbounded && f.Kind == decided && decided != fdkind.None {
			return f
		}
	}
	return fds[0]
}
