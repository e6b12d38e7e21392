package pipeline

import (
	"fmt"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/tracker"
)

// KnownSyscall says whether a thread's syscall can be judged by name on
// this machine's architecture, in any of its ABIs, for the tables: a rule
// for aarch32's poll must hold on arm64, whose own table has no poll.
func KnownSyscall(name string) bool { return tracker.JudgedSyscall(name) }

// LoadTable returns the effective table; every error is the user's.
func LoadTable(c Table) (*budget.Table, error) {
	var (
		t   *budget.Table
		err error
	)
	switch {
	case c.Path != "":
		t, err = budget.Load(c.Path, KnownSyscall)
	case c.DefaultPath != "":
		t, err = budget.LoadIfPresent(c.DefaultPath, KnownSyscall)
	default:
		t, err = budget.Default(KnownSyscall)
	}
	if err != nil {
		return nil, configErr(fmt.Errorf("timeout table: %w", err))
	}
	if c.Budget == nil && c.KillAfter == nil {
		return t, nil
	}
	if t, err = t.WithDefaults(c.Budget, c.KillAfter); err != nil {
		return nil, configErr(fmt.Errorf("timeout table: %w", err))
	}
	return t, nil
}
