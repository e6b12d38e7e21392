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
func Quiet(table *budget.Table) tracker.QuietFunc {
	return func(syscall string, kinds ...fdkind.Kind) bool {
		rule, _ := table.LookupFDs(syscall, kinds...)
		return rule.Unbounded
	}
}
