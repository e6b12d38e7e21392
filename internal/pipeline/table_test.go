package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/fdkind"
)

// TestLoadTableSources: --config wins; without it the default path is
// read when a table or drop-ins are there, the built-in table when
// nothing is; the overrides apply on top of whichever it was.
func TestLoadTableSources(t *testing.T) {
	dir := t.TempDir()
	write := func(path, text string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	present := write(filepath.Join(dir, "etc", "budgets.yaml"), "extends: builtin\nsyscalls:\n  fsync: {budget: 50s, kill_after: 200s}\n")
	write(filepath.Join(dir, "etc", "budgets.d", "10-db.yaml"), "syscalls:\n  msync: {budget: 40s, kill_after: 200s}\n")
	onlyDropIns := filepath.Join(dir, "dropins", "budgets.yaml")
	write(filepath.Join(dir, "dropins", "budgets.d", "10-db.yaml"), "syscalls:\n  msync: {budget: 40s, kill_after: 200s}\n")
	config := write(filepath.Join(dir, "config.yaml"), "default: {budget: 2s, kill_after: 20s}\n")
	absent := filepath.Join(dir, "nothing", "budgets.yaml")

	s := time.Second
	rule := func(b, k time.Duration) budget.Rule { return budget.Rule{Budget: b * s, KillAfter: k * s} }
	d := 7 * s
	cases := []struct {
		name         string
		table        Table
		fsync, msync budget.Rule
	}{
		{"default path present, with its drop-ins", Table{DefaultPath: present}, rule(50, 200), rule(40, 200)},
		{"default path absent", Table{DefaultPath: absent}, rule(30, 120), rule(30, 120)},
		{"default path absent, its drop-ins present", Table{DefaultPath: onlyDropIns}, rule(30, 120), rule(40, 200)},
		{"--config wins over the default path", Table{Path: config, DefaultPath: present}, rule(2, 20), rule(2, 20)},
		{"no default path: the built-in table", Table{}, rule(30, 120), rule(30, 120)},
		{"overrides apply on the default path's table", Table{DefaultPath: present, Budget: &d}, rule(50, 200), rule(40, 200)},
		{"overrides apply on --config's table", Table{Path: config, Budget: &d}, rule(7, 20), rule(7, 20)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb, err := LoadTable(c.table)
			if err != nil {
				t.Fatal(err)
			}
			if got := tb.Lookup("fsync", fdkind.None); got != c.fsync {
				t.Errorf("fsync = %v, want %v", got, c.fsync)
			}
			if got := tb.Lookup("msync", fdkind.None); got != c.msync {
				t.Errorf("msync = %v, want %v", got, c.msync)
			}
			if c.table.Budget != nil && tb.DefaultRule().Budget != *c.table.Budget {
				t.Errorf("default = %v, want the --budget override %v", tb.DefaultRule(), *c.table.Budget)
			}
		})
	}

	// A bad drop-in is the user's mistake, not a reason to fall back.
	write(filepath.Join(dir, "etc", "budgets.d", "20-bad.yaml"), "syscalls:\n  fsyncc: unbounded\n")
	_, err := LoadTable(Table{DefaultPath: present})
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Errorf("bad drop-in under the default path: %v, want a ConfigError", err)
	}
}
