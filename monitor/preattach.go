package monitor

import (
	"time"

	"github.com/stallmon/stallmon/gen"
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
}

// fillUntracked shows a thread whose saved registers say it is inside a
// syscall that has no in-flight word. The registers, read by the kernel
// side, are valid whether the thread sleeps or runs in the kernel, so a
// kernel spin already under way is seen too. The first-seen time is kept
// for as long as the registers show the same call, whatever the thread's
// state in between.
func (m *Monitor) fillUntracked(t *Thread, rec gen.StallmonThreadRec, now time.Time) {
	nr, abi := int(rec.RegsNr)&nrMask, ABI(rec.RegsAbi)
	p, known := m.preAttach[t.TID]
	if !known || p.nr != nr || p.abi != abi || p.args != rec.Args {
		p = preAttach{nr: nr, abi: abi, args: rec.Args, first: now}
		m.preAttach[t.TID] = p
	}
	t.InSyscall = true
	t.SinceAttach = true
	t.Nr, t.ABI = nr, abi
	t.Elapsed = now.Sub(p.first)
	t.Entered = uint64(p.first.UnixNano())
}
