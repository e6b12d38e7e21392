// Package budget holds stallmon's per-syscall timeout table: how long a
// syscall may run before the cluster heartbeat stops, and before the
// process is killed, optionally refined by the kind of fd it operates on.
package budget

import (
	"fmt"
	"time"
)

// Rule is what applies to one syscall, possibly on one kind of fd.
type Rule struct {
	// Budget is how long the syscall may run before the heartbeat stops.
	Budget time.Duration
	// KillAfter is how long it may run before the process is killed.
	// Zero means never: `kill_after: never` in the table.
	KillAfter time.Duration
	// Unbounded marks syscalls that may wait forever by design; Budget
	// and KillAfter are zero and the syscall is never acted on.
	Unbounded bool
}

// Kills reports whether a syscall under this rule can get the process killed.
func (r Rule) Kills() bool { return !r.Unbounded && r.KillAfter > 0 }

// String renders the rule as it appears in the table, for logs.
func (r Rule) String() string {
	if r.Unbounded {
		return "unbounded"
	}
	return fmt.Sprintf("{budget: %s, kill_after: %s}", formatDuration(r.Budget), formatKill(r.KillAfter))
}

// ConfigError is a mistake in a budget table or in the overrides applied to
// it: the caller's fault, so stallmon exits with status 2.
type ConfigError struct {
	// File is the table's file the mistake is in, Builtin for the
	// built-in table, or "" for a table read from bytes or an override.
	File string
	// Line is the 1-based line in the table's YAML, or 0 when the mistake
	// is not in the file (an override).
	Line int
	Msg  string
}

func (e *ConfigError) Error() string {
	msg := e.Msg
	if e.Line > 0 {
		msg = fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	switch e.File {
	case "":
		return msg
	case Builtin:
		return "built-in budget table: " + msg
	default:
		return "budget table " + e.File + ": " + msg
	}
}

func errAt(line int, format string, args ...any) *ConfigError {
	return &ConfigError{Line: line, Msg: fmt.Sprintf(format, args...)}
}
