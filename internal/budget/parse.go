package budget

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/stallmon/stallmon/internal/fdkind"
)

// Parse reads a budget table (format: docs/budgets.md). known reports
// whether a syscall name exists on the running architecture, so that a
// misspelt name is an error instead of a rule that never matches; nil
// accepts every well-formed name. A table that says extends: builtin
// starts from the built-in table. Mistakes in the table are *ConfigError.
func Parse(data []byte, known func(name string) bool) (*Table, error) {
	t, err := mainTable(data, known, &source{order: 1})
	if err != nil {
		return nil, err
	}
	return t.built()
}

// level says where a rule sits, which decides the keys it may have and
// whether it may leave kill_after to be inherited.
type level int

const (
	levelDefault level = iota
	levelState         // in states:, or a syscall's or kind's state override
	levelSyscall
	levelKind
)

// hasStates reports whether rules at this level may override the
// per-syscall state rules.
func (l level) hasStates() bool { return l == levelSyscall || l == levelKind }

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// decodeDocument returns the document's root node, nil for an empty
// document (nothing, or only comments).
func decodeDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(err)
		}
		return nil, errAt(extra.Line, "a budget table is a single YAML document")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// yamlError turns the YAML library's "yaml: line N: msg" into a
// ConfigError so that syntax errors carry their line like the rest.
func yamlError(err error) error {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		if line, convErr := strconv.Atoi(m[1]); convErr == nil {
			return errAt(line, "invalid YAML: %s", m[2])
		}
	}
	return &ConfigError{Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
}

// rejectAliases refuses anchors' aliases: a table is short enough to
// write out, and aliases would let one rule silently follow another.
func rejectAliases(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode {
		return errAt(n.Line, "aliases (*%s) are not supported: write the rule out", n.Value)
	}
	for _, c := range n.Content {
		if err := rejectAliases(c); err != nil {
			return err
		}
	}
	return nil
}

type pair struct{ key, val *yaml.Node }

// mappingPairs returns n's key/value pairs, refusing non-scalar and
// duplicate keys: the YAML library keeps duplicates in a Node, and the
// last one silently winning would hide a mistake.
func mappingPairs(n *yaml.Node, what string) ([]pair, error) {
	if n.Kind != yaml.MappingNode {
		return nil, errAt(n.Line, "%s: want a mapping, got %s", what, describe(n))
	}
	seen := make(map[string]int, len(n.Content)/2)
	pairs := make([]pair, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, errAt(k.Line, "%s: keys must be plain names, got %s", what, describe(k))
		}
		if first, dup := seen[k.Value]; dup {
			return nil, errAt(k.Line, "%s: duplicate key %q (first at line %d)", what, k.Value, first)
		}
		seen[k.Value] = k.Line
		pairs = append(pairs, pair{k, v})
	}
	return pairs, nil
}

func (l *layer) parseSyscalls(n *yaml.Node, known func(string) bool, dropUnknown bool) error {
	if isNull(n) {
		return nil // "syscalls:" with everything commented out
	}
	pairs, err := mappingPairs(n, "syscalls")
	if err != nil {
		return err
	}
	for _, p := range pairs {
		name := p.key.Value
		if !validName(name) {
			return errAt(p.key.Line, "invalid syscall name %q", name)
		}
		missing := known != nil && !known(name)
		if missing && !dropUnknown {
			return errAt(p.key.Line, "unknown syscall %q", name)
		}
		// A skipped entry is still checked, so the built-in table cannot
		// hide a mistake in a rule for another architecture.
		e, err := parseRule(p.val, "syscall "+name, levelSyscall)
		if err != nil {
			return err
		}
		if !missing {
			e.line = p.key.Line
			l.entries[name] = e
		}
	}
	return nil
}

