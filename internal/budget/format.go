package budget

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/stallmon/stallmon/internal/fdkind"
)

// Format writes the effective table as YAML that Parse accepts back:
// inherited kill_after values, inherited state rules and overrides are
// written out, so the output shows what actually applies to each syscall
// and state. Syscalls are sorted by name, states and fd kinds are in
// declaration order.
func (t *Table) Format(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "default: %s\n", t.defRule)
	b.WriteString("states:\n")
	for _, st := range States() {
		fmt.Fprintf(&b, "  %s: %s\n", st, t.stateRules[st])
	}
	names := t.Names()
	if len(names) == 0 {
		b.WriteString("syscalls: {}\n")
	} else {
		b.WriteString("syscalls:\n")
	}
	for _, name := range names {
		e := t.rules[name]
		if len(e.byFD) == 0 {
			fmt.Fprintf(&b, "  %s: %s\n", name, flowRule(e.own, e.states))
			continue
		}
		fmt.Fprintf(&b, "  %s:\n", name)
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
				fmt.Fprintf(&b, "      %s: %s\n", k, flowRule(r, e.kindStates[k]))
			}
		}
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write budget table: %w", err)
	}
	return nil
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
