package agent

import (
	"log/slog"
	"time"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/tracker"
)

// reasonVforkChild: the child a thread waits for in vfork, clone or
// clone3 (posix_spawn) has been stuck past its rule.
const reasonVforkChild = "vfork_child"

// A spawning parent waits in killable D until its vfork child execs or
// exits, and the table exempts that wait (vfork, clone and clone3 are
// unbounded, in D too): it lasts as long as the child's own work, such as
// a posix_spawn file action that opens a FIFO and waits for a writer.
// What the child does decides instead, judged as a thread of the target
// would be:
//   - asleep outside any syscall, one sleep: the page_fault rule (the
//     child shares the parent's memory, a hung mapping's fault included);
//   - asleep in D, one sleep: the uninterruptible rule of the child's
//     syscall (a hung disk under its exec or its file actions);
//   - asleep interruptibly inside execve or execveat, one sleep: execve's
//     own rule (an exec of a program on a FUSE or network file system
//     that stopped answering waits in S);
//   - anything else (running, asleep in another syscall, a FIFO's open
//     among them) breaks no rule.
// The stall is the parent's, reported on it with the child named.

// childWait is what a vfork child's episode is judged by.
type childWait uint8

const (
	childFree  childWait = iota // breaks no rule
	childFault                  // asleep outside any syscall
	childD                      // asleep in D
	childExecS                  // asleep interruptibly in an exec
)

// childSpan is the current episode of the vfork child a thread waits for.
type childSpan struct {
	tid       int // the child
	wait      childWait
	nr        int
	switches  uint64
	voluntary uint64
	first     time.Time
}

func childWaitOf(c *tracker.VforkChild) childWait {
	if !c.InSyscall && c.State.Asleep() {
		return childFault
	}
	switch c.State {
	case tracker.StateKillable, tracker.StateUninterruptible:
		return childD
	case tracker.StateInterruptible:
		if c.Syscall == "execve" || c.Syscall == "execveat" {
			return childExecS
		}
	}
	return childFree
}

// vforkChild returns the judgement of t's wait for its vfork child, none
// when t waits for none, or for a child the snapshot judges itself (a
// child inside a tree or cgroup target is a thread of it).
func (j *judge) vforkChild(t tracker.Thread, snap tracker.Snapshot) []judged {
	c := t.VforkChild
	if c == nil {
		delete(j.children, t.TID)
		return nil
	}
	if _, own := snap.Thread(c.TID); own {
		delete(j.children, t.TID)
		return nil
	}
	now := snap.Taken
	cur := childSpan{tid: c.TID, wait: childWaitOf(c), nr: c.Nr, switches: c.Switches, voluntary: c.Voluntary, first: now}
	prev, ok := j.children[t.TID]
	// One sleep never wakes: D with no switch at all, an interruptible
	// sleep with no voluntary one.
	same := ok && prev.tid == cur.tid && prev.wait == cur.wait && prev.nr == cur.nr
	switch cur.wait {
	case childFault, childD:
		same = same && prev.switches == cur.switches
	case childExecS:
		same = same && prev.voluntary == cur.voluntary
	}
	if same {
		cur.first = prev.first
	}
	j.children[t.TID] = cur
	var rule budget.Rule
	switch cur.wait {
	case childFault:
		rule = j.table.StateRule("", fdkind.None, budget.PageFault)
	case childD:
		rule = j.table.StateRule(c.Syscall, fdkind.None, budget.Uninterruptible)
	case childExecS:
		rule, _ = j.table.LookupFDs(c.Syscall)
	default:
		return nil
	}
	return []judged{{thread: t, fd: tracker.FD{Num: -1}, rule: rule, reason: reasonVforkChild, span: now.Sub(cur.first), child: c}}
}

// childAttrs name the vfork child a stall was judged by.
func childAttrs(c *tracker.VforkChild) []slog.Attr {
	syscall := c.Syscall
	if syscall == "" {
		syscall = "none"
	}
	return []slog.Attr{
		slog.Int("child_pid", c.TID),
		slog.String("child_comm", c.Comm),
		slog.String("child_syscall", syscall),
		slog.String("child_state", c.State.String()),
	}
}
