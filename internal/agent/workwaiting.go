package agent

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/listenq"
	"github.com/stallmon/stallmon/internal/tracker"
)

// ListenerSource reads the listening sockets of the watched processes
// from the kernel (listenq.Scanner), with connected their connected TCP
// sockets holding readable data too. It must never block on them.
type ListenerSource interface {
	Scan(pids []int, connected bool) ([]listenq.Listener, error)
}

// queueWait is a listener whose queued connections wait with none
// accepted: what a work_waiting stall reports.
type queueWait struct {
	listener listenq.Listener
	// threads lists the process's threads and what they do at that poll,
	// so that the event says why nobody accepts ("every worker in futex").
	threads string
}

// queueSpan is one listener's current wait: the mark it has not moved
// from, and the first poll that saw it there with work queued.
type queueSpan struct {
	mark  listenq.Mark
	first time.Time
}

// queueWatch measures how long each listener's queue has waited with its
// mark unmoved. Like the state rules it is a lower bound, short by at
// most one poll interval: the wait is timed from the first poll that saw
// it.
type queueWatch struct {
	since map[uint64]queueSpan // socket inode -> current wait
	// latest is what the latest scan saw, for metrics.
	latest []ListenerQueue
	// scanned is when the latest scan was taken, and stalled what it
	// judged: the polls between scans repeat that judgement.
	scanned time.Time
	stalled []judged
	// polled is when the latest poll was taken; scannedLate says the
	// latest scan was taken at a late poll, while the agent (and likely
	// the service) was starved: no kill may rest on it, so the next poll
	// scans afresh.
	polled      time.Time
	scannedLate bool
}

// scanEvery is how often the listeners are scanned under rule: at every
// poll, but no more often than a tenth of the budget. A scan walks every
// open file of the target (about 1.3 µs a socket on a busy 2-CPU machine:
// 13 ms at 10,000 sockets, see docs/budgets.md), which a 100ms poll would
// pay ten times a second; a tenth of the budget delays a stall by at most
// that, and never declares one the latest scan did not see.
func scanEvery(rule budget.Rule, poll time.Duration) time.Duration {
	return max(poll, rule.Budget/10)
}

// ListenerQueue is one listener's queue at the latest poll, for metrics.
type ListenerQueue struct {
	// Label is the TCP port or the unix address: never a pid.
	Label   string
	Kind    string
	Queued  uint32
	Limit   uint32
	Waiting time.Duration // with the mark unmoved; 0 when empty or moving
}

// over judges the sockets of one scan: a queue that is not empty and
// whose mark has not moved for longer than rule's budget is stalled.
// Work that is taken off the queue (the mark moves: an accept, or a read
// on a connected socket) or a queue that empties starts the wait anew.
// Connected sockets are judged but not kept for metrics: one series per
// connection would be unbounded.
func (w *queueWatch) over(ls []listenq.Listener, snap tracker.Snapshot, rule budget.Rule) []judged {
	if w.since == nil {
		w.since = map[uint64]queueSpan{}
	}
	now := snap.Taken
	live := map[uint64]bool{}
	var out []judged
	w.latest = w.latest[:0]
	for _, l := range ls {
		q := ListenerQueue{Label: l.PortLabel(), Kind: l.Kind.String(), Queued: l.Queued, Limit: l.Limit}
		// A process stopped, traced, frozen, dumping core or exiting
		// accepts nothing by no fault of its own: its state's rule
		// judges it (never a kill, for the first four, by default), and
		// its wait starts anew once it runs again. Any holder of a
		// shared socket may be its reader, so any such holder spares it.
		if l.Queued == 0 || holderInProcessState(snap, l) {
			if !l.Connected {
				w.latest = append(w.latest, q)
			}
			continue
		}
		live[l.Ino] = true
		sp, ok := w.since[l.Ino]
		if !ok || sp.mark != l.Mark {
			sp = queueSpan{mark: l.Mark, first: now}
			w.since[l.Ino] = sp
		}
		q.Waiting = now.Sub(sp.first)
		if !l.Connected {
			w.latest = append(w.latest, q)
		}
		jd := judged{thread: listenerThread(l, snap), fd: tracker.FD{Num: l.FD, Kind: fdkind.Socket},
			rule: rule, reason: budget.WorkWaiting.String(), span: q.Waiting,
			queue: &queueWait{listener: l, threads: threadStates(snap, l.PID)}}
		if jd.overBudget() {
			out = append(out, jd)
		}
	}
	for ino := range w.since {
		if !live[ino] {
			delete(w.since, ino)
		}
	}
	return out
}

