package budget

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stallmon/stallmon/internal/fdkind"
)

// Format writes the effective table as YAML that Parse accepts back:
// inherited kill_after values, inherited state rules and overrides are
// written out, so the output shows what actually applies to each syscall
// and state. Syscalls are sorted by name, states and fd kinds are in
// declaration order. A table read from files says after each rule where
// it came from, in a comment: "# from FILE", "# from builtin", "# from
// the default rule" for a state inherited from it.
func (t *Table) Format(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "default: %s%s\n", t.defRule, t.defComment())
	b.WriteString("states:\n")
	for _, st := range States() {
		r := t.stateRules[st].String()
		if st == WorkWaiting && !t.stateRules[st].Unbounded {
			r = strings.TrimSuffix(r, "}") + t.socketKeys() + "}"
		}
		fmt.Fprintf(&b, "  %s: %s%s\n", st, r, t.stateComment(st))
	}
	names := t.Names()
	if len(names) == 0 {
		b.WriteString("syscalls: {}\n")
	} else {
		b.WriteString("syscalls:\n")
	}
	for _, name := range names {
		e, from := t.rules[name], origins(t.entries[name], "the default rule", t.defName(nil))
		if len(e.byFD) == 0 {
			fmt.Fprintf(&b, "  %s: %s%s\n", name, flowRule(e.own, e.states), from)
			continue
		}
		fmt.Fprintf(&b, "  %s:%s\n", name, from)
		if e.own.Unbounded {
			b.WriteString("    budget: unbounded\n")
		} else {
			fmt.Fprintf(&b, "    budget: %s\n    kill_after: %s\n", formatDuration(e.own.Budget), formatKill(e.own.KillAfter))
		}
		for _, st := range States() {
			if r, ok := e.states[st]; ok {
				fmt.Fprintf(&b, "    %s: %s\n", st, r)
			}
		}
		b.WriteString("    by_fd:\n")
		for _, k := range fdkind.Kinds() {
			if r, ok := e.byFD[k]; ok {
				fmt.Fprintf(&b, "      %s: %s%s\n", k, flowRule(r, e.kindStates[k]), origins(t.entries[name].byFD[k], "syscall "+name, "syscall "+name))
			}
		}
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write budget table: %w", err)
	}
	return nil
}

func (t *Table) defComment() string {
	if t.def.src == nil || t.def.src.name == "" {
		return ""
	}
	return fromComment(t.defOrigin())
}

func (t *Table) stateComment(st State) string {
	if s, ok := t.states[st]; ok {
		return comment(s.src)
	}
	if t.defComment() == "" {
		return ""
	}
	return fromComment("the default rule")
}

// origins is the comment after an entry's line: the files its own rule
// and state overrides were written in (several, when files extended it),
// and parent when it has no own rule, so its budget is parent's, or
// killParent when its own rule takes the kill_after of the rule enclosing it.
func origins(e *entry, parent, killParent string) string {
	if e.src == nil || e.src.name == "" {
		return ""
	}
	var names []string
	add := func(s *ruleSpec) {
		if s != nil && !slices.Contains(names, s.src.name) {
			names = append(names, s.src.name)
		}
	}
	add(e.own)
	for _, st := range States() {
		add(e.states[st])
	}
	switch {
	case e.own == nil:
		names = append(names, parent)
	case !e.own.killSet && !e.own.unbounded:
		// The budget is this file's, the kill is the enclosing rule's:
		// name both, or a reader looks for the kill in the wrong file.
		names = append(names, "kill_after from "+killParent)
	}
	return fromComment(strings.Join(names, ", "))
}

// comment is the "# from FILE" after a rule written in src; none for a
// table read from bytes alone.
func comment(src *source) string {
	if src == nil || src.name == "" {
		return ""
	}
	return fromComment(src.name)
}

// fromComment quotes an origin that would end the comment early, so the
// output still parses.
func fromComment(origin string) string {
	if strings.ContainsAny(origin, "\n\r") {
		origin = strconv.Quote(origin)
	}
	return "  # from " + origin
}

// flowRule writes a rule and its state overrides on one line, the way
// short rules are written by hand.
func flowRule(r Rule, states map[State]Rule) string {
	if len(states) == 0 {
		return r.String()
	}
	var b strings.Builder
	if r.Unbounded {
		b.WriteString("{budget: unbounded")
	} else {
		fmt.Fprintf(&b, "{budget: %s, kill_after: %s", formatDuration(r.Budget), formatKill(r.KillAfter))
	}
	for _, st := range States() {
		if sr, ok := states[st]; ok {
			fmt.Fprintf(&b, ", %s: %s", st, sr)
		}
	}
	b.WriteString("}")
	return b.String()
}

// formatDuration drops the zero units time.Duration.String keeps
// ("2m0s" -> "2m", "1h0m0s" -> "1h") so the output reads like the input,
// and writes "us" for "µs" to keep tables ASCII.
func formatDuration(d time.Duration) string {
	s := strings.Replace(d.String(), "µs", "us", 1)
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func formatKill(d time.Duration) string {
	if d == 0 {
		return "never"
	}
	return formatDuration(d)
}
