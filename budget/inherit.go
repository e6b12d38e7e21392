package budget

import (
	"cmp"
	"slices"
	"time"

	"github.com/stallmon/stallmon/fdkind"
)

// build computes the effective rules from def and entries. It runs again
// after every override because a rule without kill_after takes it from the
// enclosing rule, and the default's kill_after may have changed.
func (t *Table) build() error {
	t.defRule = t.def.rule(Rule{})
	names := make([]string, 0, len(t.entries))
	for n := range t.entries {
		names = append(names, n)
	}
	// File order, so the first error reported is the first in the file.
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Compare(t.entries[a].line, t.entries[b].line)
	})
	t.rules = make(map[string]*effective, len(names))
	for _, name := range names {
		e := t.entries[name]
		eff := &effective{own: t.defRule}
		if e.own != nil {
			if err := e.own.checkInherited("syscall "+name, t.defRule, "the default rule"); err != nil {
				return err
			}
			eff.own = e.own.rule(t.defRule)
		}
		// A kind rule without kill_after takes it from the nearest
		// bounded rule around it: the syscall's, else the default.
		parent, parentName := eff.own, "syscall "+name
		if e.own == nil || e.own.unbounded {
			parent, parentName = t.defRule, "the default rule"
		}
		if len(e.byFD) > 0 {
			eff.byFD = make(map[fdkind.Kind]Rule, len(e.byFD))
		}
		for _, k := range fdkind.Kinds() {
			s, ok := e.byFD[k]
			if !ok {
				continue
			}
			if err := s.checkInherited("syscall "+name+", by_fd "+k.String(), parent, parentName); err != nil {
				return err
			}
			eff.byFD[k] = s.rule(parent)
		}
		eff.min, eff.allFree = minBudget(eff)
		t.rules[name] = eff
	}
	return nil
}

// rule resolves s against the rule it inherits kill_after from.
func (s *ruleSpec) rule(parent Rule) Rule {
	if s.unbounded {
		return Rule{Unbounded: true}
	}
	r := Rule{Budget: s.budget, KillAfter: s.killAfter}
	if !s.killSet {
		r.KillAfter = parent.KillAfter
	}
	return r
}

// checkInherited rejects a rule whose inherited kill_after cannot work:
// there is none to inherit, or it is below the rule's own budget (the
// process would be killed before the heartbeat ever stopped).
func (s *ruleSpec) checkInherited(what string, parent Rule, parentName string) error {
	if s.unbounded || s.killSet {
		return nil
	}
	if parent.Unbounded {
		return errAt(s.line, "%s: kill_after is missing and %s is unbounded, so there is none to inherit; give a duration or never", what, parentName)
	}
	if parent.KillAfter > 0 && parent.KillAfter < s.budget {
		return errAt(s.line, "%s: budget %s is above the kill_after %s it inherits from %s; give it its own kill_after",
			what, formatDuration(s.budget), formatDuration(parent.KillAfter), parentName)
	}
	return nil
}

func minBudget(e *effective) (lowest time.Duration, allFree bool) {
	// The syscall's own rule can always apply: to fd kinds without a rule
	// and to None.
	allFree = e.own.Unbounded
	lowest = e.own.Budget
	for _, r := range e.byFD {
		if r.Unbounded {
			continue
		}
		if allFree || r.Budget < lowest {
			lowest = r.Budget
		}
		allFree = false
	}
	return lowest, allFree
}
