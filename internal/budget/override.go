package budget

import (
	"strings"
	"time"
)

// WithDefaults returns a copy of t with the default rule's budget and/or
// kill_after replaced (nil leaves a value alone), for --budget and
// --kill-after. A killAfter of zero means never kill.
//
// Only the default rule changes. Syscall, fd-kind and state rules that
// give their own values keep them; rules that omit kill_after inherit it,
// and so follow the new default kill_after, as do syscalls that are not
// listed or list only by_fd rules or state overrides, and states the
// table leaves out. An override that leaves an inheriting rule with a
// kill_after below its budget is a *ConfigError naming that rule's line.
func (t *Table) WithDefaults(budget, killAfter *time.Duration) (*Table, error) {
	d := t.def
	if budget != nil {
		if *budget <= 0 {
			return nil, errAt(0, "default budget override must be positive, got %s", *budget)
		}
		if d.unbounded && killAfter == nil {
			return nil, errAt(0, "the default rule is unbounded: overriding its budget needs a kill_after override too")
		}
		d.unbounded, d.budget = false, *budget
	}
	if killAfter != nil {
		if *killAfter < 0 {
			return nil, errAt(0, "default kill_after override must be positive, or zero for never, got %s", *killAfter)
		}
		if d.unbounded {
			return nil, errAt(0, "the default rule is unbounded: overriding its kill_after needs a budget override too")
		}
		d.killAfter, d.killSet = *killAfter, true
	}
	if d.killAfter > 0 && d.killAfter < d.budget {
		return nil, errAt(0, "overridden default rule: kill_after %s is below budget %s", formatDuration(d.killAfter), formatDuration(d.budget))
	}
	var by []string
	if budget != nil {
		by = append(by, "--budget")
	}
	if killAfter != nil {
		by = append(by, "--kill-after")
	}
	nt := &Table{def: d, states: t.states, entries: t.entries, overridden: strings.Join(by, " and ")}
	if err := nt.build(); err != nil {
		return nil, err
	}
	return nt, nil
}
