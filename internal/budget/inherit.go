package budget

import (
	"errors"
	"time"

	"github.com/stallmon/stallmon/internal/fdkind"
)

// build computes the effective rules from def, states and entries. It
// runs again after every override because a rule without kill_after takes
// it from the enclosing rule, and the default's kill_after may have
// changed; so do states left out of the table.
func (t *Table) build() error {
	t.defRule = t.def.rule(Rule{})
	// Both halves are checked so that the error reported is the first in
	// the file, whichever section comes first.
	return firstInFile(t.buildStates(), t.buildSyscalls())
}

func (t *Table) buildStates() error {
	var first error
	t.bySocket, t.socketFilter = Listeners, SocketFilter{}
	if s, ok := t.states[WorkWaiting]; ok {
		t.bySocket, t.socketFilter = s.bySocket, s.socketFilter
	}
	for _, st := range States() {
		s, ok := t.states[st]
		if !ok {
			t.stateRules[st] = inheritedState(t.defRule, st)
			continue
		}
		if err := s.checkInherited("states: "+st.String(), t.defRule, t.defName(s.src)); err != nil {
			first = firstInFile(first, inFile(err, s.src))
			continue
		}
		t.stateRules[st] = s.rule(t.defRule)
	}
	return first
}

// inheritedState is the rule for a state the table leaves out: the
// default's budget, and its kill_after only where killing is ours to do;
// nothing for a state judged only when the table asks (work_waiting).
func inheritedState(def Rule, st State) Rule {
	if def.Unbounded || st.offByDefault() {
		return Rule{Unbounded: true}
	}
	r := Rule{Budget: def.Budget}
	if st.killsByDefault() {
		r.KillAfter = def.KillAfter
	}
	return r
}

func (t *Table) buildSyscalls() error {
	names := t.sortedBySource()
	t.rules = make(map[string]*effective, len(names))
	for _, name := range names {
		eff, err := t.resolve(name, t.entries[name])
		if err != nil {
			return inFile(err, t.entries[name].src)
		}
		t.rules[name] = eff
	}
	return nil
}

func (t *Table) resolve(name string, e *entry) (*effective, error) {
	what := "syscall " + name
	defName := t.defName(e.src)
	eff := &effective{own: t.defRule}
	if e.own != nil {
		if err := e.own.checkInherited(what, t.defRule, defName); err != nil {
			return nil, err
		}
		eff.own = e.own.rule(t.defRule)
	}
	// A rule inside this entry without kill_after takes it from the
	// nearest bounded rule around it: the syscall's, else the default.
	parent, parentName := eff.own, what
	if e.own == nil || e.own.unbounded {
		parent, parentName = t.defRule, defName
	}
	var err error
	if eff.states, err = resolveStates(e.states, what, parent, parentName); err != nil {
		return nil, err
	}
	if len(e.byFD) > 0 {
		eff.byFD = make(map[fdkind.Kind]Rule, len(e.byFD))
	}
	for _, k := range fdkind.Kinds() {
		ke, ok := e.byFD[k]
		if !ok {
			continue
		}
		kwhat := what + ", by_fd " + k.String()
		kr, kparent, kparentName := eff.own, parent, parentName
		if ke.own != nil {
			if err := ke.own.checkInherited(kwhat, parent, parentName); err != nil {
				return nil, err
			}
			kr = ke.own.rule(parent)
			if !kr.Unbounded {
				kparent, kparentName = kr, kwhat
			}
		}
		eff.byFD[k] = kr
		states, err := resolveStates(ke.states, kwhat, kparent, kparentName)
		if err != nil {
			return nil, err
		}
		if states != nil {
			if eff.kindStates == nil {
				eff.kindStates = map[fdkind.Kind]map[State]Rule{}
			}
			eff.kindStates[k] = states
		}
	}
	eff.min, eff.allFree = minBudget(eff)
	return eff, nil
}

// resolveStates resolves a syscall's or kind's state overrides; nil when
// there are none.
func resolveStates(specs map[State]*ruleSpec, what string, parent Rule, parentName string) (map[State]Rule, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	rules := make(map[State]Rule, len(specs))
	for _, st := range States() {
		s, ok := specs[st]
		if !ok {
			continue
		}
		if err := s.checkInherited(what+", "+st.String(), parent, parentName); err != nil {
			return nil, err
		}
		rules[st] = s.rule(parent)
	}
	return rules, nil
}

// firstInFile returns whichever error names the earlier line; a nil error
// loses to any other.
func firstInFile(a, b error) error {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	if lineOf(b) < lineOf(a) {
		return b
	}
	return a
}

func lineOf(err error) int {
	var ce *ConfigError
	if errors.As(err, &ce) {
		return ce.Line
	}
	return 0
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
	return inFile(s.inheritError(what, parent, parentName), s.src)
}

func (s *ruleSpec) inheritError(what string, parent Rule, parentName string) error {
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

// defName names the default rule in an error about a rule written in
// src: with the file it came from when that is another file, since a
// drop-in's default changes what every other file's rules inherit.
func (t *Table) defName(src *source) string {
	if t.def.src == nil || t.def.src.name == "" || (t.def.src == src && t.overridden == "") {
		return "the default rule"
	}
	return "the default rule (from " + t.defOrigin() + ")"
}

// defOrigin says where the default rule came from: its file, and the
// flags that overrode it.
func (t *Table) defOrigin() string {
	if t.overridden == "" {
		return t.def.src.name
	}
	return t.def.src.name + ", then " + t.overridden
}
