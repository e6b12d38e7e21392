package pipeline

// The flags apply after every file, and a bad table at the default path
// stops stallmon rather than falling back to the built-in one.

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/fdkind"
)

// TestFlagsApplyAfterDropIns: --budget and --kill-after override a
// default a drop-in set (TestLoadTableSources' override case cannot tell
// the order: its drop-in sets no default).
func TestFlagsApplyAfterDropIns(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "budgets.yaml")
	if err := os.WriteFile(main, []byte("extends: builtin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "budgets.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "budgets.d", "10-a.yaml"), []byte("default: {budget: 5s, kill_after: 30s}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, never := 2*time.Second, time.Duration(0)
	for _, c := range []Table{{Path: main, Budget: &b, KillAfter: &never}, {DefaultPath: main, Budget: &b, KillAfter: &never}} {
		tb, err := LoadTable(c)
		if err != nil {
			t.Fatal(err)
		}
		want := budget.Rule{Budget: b}
		if got := tb.DefaultRule(); got != want {
			t.Errorf("%+v: default = %v, want %v (flags after the drop-in)", c, got, want)
		}
		if got := tb.Lookup("read", fdkind.Regular); got != want {
			t.Errorf("%+v: read on a file = %v, want %v", c, got, want)
		}
	}
}

// TestBadDefaultTableFailsClosed: a wrong or unreadable table at the
// default path is a ConfigError naming it, never the built-in table.
func TestBadDefaultTableFailsClosed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "budgets.yaml")
	if err := os.WriteFile(path, []byte("extends: builtin\nsyscalls:\n  fsyncc: unbounded\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadTable(Table{DefaultPath: path})
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), path+": line 3") {
		t.Errorf("bad table at the default path: %v, want a ConfigError naming %s line 3", err, path)
	}
	if os.Getuid() == 0 {
		return // root reads a 0o000 file
	}
	if err := os.WriteFile(path, []byte("extends: builtin\n"), 0o000); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTable(Table{DefaultPath: path}); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("unreadable table at the default path: %v, want permission denied", err)
	}
}
