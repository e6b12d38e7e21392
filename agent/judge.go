package agent

import (
	"time"

	"github.com/stallmon/stallmon/budget"
	"github.com/stallmon/stallmon/fdkind"
	"github.com/stallmon/stallmon/monitor"
)

// judged is an in-flight syscall measured against its rule.
type judged struct {
	thread monitor.Thread
	kind   fdkind.Kind
	rule   budget.Rule
	// death is set when the kernel killed the thread inside the syscall:
	// past budget and kill_after at once, whatever the rule says.
	death *monitor.Death
}

func (j judged) overBudget() bool {
	return j.death != nil || (!j.rule.Unbounded && j.thread.Elapsed > j.rule.Budget)
}

func (j judged) overKill() bool {
	return j.death != nil || (j.overBudget() && j.rule.Kills() && j.thread.Elapsed > j.rule.KillAfter)
}

// reason says why a syscall is a stall, for events.
func (j judged) reason() string {
	if j.death != nil {
		return "died_in_syscall"
	}
	return "over_budget"
}

// judge applies the timeout table. The fd kind costs a stat in /proc, so
// it is resolved only for syscalls that are already past the smallest
// budget any kind could have, and once per syscall instance.
type judge struct {
	table *budget.Table
	pid   int
	kinds map[stallKey]fdkind.Kind
}

func newJudge(table *budget.Table, pid int) *judge {
	return &judge{table: table, pid: pid, kinds: map[stallKey]fdkind.Kind{}}
}

// over returns the in-flight syscalls of snap that are over their budget.
func (j *judge) over(snap monitor.Snapshot) []judged {
	var out []judged
	live := map[stallKey]bool{}
	for _, t := range snap.InFlight() {
		min, unbounded := j.table.MinBudget(t.Syscall)
		if unbounded || t.Elapsed <= min {
			continue
		}
		kind := fdkind.None
		if t.FD >= 0 && j.table.NeedsFDKind(t.Syscall) {
			kind = j.kind(t)
			live[stallKey{t.TID, t.Entered}] = true
		}
		jd := judged{thread: t, kind: kind, rule: j.table.Lookup(t.Syscall, kind)}
		if jd.overBudget() {
			out = append(out, jd)
		}
	}
	for k := range j.kinds {
		if !live[k] {
			delete(j.kinds, k)
		}
	}
	return out
}

func (j *judge) kind(t monitor.Thread) fdkind.Kind {
	k := stallKey{t.TID, t.Entered}
	if kind, ok := j.kinds[k]; ok {
		return kind
	}
	// An fd that is gone (closed by another thread) falls back to the
	// syscall's own rule, never to "unbounded".
	kind, err := fdkind.Resolve(j.pid, t.FD)
	if err != nil {
		kind = fdkind.None
	}
	j.kinds[k] = kind
	return kind
}

// maxKillAfter is the longest kill_after in the table: the bound on how
// long a stuck process can outlive its last heartbeat.
func maxKillAfter(t *budget.Table) (time.Duration, bool) {
	var max time.Duration
	any := false
	consider := func(r budget.Rule) {
		if !r.Unbounded && r.Kills() {
			any = true
			if r.KillAfter > max {
				max = r.KillAfter
			}
		}
	}
	consider(t.DefaultRule())
	for _, name := range t.Names() {
		for _, k := range fdkind.Kinds() {
			consider(t.Lookup(name, k))
		}
	}
	return max, any
}