// holderInProcessState reports whether a process holding l is in a
// state that has a process-wide rule of its own. With holders left out
// (more than listenq.MaxHolders) any such process of the scope counts:
// it may be the reader, and sparing is the safe side.
func holderInProcessState(snap tracker.Snapshot, l listenq.Listener) bool {
	if l.MoreHolders {
		return inProcessState(snap, func(int) bool { return true })
	}
	if len(l.Holders) == 0 {
		return inProcessState(snap, func(pid int) bool { return pid == l.PID })
	}
	return inProcessState(snap, func(pid int) bool { return slices.Contains(l.Holders, pid) })
}

// inProcessState reports whether a process that holds (by holds) is in
// a state that has a process-wide rule of its own.
func inProcessState(snap tracker.Snapshot, holds func(pid int) bool) bool {
	for _, t := range snap.Threads {
		if t.Kernel || t.Zombie || !holds(t.PID) {
			continue
		}
		if t.DumpingCore || t.Exiting {
			return true
		}
		switch stateOf(t) {
		case budget.Stopped, budget.Traced, budget.Frozen:
			return true
		}
	}
	return false
}

// listenerThread is the process's leader, standing for the listener in
// the stall set: Entered keeps the stall apart from any of its own, one
// per socket.
func listenerThread(l listenq.Listener, snap tracker.Snapshot) tracker.Thread {
	t := tracker.Thread{PID: l.PID, TID: l.PID, Nr: -1, FD: l.FD, Entered: 1<<63 | 1<<62 | l.Ino}
	for _, th := range snap.Threads {
		if th.TID == l.PID {
			t.Comm, t.State = th.Comm, th.State
			break
		}
	}
	return t
}

// maxListedThreads bounds the threads field: a pool of hundreds would
// make the event unreadable, and the first ones tell the story.
const maxListedThreads = 16

// threadStates renders pid's threads as "tid:comm:state:syscall", comma
// separated ("-" for a thread in user space).
func threadStates(snap tracker.Snapshot, pid int) string {
	var b strings.Builder
	n := 0
	for _, t := range snap.Threads {
		if t.PID != pid {
			continue
		}
		if n == maxListedThreads {
			b.WriteString(",...")
			break
		}
		if n > 0 {
			b.WriteByte(',')
		}
		sc := t.Syscall
		if !t.InSyscall || sc == "" {
			sc = "-"
		}
		fmt.Fprintf(&b, "%d:%s:%s:%s", t.TID, t.Comm, t.State, sc)
		n++
	}
	return b.String()
}

func queueAttrs(q *queueWait, span time.Duration) []slog.Attr {
	l := q.listener
	socket := "listening"
	if l.Connected {
		socket = "connected"
	}
	return []slog.Attr{
		slog.String("local_addr", l.Addr),
		slog.String("kind", l.Kind.String()),
		slog.String("socket", socket),
		slog.Int("queued", int(l.Queued)),
		slog.Int("queue_limit", int(l.Limit)),
		slog.Float64("waiting_seconds", span.Seconds()),
		slog.String("threads", q.threads),
	}
}

// scanListeners judges the listeners of the processes in snap when the
// table turns work_waiting on. An error means the poll cannot vouch.
func (a *Agent) scanListeners(snap tracker.Snapshot) ([]judged, error) {
	rule := a.cfg.Table.ProcessRule(budget.WorkWaiting)
	if a.cfg.Listeners == nil || rule.Unbounded {
		return nil, nil
	}
	w := &a.queues
	// Late as poll() counts it: more than two intervals since the last.
	late := !w.polled.IsZero() && snap.Taken.Sub(w.polled) > 2*a.cfg.PollInterval
	w.polled = snap.Taken
	// A poll comes up to a few ms early or late: a scan due within a
	// tenth of a poll is taken now rather than a whole poll later. A
	// scan taken at a late poll is never reused: poll() kills nothing
	// at a late poll so that our lateness is not blamed on the target,
	// and the on-time poll after it must judge what the service has
	// done since, not the starved scan.
	if !w.scanned.IsZero() && !w.scannedLate && snap.Taken.Sub(w.scanned) < scanEvery(rule, a.cfg.PollInterval)-a.cfg.PollInterval/10 {
		return w.stalled, nil
	}
	var pids []int
	for _, t := range snap.Threads {
		if !t.Zombie && !slices.Contains(pids, t.PID) {
			pids = append(pids, t.PID)
		}
	}
	ls, err := a.cfg.Listeners.Scan(pids, a.cfg.Table.WorkWaitingSockets() == budget.AllSockets)
	if err != nil {
		return nil, fmt.Errorf("scanning listeners: %w", err)
	}
	if f := a.cfg.Table.WorkWaitingFilter(); !f.IsZero() {
		// Sockets the rule leaves out are neither judged nor shown.
		ls = slices.DeleteFunc(ls, func(l listenq.Listener) bool { return !f.Judges(l.Port, l.Addr) })
	}
	w.scanned, w.scannedLate = snap.Taken, late
	w.stalled = w.over(ls, snap, rule)
	return w.stalled, nil
}
