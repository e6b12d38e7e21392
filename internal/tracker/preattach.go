package tracker

import (
	"time"

	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// preAttach remembers a syscall the tracker did not see enter: one in
// flight before the tracker attached, so that a process already stuck
// when stallmon starts is still caught, or one whose entry was missed.
// Its elapsed time counts from when it was first seen.
type preAttach struct {
	nr    int
	abi   ABI
	args  [6]uint64
	first time.Time
	// What the sampled tracker checks to know the call is the same one:
	// a thread that slept (voluntary), ran in user space or made a read
	// or write call (progress) since may have returned and made the same
	// call again. User time is sampled by the tick: a loop of big reads,
	// all but nanoseconds of it in the kernel, may go seconds without
	// any, so user time alone would age it as one call.
	voluntary, progress uint64
}

// fillUntracked shows a thread whose saved registers say it is inside a
// syscall that has no in-flight word. The registers, read by the kernel
// side, are valid whether the thread sleeps or runs in the kernel, so a
// kernel spin already under way is seen too. With the tracepoint tracker
// the first-seen time is kept for as long as the registers show the same
// call, whatever the thread's state in between, except for a call held
// before sys_enter (held): sys_enter never sees it return or come again.
func (m *Tracker) fillUntracked(t *Thread, rec gen.StallmonThreadRec, now time.Time, held bool) {
	nr, abi := int(rec.RegsNr)&nrMask, ABI(rec.RegsAbi)
	p, known := m.preAttach[t.TID]
	same := known && p.nr == nr && p.abi == abi && p.args == rec.Args
	if m.opts.Kind.sampled() || held {
		// The hung-task detector's reasoning: no sleep and no user time
		// since the previous look, so no return to user space either.
		// A tracepoint tracker sees the return of a call in flight
		// since attach, so there the registers alone decide.
		same = same && p.voluntary == rec.Voluntary && p.progress == rec.Progress
	}
	if !same {
		p = preAttach{nr: nr, abi: abi, args: rec.Args, first: now}
	}
	p.voluntary, p.progress = rec.Voluntary, rec.Progress
	m.preAttach[t.TID] = p
	t.InSyscall = true
	t.SinceAttach = true
	t.Nr, t.ABI = nr, abi
	t.Elapsed = now.Sub(p.first)
	t.Entered = uint64(p.first.UnixNano())
}
