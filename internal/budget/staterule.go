package budget

import "github.com/stallmon/stallmon/internal/fdkind"

// StateRule returns the rule for time spent continuously in state s
// (Uninterruptible or Running) inside syscall on an fd of kind: the by_fd
// rule's state override for kind, else the syscall's own state override,
// else the table's states rule. syscall "" means a thread not inside any
// syscall (a kernel-made io_uring worker): the table's rule.
//
// An inherited (table-level) state rule never judges a syscall more
// strictly than the syscall's own bounded rule: when Lookup(syscall, kind)
// is bounded, the result's budget is raised to at least that rule's budget
// and its kill_after to at least that rule's kill_after (never beats any
// duration). Time in D is part of the elapsed time that rule already
// bounds, so an fsync on a slow disk stays within fsync's own 10s.
// Explicit per-syscall and by_fd state overrides are returned as written.
//
// For a two-fd syscall pass the kind LookupFDs reports as deciding, so
// that both judgements concern the same fd. For PageFault and the
// process-level states StateRule returns ProcessRule(s): no syscall can
// override those.
func (t *Table) StateRule(syscall string, kind fdkind.Kind, s State) Rule {
	if !s.PerSyscall() {
		return t.ProcessRule(s)
	}
	if syscall == "" {
		return t.stateRules[s]
	}
	if e, ok := t.rules[syscall]; ok {
		if kind != fdkind.None {
			if r, ok := e.kindStates[kind][s]; ok {
				return r
			}
		}
		if r, ok := e.states[s]; ok {
			return r
		}
	}
	return atLeast(t.stateRules[s], t.Lookup(syscall, kind))
}

// atLeast raises r so that it acts no sooner than floor, when both are
// bounded; an unbounded r needs no raising, an unbounded floor gives none.
func atLeast(r, floor Rule) Rule {
	if r.Unbounded || floor.Unbounded {
		return r
	}
	r.Budget = max(r.Budget, floor.Budget)
	if r.KillAfter != 0 && floor.KillAfter != 0 {
		r.KillAfter = max(r.KillAfter, floor.KillAfter)
	} else {
		r.KillAfter = 0
	}
	return r
}

// ProcessRule returns the rule for a state no syscall overrides: the
// process-level ones (Stopped, Traced, Frozen, DumpingCore, Exiting) and
// PageFault.
//
// It never panics, since the agent calls it on a live process: for
// Uninterruptible and Running it returns the table's states rule (what
// StateRule gives a thread outside any syscall), and for a State out of
// range the default rule.
func (t *Table) ProcessRule(s State) Rule {
	if int(s) >= numStates {
		return t.defRule
	}
	return t.stateRules[s]
}
