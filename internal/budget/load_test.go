package budget

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/fdkind"
)

const s = time.Second

// tableDir writes main (unless "") as budgets.yaml in a new directory,
// and each drop-in into budgets.d/, and returns budgets.yaml's path.
func tableDir(t *testing.T, main string, dropIns map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "budgets.yaml")
	if main != "" {
		if err := os.WriteFile(path, []byte(main), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(dropIns) > 0 {
		if err := os.Mkdir(filepath.Join(dir, "budgets.d"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range dropIns {
		if err := os.WriteFile(filepath.Join(dir, "budgets.d", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

type lookup struct {
	syscall string
	kind    fdkind.Kind
	want    Rule
}

func TestLoadLayers(t *testing.T) {
	const ext = "extends: builtin\n"
	const own = "default: {budget: 2s, kill_after: 20s}\n"
	unbounded := Rule{Unbounded: true}
	builtinDef := Rule{Budget: 5 * s, KillAfter: 60 * s}
	cases := []struct {
		name    string
		main    string // "": no budgets.yaml
		dropIns map[string]string
		lookups []lookup
		states  map[State]Rule // ProcessRule
	}{
		{name: "without extends a table replaces the built-in one", main: own,
			lookups: []lookup{{"epoll_wait", fdkind.None, Rule{Budget: 2 * s, KillAfter: 20 * s}}, {"fsync", fdkind.None, Rule{Budget: 2 * s, KillAfter: 20 * s}}},
			states:  map[State]Rule{Stopped: {Budget: 2 * s}}},
		{name: "extends builtin names only what changes", main: ext + "syscalls:\n  fsync: {budget: 50s, kill_after: 200s}\n",
			lookups: []lookup{{"fsync", fdkind.None, Rule{Budget: 50 * s, KillAfter: 200 * s}}, {"epoll_wait", fdkind.None, unbounded},
				{"read", fdkind.Socket, unbounded}, {"openat", fdkind.None, builtinDef}, {"msync", fdkind.None, Rule{Budget: 30 * s, KillAfter: 120 * s}}},
			states: map[State]Rule{Stopped: {Budget: 3 * s}}},
		{name: "extends builtin with another default", main: ext + own,
			lookups: []lookup{{"openat", fdkind.None, Rule{Budget: 2 * s, KillAfter: 20 * s}}, {"read", fdkind.Regular, Rule{Budget: 2 * s, KillAfter: 20 * s}},
				{"epoll_wait", fdkind.None, unbounded}}},
		{name: "a later drop-in overrides an earlier one", main: ext, dropIns: map[string]string{
			"10-a.yaml": "syscalls:\n  fsync: {budget: 40s, kill_after: 200s}\n",
			"20-b.yaml": "syscalls:\n  fsync: {budget: 45s, kill_after: 200s}\n"},
			lookups: []lookup{{"fsync", fdkind.None, Rule{Budget: 45 * s, KillAfter: 200 * s}}}},
		{name: "drop-ins apply in lexical order, not numeric", main: ext, dropIns: map[string]string{
			"9-x.yaml":  "syscalls:\n  fsync: {budget: 41s, kill_after: 200s}\n",
			"10-a.yaml": "syscalls:\n  fsync: {budget: 42s, kill_after: 200s}\n"},
			lookups: []lookup{{"fsync", fdkind.None, Rule{Budget: 41 * s, KillAfter: 200 * s}}}},
		{name: "a drop-in overrides the main table", main: own + "syscalls:\n  fsync: {budget: 10s, kill_after: 60s}\n", dropIns: map[string]string{
			"10-a.yaml": "syscalls:\n  fsync: {budget: 20s, kill_after: 60s}\n"},
			lookups: []lookup{{"fsync", fdkind.None, Rule{Budget: 20 * s, KillAfter: 60 * s}}, {"epoll_wait", fdkind.None, Rule{Budget: 2 * s, KillAfter: 20 * s}}}},
		{name: "a drop-in's by_fd rule keeps the other kinds", main: ext, dropIns: map[string]string{
			"10-fuse.yaml": "syscalls:\n  read: {by_fd: {device: unbounded}}\n"},
			lookups: []lookup{{"read", fdkind.Device, unbounded}, {"read", fdkind.Socket, unbounded}, {"read", fdkind.Regular, builtinDef}}},
		{name: "a drop-in's own rule keeps the state overrides", main: ext, dropIns: map[string]string{
			"10-a.yaml": "syscalls:\n  clone3: {budget: 10s, kill_after: 60s}\n"},
			lookups: []lookup{{"clone3", fdkind.None, Rule{Budget: 10 * s, KillAfter: 60 * s}}}},
		{name: "removed and written again replaces a syscall whole", main: ext, dropIns: map[string]string{
			"10-a.yaml": "remove: {syscalls: [read]}\nsyscalls:\n  read: {by_fd: {device: unbounded}}\n"},
			lookups: []lookup{{"read", fdkind.Device, unbounded}, {"read", fdkind.Socket, builtinDef}}},
		{name: "a removed syscall follows the default", main: ext + "remove:\n  syscalls: [epoll_wait, close]\n",
			lookups: []lookup{{"epoll_wait", fdkind.None, builtinDef}, {"close", fdkind.Socket, builtinDef}, {"epoll_pwait", fdkind.None, unbounded}}},
		{name: "a removed state inherits from the default", main: ext + "remove:\n  states: [stopped]\n",
			states: map[State]Rule{Stopped: {Budget: 5 * s}, Traced: {Budget: 3 * s}}},
		{name: "a drop-in removes the main table's syscall", main: own + "syscalls:\n  fsync: {budget: 10s, kill_after: 60s}\n", dropIns: map[string]string{
			"10-a.yaml": "remove: {syscalls: [fsync]}\n"},
			lookups: []lookup{{"fsync", fdkind.None, Rule{Budget: 2 * s, KillAfter: 20 * s}}}},
		{name: "a drop-in's default moves what inherits it", main: "default: {budget: 5s, kill_after: 60s}\nsyscalls:\n  msync: {budget: 10s}\n", dropIns: map[string]string{
			"10-a.yaml": "default: {budget: 5s, kill_after: 30s}\n"},
			lookups: []lookup{{"msync", fdkind.None, Rule{Budget: 10 * s, KillAfter: 30 * s}}}},
		{name: "an empty drop-in changes nothing", main: own, dropIns: map[string]string{"10-a.yaml": "# nothing yet\n"},
			lookups: []lookup{{"fsync", fdkind.None, Rule{Budget: 2 * s, KillAfter: 20 * s}}}},
		{name: "other files are left alone", main: own, dropIns: map[string]string{
			"10-a.yaml.dpkg-old": "syscalls: [", "README": "x", "10-a.yaml.rpmnew": "default: unbounded\n"},
			lookups: []lookup{{"fsync", fdkind.None, Rule{Budget: 2 * s, KillAfter: 20 * s}}}},
		{name: "drop-ins without a main table extend the built-in one", dropIns: map[string]string{
			"10-a.yaml": "syscalls:\n  fsync: {budget: 40s, kill_after: 200s}\n"},
			lookups: []lookup{{"fsync", fdkind.None, Rule{Budget: 40 * s, KillAfter: 200 * s}}, {"epoll_wait", fdkind.None, unbounded}}},
		{name: "no main table and no drop-ins is the built-in table",
			lookups: []lookup{{"fsync", fdkind.None, Rule{Budget: 30 * s, KillAfter: 120 * s}}, {"openat", fdkind.None, builtinDef}}},
	}
	known := knownIn(amd64Names(t))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := tableDir(t, c.main, c.dropIns)
			tb, err := LoadIfPresent(path, known)
			if err != nil {
				t.Fatal(err)
			}
			if c.main != "" {
				viaLoad, err := Load(path, known)
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if d := sameBehaviour(tb, viaLoad); d != "" {
					t.Errorf("Load and LoadIfPresent differ: %s", d)
				}
			}
			for _, l := range c.lookups {
				if got := tb.Lookup(l.syscall, l.kind); got != l.want {
					t.Errorf("Lookup(%s, %v) = %v, want %v", l.syscall, l.kind, got, l.want)
				}
			}
			for st, want := range c.states {
				if got := tb.ProcessRule(st); got != want {
					t.Errorf("ProcessRule(%v) = %v, want %v", st, got, want)
				}
			}
		})
	}
}

// TestLoadLayerErrors: every mistake in a main table or a drop-in names
// its file and line, and the merged table is checked as a whole.
func TestLoadLayerErrors(t *testing.T) {
	const ext = "extends: builtin\n"
	cases := []struct {
		name    string
		main    string
		dropIns map[string]string
		file    string // the file the error names: budgets.yaml, or budgets.d/NAME
		line    int
		msg     string
	}{
		{"bad YAML in a drop-in", ext, map[string]string{"10-a.yaml": "# tighter\nsyscalls:\n  fsync: {budget: 5s}\n   bad\n"}, "budgets.d/10-a.yaml", 2, "invalid YAML"},
		{"unknown syscall in a drop-in", ext, map[string]string{"10-a.yaml": "syscalls:\n  fsyncc: unbounded\n"}, "budgets.d/10-a.yaml", 2, `unknown syscall "fsyncc"`},
		{"kill_after below budget in a drop-in", ext, map[string]string{"10-a.yaml": "\nsyscalls:\n  fsync: {budget: 10s, kill_after: 5s}\n"}, "budgets.d/10-a.yaml", 3, "kill_after 5s is below budget 10s"},
		{"a drop-in rule inherits a kill_after below its budget", ext, map[string]string{"10-a.yaml": "syscalls:\n  mkdir: {budget: 90s}\n"},
			"budgets.d/10-a.yaml", 2, "budget 1m30s is above the kill_after 1m it inherits from the default rule (from builtin)"},
		{"a drop-in rule drops the kill_after of the rule it replaces", ext, map[string]string{"10-a.yaml": "syscalls:\n  msync: {budget: 60s}\n"},
			"budgets.d/10-a.yaml", 2, "msync: the rule this replaces (from builtin) has kill_after 2m0s"},
		{"a drop-in state rule drops kill_after never", ext, map[string]string{"10-a.yaml": "states:\n  stopped: {budget: 10s}\n"},
			"budgets.d/10-a.yaml", 2, "state stopped: the rule this replaces (from builtin) has kill_after never"},
		{"a drop-in's default breaks the main table's rule", "default: {budget: 5s, kill_after: 60s}\nsyscalls:\n  fsync: {budget: 30s}\n",
			map[string]string{"10-a.yaml": "default: {budget: 5s, kill_after: 20s}\n"},
			"budgets.yaml", 3, "budget 30s is above the kill_after 20s it inherits from the default rule (from "},
		{"a drop-in's default breaks a main table's rule the drop-in extends", "default: {budget: 5s, kill_after: 60s}\nsyscalls:\n  write: {budget: 30s}\n",
			map[string]string{"10-a.yaml": "default: {budget: 5s, kill_after: 20s}\nsyscalls:\n  write: {by_fd: {device: unbounded}}\n"},
			"budgets.yaml", 3, "syscall write: budget 30s is above the kill_after 20s"},
		{"a drop-in's kind rule inherits from the main table's syscall", "default: {budget: 5s, kill_after: 60s}\nsyscalls:\n  write: {budget: 5s, kill_after: 10s}\n",
			map[string]string{"10-a.yaml": "syscalls:\n  write: {by_fd: {device: {budget: 20s}}}\n"},
			"budgets.d/10-a.yaml", 2, "by_fd device: budget 20s is above the kill_after 10s it inherits from syscall write"},
		{"a drop-in's default must be whole", ext, map[string]string{"10-a.yaml": "default: {budget: 5s}\n"}, "budgets.d/10-a.yaml", 1, "kill_after is missing"},
		{"extends in a drop-in", ext, map[string]string{"10-a.yaml": "extends: builtin\n"}, "budgets.d/10-a.yaml", 1, "extends: is for the main table"},
		{"extends something else", "extends: default\n", nil, "budgets.yaml", 1, "extends: want builtin"},
		{"remove without extends", "default: unbounded\nremove: {syscalls: [read]}\n", nil, "budgets.yaml", 2, "remove: needs extends: builtin"},
		{"remove what is not there", ext + "remove: {syscalls: [openat]}\n", nil, "budgets.yaml", 2, "syscall openat has no rule"},
		{"remove a state not set", ext + "remove: {states: [running]}\n", nil, "budgets.yaml", 2, "state running has no rule of its own"},
		{"remove an unknown syscall", ext, map[string]string{"10-a.yaml": "remove:\n  syscalls:\n    - fsyncc\n"}, "budgets.d/10-a.yaml", 3, `remove: unknown syscall "fsyncc"`},
		{"remove an unknown state", ext + "remove: {states: [sleeping]}\n", nil, "budgets.yaml", 2, `unknown state "sleeping"`},
		{"remove a name twice", ext + "remove: {syscalls: [read, read]}\n", nil, "budgets.yaml", 2, "read listed twice"},
		{"remove an unknown section", ext + "remove: {default: [x]}\n", nil, "budgets.yaml", 2, `remove: unknown key "default"`},
		{"remove a mapping", ext + "remove: {syscalls: {read: x}}\n", nil, "budgets.yaml", 2, "want a list of names"},
		{"an empty main table", "# all commented out\n", nil, "budgets.yaml", 1, "empty"},
		{"no default and no extends", "syscalls: {}\n", nil, "budgets.yaml", 1, "or extends: builtin"},
	}
	known := knownIn(amd64Names(t))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := tableDir(t, c.main, c.dropIns)
			tb, err := Load(path, known)
			if err == nil {
				t.Fatalf("accepted:\n%s", format(t, tb))
			}
			ce := configError(t, err)
			wantFile := filepath.Join(filepath.Dir(path), c.file)
			if ce.File != wantFile || ce.Line != c.line || !strings.Contains(ce.Msg, c.msg) {
				t.Errorf("error %q (file %s, line %d), want file %s, line %d, containing %q", err, ce.File, ce.Line, wantFile, c.line, c.msg)
			}
			if !strings.HasPrefix(err.Error(), "budget table "+wantFile+": line ") {
				t.Errorf("error %q does not start with the file and line", err)
			}
		})
	}
}

// TestLoadDirErrors: a drop-in directory or file that cannot be read is
// an error naming it, never a table without it.
func TestLoadDirErrors(t *testing.T) {
	const main = "extends: builtin\n"
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string) // dir holds budgets.yaml
		want  string                         // in the error, after the directory's path
	}{
		{"drop-in directory is a file", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "budgets.d"), "x") },
			"budgets.d: not a directory"},
		{"drop-in directory is a dangling link", func(t *testing.T, dir string) {
			symlink(t, filepath.Join(dir, "gone"), filepath.Join(dir, "budgets.d"))
		},
			"budgets.d: no such file or directory"},
		{"drop-in is a directory", func(t *testing.T, dir string) { mkdir(t, filepath.Join(dir, "budgets.d", "10-a.yaml")) },
			"budgets.d/10-a.yaml: is a directory"},
		{"drop-in is a dangling link", func(t *testing.T, dir string) {
			mkdir(t, filepath.Join(dir, "budgets.d"))
			symlink(t, filepath.Join(dir, "gone"), filepath.Join(dir, "budgets.d", "10-a.yaml"))
		}, "budgets.d/10-a.yaml: no such file or directory"},
		{"drop-in named .yml", func(t *testing.T, dir string) {
			mkdir(t, filepath.Join(dir, "budgets.d"))
			write(t, filepath.Join(dir, "budgets.d", "10-a.yml"), "syscalls: {}\n")
		}, "budgets.d/10-a.yml: drop-ins end in .yaml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := tableDir(t, main, nil)
			c.setup(t, filepath.Dir(path))
			for name, load := range map[string]func(string, func(string) bool) (*Table, error){"Load": Load, "LoadIfPresent": LoadIfPresent} {
				_, err := load(path, nil)
				if err == nil || !strings.Contains(err.Error(), filepath.Dir(path)+"/"+c.want) {
					t.Errorf("%s: %v, want an error containing %q", name, err, c.want)
				}
			}
		})
	}
	// The default path as a dangling link is something an operator put
	// there, not an absent table.
	dir := t.TempDir()
	symlink(t, filepath.Join(dir, "gone.yaml"), filepath.Join(dir, "budgets.yaml"))
	if _, err := LoadIfPresent(filepath.Join(dir, "budgets.yaml"), nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("LoadIfPresent of a dangling link: %v, want an error", err)
	}
}

