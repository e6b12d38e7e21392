package cgroup

import "time"

// ForceFreezeKill makes Kill take the freeze path until the test ends.
func ForceFreezeKill(t interface{ Cleanup(func()) }) {
	forceFreezeKill.Store(true)
	t.Cleanup(func() { forceFreezeKill.Store(false) })
}

// FreezeKill is the freeze path with limits a test sets; afterSignals
// runs after each round's signals.
func (d Dir) FreezeKill(total time.Duration, afterSignals func(round int)) error {
	lim := defaultFreezeKillLimits
	lim.total, lim.afterSignals = total, afterSignals
	return d.freezeKill(lim)
}

// FreezeKillAfterOpen is the freeze path with afterOpen run between a
// batch's pidfd_opens and the listing that confirms them.
func (d Dir) FreezeKillAfterOpen(afterOpen func()) error {
	lim := defaultFreezeKillLimits
	lim.afterOpen = afterOpen
	return d.freezeKill(lim)
}