// validName keeps names to what syscall tables use, which also makes them
// safe to print back unquoted.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// parseStates reads the top-level states section: one plain rule per
// state, each state at most once.
func (l *layer) parseStates(n *yaml.Node) error {
	if isNull(n) {
		return nil // "states:" with everything commented out
	}
	pairs, err := mappingPairs(n, "states")
	if err != nil {
		return err
	}
	for _, p := range pairs {
		st, err := ParseState(p.key.Value)
		if err != nil {
			return errAt(p.key.Line, "states: unknown state %q (want %s)", p.key.Value, stateList())
		}
		what, val := "states: "+st.String(), p.val
		var keys socketKeys
		if st == WorkWaiting {
			if val, keys, err = takeSocketKeys(val, what); err != nil {
				return err
			}
		}
		e, err := parseRule(val, what, levelState)
		if err != nil {
			return err
		}
		if (keys.by != Listeners || !keys.filter.IsZero()) && e.own.unbounded {
			return errAt(p.key.Line, "%s: by_socket, only and skip need a budget: an unbounded rule judges no socket", what)
		}
		e.own.bySocket, e.own.socketFilter, e.own.filterSet = keys.by, keys.filter, keys.filterSet
		l.states[st] = e.own
	}
	return nil
}

// parseRule reads one rule into an entry. At the syscall and kind levels
// the entry may also hold state overrides, and at the syscall level by_fd
// rules; its own rule is then nil when the mapping gives no budget: the
// syscall follows the default, a kind its syscall's rule. At the other
// levels the entry's own rule is always set.
func parseRule(n *yaml.Node, what string, lvl level) (*entry, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value == "unbounded" {
			return &entry{line: n.Line, own: &ruleSpec{line: n.Line, unbounded: true}}, nil
		}
		return nil, errAt(n.Line, "%s: want unbounded or a mapping like {budget: 5s, kill_after: 60s}, got %s", what, describe(n))
	case yaml.MappingNode:
	default:
		return nil, errAt(n.Line, "%s: want unbounded or a mapping like {budget: 5s, kill_after: 60s}, got %s", what, describe(n))
	}
	pairs, err := mappingPairs(n, what)
	if err != nil {
		return nil, err
	}
	var budgetNode, killNode, byFDNode *yaml.Node
	var statePairs []pair
	for _, p := range pairs {
		switch p.key.Value {
		case "budget":
			budgetNode = p.val
		case "kill_after":
			killNode = p.val
		case "by_fd":
			if lvl != levelSyscall {
				return nil, errKey(p.key, what, lvl)
			}
			byFDNode = p.val
		default:
			st, err := ParseState(p.key.Value)
			switch {
			case err != nil:
				return nil, errKey(p.key, what, lvl)
			case !lvl.hasStates():
				return nil, errStateKey(p.key, what, lvl)
			case !st.PerSyscall():
				return nil, errAt(p.key.Line, "%s: %s is judged %s, not per syscall; set it under states:", what, st, st.judgedAs())
			}
			statePairs = append(statePairs, p)
		}
	}

	s := &ruleSpec{line: n.Line}
	if budgetNode != nil {
		if err := parseBudget(budgetNode, what, s); err != nil {
			return nil, err
		}
	}
	if killNode != nil {
		if err := parseKill(killNode, what, s); err != nil {
			return nil, err
		}
	}
	switch {
	case budgetNode == nil && killNode == nil && (byFDNode != nil || len(statePairs) > 0):
		s = nil // only refinements: the rule around this one applies
	case budgetNode == nil && killNode != nil:
		return nil, errAt(killNode.Line, "%s: kill_after needs a budget", what)
	case budgetNode == nil:
		return nil, errAt(n.Line, "%s: budget is missing", what)
	case s.unbounded && killNode != nil:
		return nil, errAt(killNode.Line, "%s: an unbounded rule cannot have a kill_after", what)
	case lvl == levelDefault && !s.unbounded && !s.killSet:
		return nil, errAt(n.Line, "default: kill_after is missing (a duration, or never); the default has no rule to inherit it from")
	case s.killSet && s.killAfter > 0 && s.killAfter < s.budget:
		return nil, errAt(s.killLine, "%s: kill_after %s is below budget %s", what, formatDuration(s.killAfter), formatDuration(s.budget))
	}

	e := &entry{line: n.Line, own: s}
	for _, p := range statePairs {
		st, _ := ParseState(p.key.Value)
		se, err := parseRule(p.val, what+", "+st.String(), levelState)
		if err != nil {
			return nil, err
		}
		if e.states == nil {
			e.states = map[State]*ruleSpec{}
		}
		e.states[st] = se.own
	}
	if byFDNode != nil {
		if e.byFD, err = parseByFD(byFDNode, what); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// errKey reports a key that has no meaning at lvl, listing those that do.
func errKey(k *yaml.Node, what string, lvl level) *ConfigError {
	switch {
	case k.Value == "by_socket" || k.Value == "only" || k.Value == "skip":
		return errAt(k.Line, "%s: %s is for the work_waiting rule only (states: work_waiting)", what, k.Value)
	case k.Value == "by_fd" && lvl == levelState:
		return errAt(k.Line, "%s: by_fd is for syscall rules; a state rule has only budget and kill_after", what)
	case lvl == levelSyscall:
		return errAt(k.Line, "%s: unknown key %q (want budget, kill_after, by_fd, uninterruptible or running)", what, k.Value)
	case lvl == levelKind:
		return errAt(k.Line, "%s: unknown key %q (want budget, kill_after, uninterruptible or running)", what, k.Value)
	default:
		return errAt(k.Line, "%s: unknown key %q (want budget or kill_after)", what, k.Value)
	}
}

// errStateKey reports a state name where no state rule can go.
func errStateKey(k *yaml.Node, what string, lvl level) *ConfigError {
	if lvl == levelDefault {
		return errAt(k.Line, "default: %s cannot be set in the default rule; set it under states:", k.Value)
	}
	return errAt(k.Line, "%s: a state rule cannot hold a rule for %s; it has only budget and kill_after", what, k.Value)
}

func parseByFD(n *yaml.Node, what string) (map[fdkind.Kind]*entry, error) {
	pairs, err := mappingPairs(n, what+": by_fd")
	if err != nil {
		return nil, err
	}
	byFD := make(map[fdkind.Kind]*entry, len(pairs))
	for _, p := range pairs {
		k, err := fdkind.ParseKind(p.key.Value)
		if err != nil {
			return nil, errAt(p.key.Line, "%s: by_fd: unknown fd kind %q (want regular, socket, pipe, tty, device or other)", what, p.key.Value)
		}
		if k == fdkind.None {
			return nil, errAt(p.key.Line, "%s: by_fd: none cannot have a rule: the syscall's own rule is what applies when no fd kind is known", what)
		}
		e, err := parseRule(p.val, what+", by_fd "+k.String(), levelKind)
		if err != nil {
			return nil, err
		}
		byFD[k] = e
	}
	return byFD, nil
}

func parseBudget(n *yaml.Node, what string, s *ruleSpec) error {
	if n.Kind != yaml.ScalarNode {
		return errAt(n.Line, "%s: budget: want a duration or unbounded, got %s", what, describe(n))
	}
	if n.Value == "unbounded" {
		s.unbounded = true
		return nil
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return errAt(n.Line, "%s: budget %q is not a duration (like 500ms, 5s, 2m) or unbounded", what, n.Value)
	}
	// A zero budget would stop the heartbeat on every call.
	if d <= 0 {
		return errAt(n.Line, "%s: budget must be positive, got %s", what, n.Value)
	}
	s.budget = d
	return nil
}

func parseKill(n *yaml.Node, what string, s *ruleSpec) error {
	s.killSet, s.killLine = true, n.Line
	if n.Kind != yaml.ScalarNode {
		return errAt(n.Line, "%s: kill_after: want a duration or never, got %s", what, describe(n))
	}
	if n.Value == "never" {
		return nil
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return errAt(n.Line, "%s: kill_after %q is not a duration (like 30s, 2m) or never", what, n.Value)
	}
	if d <= 0 {
		return errAt(n.Line, "%s: kill_after must be positive (or never), got %s", what, n.Value)
	}
	s.killAfter = d
	return nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names a node for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	default:
		return "an unexpected node"
	}
}
