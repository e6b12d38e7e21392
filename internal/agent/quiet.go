package agent

import (
	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/tracker"
)

// Quiet is the tracker's quiet set for table (tracker.Options.Quiet): the
// judge holds a thread asleep interruptibly only to its syscall's own rule
// (the state rules judge D and running in the kernel, process states
// are kept by the tracker), so the thread is quiet when that rule is
// unbounded. Left out of the snapshots, such threads cost the poll nothing.
//
// With work_waiting on there is no quiet set (nil): a listener's stall is
// told with every thread of its process and what each waits in ("every
// worker in futex"), and the listener scan covers every process that has a
// thread in the snapshot, though all of them may wait by design.
func Quiet(table *budget.Table) tracker.QuietFunc {
	if !table.ProcessRule(budget.WorkWaiting).Unbounded {
		return nil
	}
	return func(syscall string, kinds ...fdkind.Kind) bool {
		rule, _ := table.LookupFDs(syscall, kinds...)
		return rule.Unbounded
	}
}