func TestDropInDir(t *testing.T) {
	for path, want := range map[string]string{
		"/etc/stallmon/budgets.yaml": "/etc/stallmon/budgets.d",
		"/etc/stallmon/budgets.yml":  "/etc/stallmon/budgets.d",
		"table":                      "table.d",
		"/a.b/table.json":            "/a.b/table.json.d",
	} {
		if got := DropInDir(path); got != want {
			t.Errorf("DropInDir(%q) = %q, want %q", path, got, want)
		}
	}
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// TestFormatOrigins: Format says after each rule which file it came
// from, and its output is a table --config reads back to the same rules.
func TestFormatOrigins(t *testing.T) {
	path := tableDir(t, "extends: builtin\nremove: {states: [traced]}\nsyscalls:\n  fsync: {budget: 50s, kill_after: 200s}\n", map[string]string{
		"10-db.yaml": "default: {budget: 5s, kill_after: 30s}\nsyscalls:\n  read: {by_fd: {device: unbounded}}\n  clone3: {budget: 10s, kill_after: 30s}\n" +
			"  openat: {uninterruptible: {budget: 20s, kill_after: 60s}}\n  write: {by_fd: {device: {uninterruptible: unbounded}}}\n",
	})
	main, dropIn := path, filepath.Join(filepath.Dir(path), "budgets.d", "10-db.yaml")
	known := knownIn(amd64Names(t))
	tb, err := Load(path, known)
	if err != nil {
		t.Fatal(err)
	}
	overridden, err := tb.WithDefaults(nil, dur(40*s))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tb    *Table
		lines []string
	}{
		{tb, []string{
			"default: {budget: 5s, kill_after: 30s}  # from " + dropIn + "\n",
			"  uninterruptible: {budget: 5s, kill_after: 30s}  # from the default rule\n",
			"  stopped: {budget: 3s, kill_after: never}  # from builtin\n",
			"  traced: {budget: 5s, kill_after: never}  # from the default rule\n",
			"  fsync: {budget: 50s, kill_after: 3m20s}  # from " + main + "\n",
			"  epoll_wait: unbounded  # from builtin\n",
			"  read:  # from the default rule\n",
			"      device: unbounded  # from " + dropIn + "\n",
			"      socket: unbounded  # from builtin\n",
			// Its own rule from the drop-in, its state overrides built in.
			"  clone3: {budget: 10s, kill_after: 30s, uninterruptible: unbounded, running: {budget: 30s, kill_after: 2m}}  # from " + dropIn + ", builtin\n",
			// No budget of their own: the default's, and write's.
			"  openat: {budget: 5s, kill_after: 30s, uninterruptible: {budget: 20s, kill_after: 1m}}  # from " + dropIn + ", the default rule\n",
			"      device: {budget: 5s, kill_after: 30s, uninterruptible: unbounded}  # from " + dropIn + ", syscall write\n",
		}},
		{overridden, []string{
			"default: {budget: 5s, kill_after: 40s}  # from " + dropIn + ", then --kill-after\n",
			"  fsync: {budget: 50s, kill_after: 3m20s}  # from " + main + "\n",
		}},
	} {
		text := format(t, c.tb)
		for _, l := range c.lines {
			if !strings.Contains(text, l) {
				t.Errorf("Format lacks %q:\n%s", l, text)
			}
		}
		// Round trip: the output, as a --config file, is the same table.
		again := tableDir(t, text, nil)
		back, err := Load(again, known)
		if err != nil {
			t.Fatalf("Format output does not load back: %v\n%s", err, text)
		}
		if d := sameBehaviour(c.tb, back); d != "" {
			t.Errorf("round trip changed %s\n%s", d, text)
		}
		if got := format(t, back); withoutOrigins(got) != withoutOrigins(text) || !strings.Contains(got, "  fsync: {budget: 50s, kill_after: 3m20s}  # from "+again+"\n") {
			t.Errorf("loaded back, Format gives\n%s\nwant the same rules, from %s:\n%s", got, again, text)
		}
	}
}
