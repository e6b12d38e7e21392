package budget

// Ways a drop-in could weaken or drop an operator's rule without a word,
// or stop stallmon over a file nobody meant as a drop-in.

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stallmon/stallmon/internal/fdkind"
)

// A later file writing only a budget for a rule an earlier file gave a
// kill_after would replace that kill_after with the default's: a
// never-kill rule would start killing, and raising a budget would bring
// the kill closer. Such a file is refused, asking for the kill_after.
func TestBudgetOnlyRuleOverKillAfterRefused(t *testing.T) {
	known := knownIn(amd64Names(t))
	cases := []struct {
		name, main, dropIn string
		got                func(*Table) Rule
		earlier            Rule // the rule the drop-in changes, as before it
	}{
		{"a debugger's stop (stopped: never) becomes a kill after 60s",
			"extends: builtin\n", "states:\n  stopped: {budget: 10s}\n",
			func(tb *Table) Rule { return tb.ProcessRule(Stopped) }, Rule{Budget: 3 * s}},
		{"raising fsync's budget moves its kill from 2m to 1m",
			"extends: builtin\n", "syscalls:\n  fsync: {budget: 60s}\n",
			func(tb *Table) Rule { return tb.Lookup("fsync", fdkind.None) }, Rule{Budget: 30 * s, KillAfter: 120 * s}},
		{"the main table's kill_after: never is lost to a drop-in's budget",
			"extends: builtin\nsyscalls:\n  openat: {budget: 5s, kill_after: never}\n", "syscalls:\n  openat: {budget: 10s}\n",
			func(tb *Table) Rule { return tb.Lookup("openat", fdkind.None) }, Rule{Budget: 5 * s}},
		{"a by_fd kind's kill_after: never is lost to a drop-in's budget",
			"extends: builtin\nsyscalls:\n  write: {by_fd: {device: {budget: 20s, kill_after: never}}}\n", "syscalls:\n  write: {by_fd: {device: {budget: 30s}}}\n",
			func(tb *Table) Rule { return tb.Lookup("write", fdkind.Device) }, Rule{Budget: 20 * s}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := tableDir(t, c.main, map[string]string{"10-a.yaml": c.dropIn})
			tb, err := Load(path, known)
			if err == nil {
				t.Fatalf("drop-in %q over %v loads, giving %v: want an error asking for its kill_after", c.dropIn, c.earlier, c.got(tb))
			}
			if !strings.Contains(err.Error(), "write kill_after here too") || !strings.Contains(err.Error(), "10-a.yaml") {
				t.Errorf("error %q does not name the drop-in and ask for its kill_after", err)
			}
		})
	}
}

// A drop-in named *.YAML is refused as *.yml is: skipped, the operator's
// tightening would never apply.
func TestUppercaseDropInRefused(t *testing.T) {
	path := tableDir(t, "extends: builtin\n", map[string]string{"10-a.YAML": "syscalls:\n  fsync: {budget: 1s, kill_after: 2s}\n"})
	tb, err := Load(path, knownIn(amd64Names(t)))
	if err == nil {
		t.Fatalf("budgets.d/10-a.YAML loads, fsync = %v: want an error naming it", tb.Lookup("fsync", fdkind.None))
	}
	if !strings.Contains(err.Error(), "10-a.YAML") {
		t.Errorf("error %q does not name the file", err)
	}
}

// A hidden file ending in .yaml is no drop-in: emacs' lock file for
// 10-a.yaml is a dangling symlink .#10-a.yaml, and reading it would stop
// stallmon from starting (no heartbeat: the node fails over) while someone
// edits a drop-in. systemd and sysctl ignore hidden files there too.
func TestEditorLockFileInDropIns(t *testing.T) {
	path := tableDir(t, "extends: builtin\n", map[string]string{"10-a.yaml": "syscalls:\n  fsync: {budget: 40s, kill_after: 200s}\n"})
	symlink(t, "root@node1.4242:1765100000", filepath.Join(filepath.Dir(path), "budgets.d", ".#10-a.yaml"))
	if _, err := Load(path, knownIn(amd64Names(t))); err != nil {
		t.Errorf("an editor's lock file in budgets.d stops stallmon: %v", err)
	}
}

// A rule whose budget is one file's and whose kill_after another file's
// default says so: the reader must find which file decides the kill.
func TestOriginOfInheritedKillAfter(t *testing.T) {
	path := tableDir(t, "default: {budget: 5s, kill_after: 60s}\nsyscalls:\n  msync: {budget: 10s}\n",
		map[string]string{"10-a.yaml": "default: {budget: 5s, kill_after: 30s}\n"})
	tb, err := Load(path, knownIn(amd64Names(t)))
	if err != nil {
		t.Fatal(err)
	}
	text := format(t, tb)
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "  msync:") && !strings.Contains(line, "10-a.yaml") {
			t.Errorf("msync's kill_after 30s comes from budgets.d/10-a.yaml, its comment does not say so: %q", line)
		}
	}
}
