package budget

import (
	"cmp"
	"maps"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Builtin is the origin of the built-in table's rules, as errors and
// Format name it, and the only value extends: takes.
const Builtin = "builtin"

// source is the file a rule was written in; order ranks the files as
// they were applied, so errors come in that order.
type source struct {
	name  string // "" for a table parsed from bytes alone
	order int
}

// layer is one file of a table as written: a whole table, or a part
// that extends the table before it (extends: builtin, or a drop-in).
type layer struct {
	src     *source
	extends bool
	def     *ruleSpec // nil: unchanged
	states  map[State]*ruleSpec
	entries map[string]*entry
	removes []removal
}

type layerOpts struct {
	dropUnknown bool // the built-in table: skip syscalls known rejects
	dropIn      bool // always extends; may be empty; no extends: key
}

// parseLayer reads one file; errors name it.
func parseLayer(data []byte, known func(string) bool, o layerOpts, src *source) (*layer, error) {
	l, err := readLayer(data, known, o, src)
	if err != nil {
		return nil, inFile(err, src)
	}
	return l, nil
}

func readLayer(data []byte, known func(string) bool, o layerOpts, src *source) (*layer, error) {
	l := &layer{src: src, extends: o.dropIn, entries: map[string]*entry{}, states: map[State]*ruleSpec{}}
	root, err := decodeDocument(data)
	switch {
	case err != nil:
		return nil, err
	case root == nil && o.dropIn:
		return l, nil // a drop-in with everything commented out
	case root == nil:
		return nil, errAt(1, "the budget table is empty: a default rule is required")
	}
	if err := rejectAliases(root); err != nil {
		return nil, err
	}
	if root.Kind != yaml.MappingNode {
		return nil, errAt(root.Line, "a budget table is a mapping with the keys default, states and syscalls, got %s", describe(root))
	}
	pairs, err := mappingPairs(root, "the table")
	if err != nil {
		return nil, err
	}
	var removeKey *yaml.Node
	for _, p := range pairs {
		switch p.key.Value {
		case "extends":
			if o.dropIn {
				return nil, errAt(p.key.Line, "extends: is for the main table; a drop-in always extends the table before it")
			}
			if p.val.Kind != yaml.ScalarNode || p.val.Value != Builtin {
				return nil, errAt(p.val.Line, "extends: want builtin, got %s", describe(p.val))
			}
			l.extends = true
		case "remove":
			removeKey = p.key
			if l.removes, err = parseRemove(p.val, known); err != nil {
				return nil, err
			}
		case "default":
			e, err := parseRule(p.val, "default", levelDefault)
			if err != nil {
				return nil, err
			}
			l.def = e.own
		case "states":
			if err := l.parseStates(p.val); err != nil {
				return nil, err
			}
		case "syscalls":
			if err := l.parseSyscalls(p.val, known, o.dropUnknown); err != nil {
				return nil, err
			}
		default:
			return nil, errAt(p.key.Line, "unknown key %q (want extends, default, states, syscalls or remove)", p.key.Value)
		}
	}
	if !l.extends {
		if removeKey != nil {
			return nil, errAt(removeKey.Line, "remove: needs extends: builtin; a table without it starts empty, with nothing to remove")
		}
		if l.def == nil {
			return nil, errAt(root.Line, "the default rule is missing: add default: {budget: ..., kill_after: ...} or default: unbounded, or extends: builtin to start from the built-in table")
		}
	}
	l.setSource()
	return l, nil
}

// with returns t with l applied: l's removals first, then its rules,
// each replacing the rule of the same key: the default, a state's, a
// syscall's own rule (budget and kill_after), one of its state overrides,
// one fd kind's rule or its state overrides. What l does not name stays,
// so a file that adds a by_fd rule keeps the others; removing a syscall
// and writing it in the same file replaces it whole. The result is not
// built: build checks the merged table as a whole, so no file can make a
// rule another file wrote inherit what it may not.
func (t *Table) with(l *layer) (*Table, error) {
	nt := &Table{def: t.def, states: maps.Clone(t.states), entries: maps.Clone(t.entries), overridden: t.overridden}
	if nt.states == nil {
		nt.states = map[State]*ruleSpec{}
	}
	if nt.entries == nil {
		nt.entries = map[string]*entry{}
	}
	for _, r := range l.removes {
		if r.isState {
			if _, ok := nt.states[r.state]; !ok {
				return nil, inFile(errAt(r.line, "remove: state %s has no rule of its own in the table this file extends", r.state), l.src)
			}
			delete(nt.states, r.state)
			continue
		}
		if _, ok := nt.entries[r.syscall]; !ok {
			return nil, inFile(errAt(r.line, "remove: syscall %s has no rule in the table this file extends", r.syscall), l.src)
		}
		delete(nt.entries, r.syscall)
	}
	if l.def != nil {
		if err := keepsKill(&nt.def, l.def, "the default rule", l.src); err != nil {
			return nil, err
		}
		nt.def = *l.def
	}
	for st, r := range l.states {
		if err := keepsKill(nt.states[st], r, "state "+st.String(), l.src); err != nil {
			return nil, err
		}
		nt.states[st] = keepsFilter(nt.states[st], r)
	}
	for _, name := range slices.Sorted(maps.Keys(l.entries)) {
		m, err := merge(nt.entries[name], l.entries[name], name, l.src)
		if err != nil {
			return nil, err
		}
		nt.entries[name] = m
	}
	return nt, nil
}

// merge lays entry e over old, rule by rule; neither changes.
func merge(old, e *entry, what string, src *source) (*entry, error) {
	if old == nil {
		return e, nil
	}
	m := *e
	if m.own == nil {
		m.own = old.own
	} else if err := keepsKill(old.own, e.own, what, src); err != nil {
		return nil, err
	}
	if len(old.states) > 0 {
		m.states = maps.Clone(old.states)
		for st, r := range e.states {
			if err := keepsKill(old.states[st], r, what+" in state "+st.String(), src); err != nil {
				return nil, err
			}
			m.states[st] = r
		}
	}
	if len(old.byFD) > 0 {
		m.byFD = maps.Clone(old.byFD)
		for _, k := range slices.Sorted(maps.Keys(e.byFD)) {
			ke, err := merge(old.byFD[k], e.byFD[k], what+" on "+k.String(), src)
			if err != nil {
				return nil, err
			}
			m.byFD[k] = ke
		}
	}
	return &m, nil
}

// keepsKill refuses a rule that replaces one with a kill_after of its own
// while writing none: the replacement would inherit the enclosing rule's
// kill_after instead, so a drop-in that only raises a budget could turn
// "never kill" into a kill, or bring a kill sooner. The operator says
// which they mean.
func keepsKill(old, r *ruleSpec, what string, src *source) error {
	if old == nil || !old.killSet || r.killSet || r.unbounded {
		return nil
	}
	was := "never"
	if old.killAfter != 0 {
		was = old.killAfter.String()
	}
	from := Builtin
	if old.src != nil && old.src.name != "" {
		from = old.src.name
	}
	return inFile(errAt(r.line, "%s: the rule this replaces (from %s) has kill_after %s; write kill_after here too, or it would take the enclosing rule's", what, from, was), src)
}

// keepsFilter is r laid over old, keeping old's only or skip when r
// writes neither: a drop-in that restates work_waiting to raise its
// budget must not bring back the sockets the operator left out, which
// could then be killed for. Writing `skip: []` drops the list on purpose.
func keepsFilter(old, r *ruleSpec) *ruleSpec {
	if old == nil || r.filterSet || !old.filterSet || r.unbounded {
		return r
	}
	k := *r
	k.socketFilter, k.filterSet = old.socketFilter, true
	return &k
}

// setSource marks every rule of l as written in l's file.
func (l *layer) setSource() {
	if l.def != nil {
		l.def.src = l.src
	}
	for _, s := range l.states {
		s.src = l.src
	}
	for _, e := range l.entries {
		e.setSource(l.src)
	}
}

func (e *entry) setSource(src *source) {
	e.src = src
	if e.own != nil {
		e.own.src = src
	}
	for _, s := range e.states {
		s.src = src
	}
	for _, ke := range e.byFD {
		ke.setSource(src)
	}
}

// mainTable is the table a main file gives, not yet built: the built-in
// table with the file applied when it says extends: builtin, else the
// file alone.
func mainTable(data []byte, known func(string) bool, src *source) (*Table, error) {
	l, err := parseLayer(data, known, layerOpts{}, src)
	if err != nil {
		return nil, err
	}
	base := &Table{}
	if l.extends {
		if base, err = builtinSpecs(known); err != nil {
			return nil, err
		}
	}
	return base.with(l)
}

// builtinSpecs is the built-in table, not yet built.
func builtinSpecs(known func(string) bool) (*Table, error) {
	l, err := parseLayer(defaultYAML, known, layerOpts{dropUnknown: true}, &source{name: Builtin})
	if err != nil {
		return nil, err
	}
	return (&Table{}).with(l)
}

// built computes t's effective rules, checking the whole table.
func (t *Table) built() (*Table, error) {
	if err := t.build(); err != nil {
		return nil, err
	}
	return t, nil
}

// inFile names src as the file of a *ConfigError that names none yet.
func inFile(err error, src *source) error {
	if ce, ok := err.(*ConfigError); ok && ce.File == "" && src != nil {
		ce.File = src.name
	}
	return err
}

// sortedBySource orders syscall names as their files were applied and
// written, so the first error reported is the first a reader meets.
func (t *Table) sortedBySource() []string {
	names := slices.Collect(maps.Keys(t.entries))
	slices.SortFunc(names, func(a, b string) int {
		ea, eb := t.entries[a], t.entries[b]
		return cmp.Or(cmp.Compare(ea.src.order, eb.src.order), cmp.Compare(ea.line, eb.line), cmp.Compare(a, b))
	})
	return names
}
