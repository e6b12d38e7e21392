package budget

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/stallmon/stallmon/fdkind"
)

// Format writes the effective table as YAML that Parse accepts back:
// inherited kill_after values and overrides are written out, so the output
// shows what actually applies to each syscall. Syscalls are sorted by name.
func (t *Table) Format(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "default: %s\n", t.defRule)
	names := t.Names()
	if len(names) == 0 {
		b.WriteString("syscalls: {}\n")
	} else {
		b.WriteString("syscalls:\n")
	}
	for _, name := range names {
		e := t.rules[name]
		if len(e.byFD) == 0 {
			fmt.Fprintf(&b, "  %s: %s\n", name, e.own)
			continue
		}
		fmt.Fprintf(&b, "  %s:\n", name)
		if e.own.Unbounded {
			b.WriteString("    budget: unbounded\n")
		} else {
			fmt.Fprintf(&b, "    budget: %s\n    kill_after: %s\n", formatDuration(e.own.Budget), formatKill(e.own.KillAfter))
		}
		b.WriteString("    by_fd:\n")
		for _, k := range fdkind.Kinds() {
			if r, ok := e.byFD[k]; ok {
				fmt.Fprintf(&b, "      %s: %s\n", k, r)
			}
		}
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write budget table: %w", err)
	}
	return nil
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
