package budget

import (
	"slices"
	"time"

	"github.com/stallmon/stallmon/internal/fdkind"
)

// Table is a parsed budget table. It is immutable, so one table can be
// shared by every goroutine that judges syscalls.
type Table struct {
	// def, states and entries are the table as written (def possibly
	// overridden); states and entries are shared with tables derived by
	// WithDefaults.
	def     ruleSpec
	states  map[State]*ruleSpec
	entries map[string]*entry
	// overridden names the flags WithDefaults applied to def, for Format.
	overridden string

	// defRule, stateRules and rules are the effective rules, with
	// inheritance already applied, so lookups do no work.
	defRule    Rule
	stateRules [numStates]Rule
	rules      map[string]*effective
	// bySocket and socketFilter are the work_waiting rule's by_socket
	// and only or skip.
	bySocket     BySocket
	socketFilter SocketFilter
}

// ruleSpec is one rule as written, before kill_after inheritance.
type ruleSpec struct {
	line      int // where the rule's value starts, for errors
	unbounded bool
	budget    time.Duration
	killAfter time.Duration // zero with killSet: never
	killSet   bool          // false: inherited from the enclosing rule
	killLine  int           // line of kill_after, when set
	src       *source       // the file the rule was written in
	bySocket  BySocket      // work_waiting's by_socket; Listeners elsewhere
	// socketFilter is work_waiting's only or skip; empty elsewhere.
	socketFilter SocketFilter
	// filterSet: the rule wrote only or skip (even empty), so it
	// replaces the list of the rule it lays over instead of keeping it.
	filterSet bool
}

// entry is a syscall's part of the table as written, or one fd kind's
// part of a syscall's.
type entry struct {
	line   int       // line of the syscall name
	src    *source   // the file that named it last
	own    *ruleSpec // nil: the enclosing rule applies (default, or the syscall's)
	states map[State]*ruleSpec
	byFD   map[fdkind.Kind]*entry // a syscall's only
}

type effective struct {
	own        Rule
	byFD       map[fdkind.Kind]Rule
	states     map[State]Rule                 // the syscall's state overrides
	kindStates map[fdkind.Kind]map[State]Rule // by_fd rules' state overrides
	min        time.Duration
	allFree    bool // every rule that can apply is unbounded
}

// Lookup returns the rule for syscall on an fd of the given kind: the
// syscall's rule for that kind if it has one, else the syscall's own rule,
// else the default. Pass fdkind.None when the syscall takes no fd or its
// kind could not be resolved; None never matches a kind rule.
func (t *Table) Lookup(syscall string, kind fdkind.Kind) Rule {
	e, ok := t.rules[syscall]
	if !ok {
		return t.defRule
	}
	if kind != fdkind.None {
		if r, ok := e.byFD[kind]; ok {
			return r
		}
	}
	return e.own
}

// NeedsFDKind reports whether the rule for syscall depends on the fd kind,
// so that callers pay for resolving an fd only when it can change the
// answer.
func (t *Table) NeedsFDKind(syscall string) bool {
	e, ok := t.rules[syscall]
	return ok && len(e.byFD) > 0
}

// MinBudget returns the smallest budget that can apply to syscall over all
// fd kinds, and whether every rule that can apply is unbounded (the
// duration is then zero). A syscall that has run for less than this needs
// no fd resolution yet. It covers elapsed time only: a by_fd state
// override can be smaller, and NeedsFDKind is true for such a syscall.
func (t *Table) MinBudget(syscall string) (time.Duration, bool) {
	e, ok := t.rules[syscall]
	if !ok {
		return t.defRule.Budget, t.defRule.Unbounded
	}
	return e.min, e.allFree
}

// DefaultRule returns the rule for syscalls the table does not list.
func (t *Table) DefaultRule() Rule { return t.defRule }

// Names returns the syscalls the table lists, sorted.
func (t *Table) Names() []string {
	names := make([]string, 0, len(t.rules))
	for n := range t.rules {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// MaxKillAfter returns the longest kill_after of any rule that can kill
// (syscall rules, by_fd rules, state rules and their overrides, process
// rules), and false when no rule kills: how long after its heartbeat
// stopped a process can still be running. A state rule raised by
// StateRule takes its kill_after from rules counted here, so it cannot
// exceed the result.
func (t *Table) MaxKillAfter() (time.Duration, bool) {
	var longest time.Duration
	kills := false
	consider := func(r Rule) {
		if r.Kills() {
			kills = true
			longest = max(longest, r.KillAfter)
		}
	}
	consider(t.defRule)
	for _, r := range t.stateRules {
		consider(r)
	}
	for _, e := range t.rules {
		consider(e.own)
		for _, r := range e.byFD {
			consider(r)
		}
		for _, r := range e.states {
			consider(r)
		}
		for _, rs := range e.kindStates {
			for _, r := range rs {
				consider(r)
			}
		}
	}
	return longest, kills
}
