package budget

import (
	"slices"
	"time"

	"github.com/stallmon/stallmon/fdkind"
)

// Table is a parsed budget table. It is immutable, so one table can be
// shared by every goroutine that judges syscalls.
type Table struct {
	// def and entries are the table as written (def possibly overridden);
	// entries are shared with tables derived by WithDefaults.
	def     ruleSpec
	entries map[string]*entry

	// defRule and rules are the effective rules, with kill_after
	// inheritance already applied, so Lookup does no work.
	defRule Rule
	rules   map[string]*effective
}

// ruleSpec is one rule as written, before kill_after inheritance.
type ruleSpec struct {
	line      int // where the rule's value starts, for errors
	unbounded bool
	budget    time.Duration
	killAfter time.Duration // zero with killSet: never
	killSet   bool          // false: inherited from the enclosing rule
	killLine  int           // line of kill_after, when set
}

// entry is one syscall's part of the table as written.
type entry struct {
	line int       // line of the syscall name
	own  *ruleSpec // nil: the syscall follows the default rule
	byFD map[fdkind.Kind]*ruleSpec
}

type effective struct {
	own     Rule
	byFD    map[fdkind.Kind]Rule
	min     time.Duration
	allFree bool // every rule that can apply is unbounded
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
// no fd resolution yet.
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
