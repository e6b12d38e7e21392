package pipeline

import (
	"fmt"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/tracker"
)

// KnownSyscall says whether name is a syscall of this machine's
// architecture, for the tables.
func KnownSyscall(name string) bool {
	_, ok := tracker.SyscallNr(name)
	return ok
}

// LoadTable returns the effective table; every error is the user's.
func LoadTable(c Table) (*budget.Table, error) {
	var (
		t   *budget.Table
		err error
	)
	if c.Path != "" {
		t, err = budget.Load(c.Path, KnownSyscall)
	} else {
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
