package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/tracker"
)

// tableOptions are the flags that shape the timeout table, shared by
// attach and budgets so both always agree on the effective table.
type tableOptions struct {
	config    string
	budget    time.Duration
	killAfter time.Duration
	flags     *pflag.FlagSet
}

func (o *tableOptions) register(f *pflag.FlagSet) {
	o.flags = f
	f.StringVar(&o.config, "config", "", "YAML timeout table (default: the built-in table, see 'stallmon budgets')")
	f.DurationVar(&o.budget, "budget", 0, "override the default rule's budget (syscalls without a rule of their own)")
	f.DurationVar(&o.killAfter, "kill-after", 0, "override the default rule's kill_after; 0 means never kill")
}

func knownSyscall(name string) bool {
	_, ok := tracker.SyscallNr(name)
	return ok
}

// load returns the effective table; every error is the user's to fix.
func (o *tableOptions) load() (*budget.Table, error) {
	var (
		t   *budget.Table
		err error
	)
	if o.config != "" {
		t, err = budget.Load(o.config, knownSyscall)
	} else {
		t, err = budget.Default(knownSyscall)
	}
	if err != nil {
		return nil, fmt.Errorf("timeout table: %w", err)
	}
	var b, k *time.Duration
	if o.flags.Changed("budget") {
		b = &o.budget
	}
	if o.flags.Changed("kill-after") {
		k = &o.killAfter
	}
	if b == nil && k == nil {
		return t, nil
	}
	t, err = t.WithDefaults(b, k)
	if err != nil {
		return nil, fmt.Errorf("timeout table: %w", err)
	}
	return t, nil
}
