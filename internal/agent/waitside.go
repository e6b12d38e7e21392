package agent

import (
	"time"

	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/tracker"
	"github.com/stallmon/stallmon/internal/waitsite"
)

// A two-fd syscall (sendfile, splice, tee, copy_file_range) moves data
// from one fd to the other and, at any instant, waits on one of them.
// Judged by the stricter of its two rules, a sendfile from a local file to
// a client that stopped reading (back-pressure, a wait on the client) is
// held to the file's 5s and killed, however healthy the file. Its wait
// site says which side it waits on; that side's rule judges it, for the
// time it has waited there. Only a class that names a side does so:
// unknown, other, a lock or anything else keeps the stricter of the two,
// on the whole elapsed time (fail closed).

// sideSpan is one two-fd syscall instance waiting on one of its fds.
type sideSpan struct {
	entered uint64 // the syscall instance
	kind    fdkind.Kind
	first   time.Time // the first poll that saw it wait on that side
}

// waitSide is the fd a two-fd syscall waits on, and for how long.
type waitSide struct {
	fd   tracker.FD
	held time.Duration
	ok   bool
}

// side returns the fd t's two-fd syscall waits on, from its wait site,
// and how long it has waited on that side: from the first poll that saw
// it there, for as long as no later poll saw it asleep elsewhere. A
// thread on a CPU waits for nothing (a running kernel is judged by the
// running rule): it stays on the side it last slept on, or has none.
func (j *judge) side(t tracker.Thread, now time.Time) waitSide {
	prev, had := j.sides[t.TID]
	delete(j.sides, t.TID)
	had = had && prev.entered == t.Entered
	if !t.InSyscall || t.Kernel || len(t.FDs) < 2 {
		return waitSide{}
	}
	var kind fdkind.Kind
	if t.Wait.Captured() {
		var ok bool
		if kind, ok = sideKind(t.Wait.Class, t.FDs); !ok {
			return waitSide{}
		}
	} else {
		if !had {
			return waitSide{}
		}
		kind = prev.kind
	}
	cur := sideSpan{entered: t.Entered, kind: kind, first: now}
	if had && prev.kind == kind {
		cur.first = prev.first
	}
	j.sides[t.TID] = cur
	for _, f := range t.FDs {
		if f.Kind == kind {
			return waitSide{fd: f, held: min(now.Sub(cur.first), t.Elapsed), ok: true}
		}
	}
	return waitSide{}
}

// sideKind is the kind of the fd among fds that a wait of class c waits
// on: a socket for a socket's wait, a pipe for a pipe's, a file (or
// device) for a file system's. False when c names no side, or names one
// no fd has, or two fds of different kinds could be it.
func sideKind(c waitsite.Class, fds []tracker.FD) (fdkind.Kind, bool) {
	var fits func(fdkind.Kind) bool
	switch {
	case c == waitsite.SocketSend || c == waitsite.SocketRecv:
		fits = func(k fdkind.Kind) bool { return k == fdkind.Socket }
	case c == waitsite.Pipe:
		fits = func(k fdkind.Kind) bool { return k == fdkind.Pipe }
	case c.Filesystem():
		fits = func(k fdkind.Kind) bool { return k == fdkind.Regular || k == fdkind.Device }
	default:
		return fdkind.None, false
	}
	kind, found := fdkind.None, false
	for _, f := range fds {
		if !fits(f.Kind) {
			continue
		}
		if found && f.Kind != kind {
			return fdkind.None, false
		}
		kind, found = f.Kind, true
	}
	return kind, found
}

// workerBlockedOnIO reports a thread the kernel made (an io-wq worker, an
// SQ thread) asleep interruptibly on a file system or a userfaultfd page:
// it does the process's I/O, and no signal of the process will ever wake
// it. Idle, such a thread sleeps in io_uring's own wait for work; asleep
// anywhere else, or where its stack could not be read, it is judged as
// before: not at all in S.
func workerBlockedOnIO(t tracker.Thread) bool {
	return t.Kernel && t.State == tracker.StateInterruptible &&
		(t.Wait.Class.Filesystem() || t.Wait.Class == waitsite.Userfaultfd)
}
