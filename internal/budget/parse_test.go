package budget

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/fdkind"
)

func TestParseForms(t *testing.T) {
	tb := mustParse(t, `
default: {budget: 2s, kill_after: 30s}
syscalls:
  fsync:
    budget: 1m30s
    kill_after: never
  epoll_wait: unbounded
  quoted: {budget: "750ms", kill_after: "1h"}
  explicit_unbounded: {budget: unbounded}
  read:
    by_fd:
      socket: unbounded
`)
	cases := []struct {
		name string
		want Rule
	}{
		{"fsync", Rule{Budget: 90 * time.Second}},
		{"epoll_wait", Rule{Unbounded: true}},
		{"quoted", Rule{Budget: 750 * time.Millisecond, KillAfter: time.Hour}},
		{"explicit_unbounded", Rule{Unbounded: true}},
		{"read", Rule{Budget: 2 * time.Second, KillAfter: 30 * time.Second}},
		{"unlisted", Rule{Budget: 2 * time.Second, KillAfter: 30 * time.Second}},
	}
	for _, c := range cases {
		if got := tb.Lookup(c.name, fdkind.Regular); got != c.want {
			t.Errorf("Lookup(%s, regular) = %v, want %v", c.name, got, c.want)
		}
	}
	if got := tb.Lookup("fsync", fdkind.None); got.Kills() {
		t.Errorf("kill_after: never gave %v, which kills", got)
	}
}

func TestParseUnboundedDefault(t *testing.T) {
	tb := mustParse(t, "default: unbounded\nsyscalls:\n  fsync: {budget: 5s, kill_after: never}\n")
	if got := tb.Lookup("openat", fdkind.None); !got.Unbounded {
		t.Errorf("unlisted syscall under unbounded default = %v", got)
	}
	if got := tb.Lookup("fsync", fdkind.None); got != (Rule{Budget: 5 * time.Second}) {
		t.Errorf("fsync = %v", got)
	}
}

func TestParseEmptySyscalls(t *testing.T) {
	for _, src := range []string{
		"default: {budget: 1s, kill_after: 2s}\n",
		"default: {budget: 1s, kill_after: 2s}\nsyscalls:\n",
		"default: {budget: 1s, kill_after: 2s}\nsyscalls: {}\n",
	} {
		tb := mustParse(t, src)
		if n := tb.Names(); len(n) != 0 {
			t.Errorf("%q: names %v, want none", src, n)
		}
	}
}

func TestParseKnown(t *testing.T) {
	known := knownIn(map[string]bool{"read": true})
	if _, err := Parse([]byte("default: unbounded\nsyscalls:\n  read: unbounded\n"), known); err != nil {
		t.Fatalf("known name rejected: %v", err)
	}
	_, err := Parse([]byte("default: unbounded\nsyscalls:\n  read: unbounded\n  fsyncc: unbounded\n"), known)
	if err == nil {
		t.Fatal("unknown syscall accepted")
	}
	ce := configError(t, err)
	if ce.Line != 4 || ce.Error() != `line 4: unknown syscall "fsyncc"` {
		t.Errorf("got %q (line %d)", ce.Error(), ce.Line)
	}
	// The name is the likelier mistake, so it is reported before the rule.
	_, err = Parse([]byte("default: unbounded\nsyscalls:\n  fsyncc: {budget: 0s}\n"), known)
	if ce := configError(t, err); !strings.Contains(ce.Msg, "unknown syscall") {
		t.Errorf("unknown name with a bad rule reported as %q", ce.Msg)
	}
}

func TestParseErrors(t *testing.T) {
	const def = "default: {budget: 5s, kill_after: 60s}\n"
	cases := []errorCase{
		{"empty", "", 1, "empty"},
		{"comments only", "# nothing\n", 1, "empty"},
		{"yaml syntax", "default: {budget: 5s\nsyscalls: [\n", 1, "invalid YAML"},
		{"two documents", def + "---\n" + def, 2, "single YAML document"},
		{"root not mapping", "- a\n- b\n", 1, "a budget table is a mapping"},
		{"missing default", "\nsyscalls: {}\n", 2, "default rule is missing"},
		{"unknown top key", def + "defaults: {}\n", 2, `unknown key "defaults"`},
		{"duplicate top key", def + "syscalls: {}\nsyscalls: {}\n", 3, `duplicate key "syscalls" (first at line 2)`},
		{"non-scalar key", def + "? [a]\n: b\n", 2, "keys must be plain names"},
		{"alias", "base: &b {budget: 1s, kill_after: 2s}\ndefault: *b\n", 2, "aliases"},

		{"default missing kill_after", "default: {budget: 5s}\n", 1, "kill_after is missing"},
		{"default missing budget", "default:\n  kill_after: 5s\n", 2, "kill_after needs a budget"},
		{"default by_fd", "default:\n  budget: 1s\n  kill_after: 2s\n  by_fd: {}\n", 4, `unknown key "by_fd" (want budget or kill_after)`},
		{"default scalar", "default: forever\n", 1, `want unbounded or a mapping`},
		{"default null", "default:\n", 1, "got nothing"},

		{"syscalls list", def + "syscalls:\n  - read\n", 3, "syscalls: want a mapping, got a list"},
		{"bad name", def + "syscalls:\n  Fsync: unbounded\n", 3, `invalid syscall name "Fsync"`},
		{"duplicate syscall", def + "syscalls:\n  read: unbounded\n  write: unbounded\n  read: unbounded\n", 5, `duplicate key "read" (first at line 3)`},
		{"null rule", def + "syscalls:\n  fsync:\n", 3, "syscall fsync: want unbounded or a mapping"},
		{"list rule", def + "syscalls:\n  fsync: [5s]\n", 3, "got a list"},
		{"empty rule", def + "syscalls:\n  fsync: {}\n", 3, "syscall fsync: budget is missing"},
		{"unknown rule key", def + "syscalls:\n  fsync:\n    budget: 5s\n    budgt: 6s\n", 5, `unknown key "budgt" (want budget, kill_after, by_fd, uninterruptible or running)`},
		{"duplicate rule key", def + "syscalls:\n  fsync:\n    budget: 5s\n    budget: 6s\n", 5, `duplicate key "budget"`},

		{"zero budget", def + "syscalls:\n  fsync: {budget: 0s, kill_after: 1s}\n", 3, "budget must be positive, got 0s"},
		{"negative budget", def + "syscalls:\n  fsync:\n    budget: -1s\n", 4, "budget must be positive, got -1s"},
		{"budget without unit", def + "syscalls:\n  fsync: {budget: 5}\n", 3, `budget "5" is not a duration`},
		{"budget garbage", def + "syscalls:\n  fsync: {budget: 5 s}\n", 3, `budget "5 s" is not a duration`},
		{"budget mapping", def + "syscalls:\n  fsync:\n    budget: {s: 5}\n", 4, "budget: want a duration or unbounded, got a mapping"},
		{"zero kill_after", def + "syscalls:\n  fsync:\n    budget: 1s\n    kill_after: 0s\n", 5, "kill_after must be positive (or never)"},
		{"negative kill_after", def + "syscalls:\n  fsync: {budget: 1s, kill_after: -2m}\n", 3, "kill_after must be positive"},
		{"kill_after garbage", def + "syscalls:\n  fsync: {budget: 1s, kill_after: soon}\n", 3, `kill_after "soon" is not a duration`},
		{"kill_after list", def + "syscalls:\n  fsync:\n    budget: 1s\n    kill_after: [1s]\n", 5, "kill_after: want a duration or never, got a list"},
		{"kill_after below budget", def + "syscalls:\n  fsync:\n    budget: 10s\n    kill_after: 9s\n", 5, "syscall fsync: kill_after 9s is below budget 10s"},
		{"default kill_after below budget", "default:\n  budget: 10s\n  kill_after: 5s\n", 3, "default: kill_after 5s is below budget 10s"},
		{"kill_after without budget", def + "syscalls:\n  fsync:\n    kill_after: 10s\n", 4, "kill_after needs a budget"},
		{"unbounded with kill_after", def + "syscalls:\n  fsync:\n    budget: unbounded\n    kill_after: 10s\n", 5, "unbounded rule cannot have a kill_after"},

		{"by_fd list", def + "syscalls:\n  read:\n    by_fd: [socket]\n", 4, "syscall read: by_fd: want a mapping"},
		{"unknown fd kind", def + "syscalls:\n  read:\n    by_fd:\n      socket: unbounded\n      file: unbounded\n", 6, `unknown fd kind "file"`},
		{"fd kind none", def + "syscalls:\n  read:\n    by_fd:\n      none: unbounded\n", 5, "none cannot have a rule"},
		{"duplicate fd kind", def + "syscalls:\n  read:\n    by_fd:\n      pipe: unbounded\n      pipe: unbounded\n", 6, `duplicate key "pipe"`},
		{"nested by_fd", def + "syscalls:\n  read:\n    by_fd:\n      pipe:\n        budget: 1s\n        by_fd: {}\n", 7, `syscall read, by_fd pipe: unknown key "by_fd" (want budget, kill_after, uninterruptible or running)`},
		{"kind rule bad budget", def + "syscalls:\n  read:\n    by_fd:\n      device: {budget: 0s}\n", 5, "syscall read, by_fd device: budget must be positive"},
		{"kind rule bad scalar", def + "syscalls:\n  read:\n    by_fd:\n      device: 5s\n", 5, `syscall read, by_fd device: want unbounded or a mapping like {budget: 5s, kill_after: 60s}, got "5s"`},

		{"inherited kill_after below budget", def + "syscalls:\n  fsync: {budget: 90s}\n", 3, "budget 1m30s is above the kill_after 1m it inherits from the default rule"},
		{"nothing to inherit", "default: unbounded\nsyscalls:\n  read: unbounded\n  fsync:\n    budget: 5s\n", 5, "the default rule is unbounded, so there is none to inherit"},
		{"kind inherits syscall kill_after", def + "syscalls:\n  read:\n    budget: 5s\n    kill_after: 30s\n    by_fd:\n      device: {budget: 40s}\n", 7, "syscall read, by_fd device: budget 40s is above the kill_after 30s it inherits from syscall read"},
	}
	checkErrors(t, cases)
}

type errorCase struct {
	name string
	src  string
	line int
	msg  string // substring of the message
}

func checkErrors(t *testing.T, cases []errorCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb, err := Parse([]byte(c.src), nil)
			if err == nil {
				t.Fatalf("accepted:\n%s\nformatted as:\n%s", c.src, format(t, tb))
			}
			ce := configError(t, err)
			if ce.Line != c.line {
				t.Errorf("line %d, want %d (%v)", ce.Line, c.line, err)
			}
			if !strings.Contains(ce.Msg, c.msg) {
				t.Errorf("message %q does not contain %q", ce.Msg, c.msg)
			}
			if want := "line "; c.line > 0 && !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with the line", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("default: {budget: 3s, kill_after: 9s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tb, err := Load(good, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tb.DefaultRule(); got != (Rule{Budget: 3 * time.Second, KillAfter: 9 * time.Second}) {
		t.Errorf("default = %v", got)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("default: {budget: 3s, kill_after: 9s}\nsyscalls:\n  fsyncc: unbounded\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad, func(string) bool { return false })
	if ce := configError(t, err); ce.Line != 3 {
		t.Errorf("line %d, want 3", ce.Line)
	}
	if !strings.Contains(err.Error(), bad) {
		t.Errorf("error %q does not name the file", err)
	}

	_, err = Load(filepath.Join(dir, "missing.yaml"), nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		t.Errorf("missing file reported as a config mistake: %v", err)
	}
}

func TestParseStateErrors(t *testing.T) {
	const def = "default: {budget: 5s, kill_after: 60s}\n"
	checkErrors(t, []errorCase{
		{"states list", def + "states:\n  - stopped\n", 3, "states: want a mapping, got a list"},
		{"unknown state", def + "states:\n  stopped: unbounded\n  sleeping: unbounded\n", 4,
			`states: unknown state "sleeping" (want uninterruptible, running, page_fault, stopped, traced, frozen, dumping_core, exiting or work_waiting)`},
		{"duplicate state", def + "states:\n  traced: unbounded\n  traced: unbounded\n", 4, `states: duplicate key "traced" (first at line 3)`},
		{"duplicate states section", def + "states: {}\nstates: {}\n", 3, `duplicate key "states" (first at line 2)`},
		{"by_fd in states", def + "states:\n  running:\n    budget: 1s\n    by_fd: {}\n", 5,
			"states: running: by_fd is for syscall rules; a state rule has only budget and kill_after"},
		{"nested state in states", def + "states:\n  uninterruptible: {budget: 1s, running: unbounded}\n", 3,
			"states: uninterruptible: a state rule cannot hold a rule for running"},
		{"unknown key in states", def + "states:\n  stopped: {budget: 1s, kill: 2s}\n", 3, `states: stopped: unknown key "kill" (want budget or kill_after)`},
		{"state rule scalar", def + "states:\n  stopped: 5s\n", 3, `states: stopped: want unbounded or a mapping`},
		{"state rule without budget", def + "states:\n  stopped: {kill_after: 5s}\n", 3, "states: stopped: kill_after needs a budget"},
		{"state kill_after below budget", def + "states:\n  exiting:\n    budget: 10s\n    kill_after: 9s\n", 5, "states: exiting: kill_after 9s is below budget 10s"},
		{"state inherits kill_after below budget", def + "states:\n  running: {budget: 90s}\n", 3,
			"states: running: budget 1m30s is above the kill_after 1m it inherits from the default rule"},
		{"state nothing to inherit", "default: unbounded\nstates:\n  stopped:\n    budget: 1s\n", 4,
			"states: stopped: kill_after is missing and the default rule is unbounded"},
		{"state in default", "default:\n  budget: 5s\n  kill_after: 60s\n  uninterruptible: unbounded\n", 4,
			"default: uninterruptible cannot be set in the default rule; set it under states:"},

		{"process state on a syscall", def + "syscalls:\n  read:\n    budget: 1s\n    stopped: unbounded\n", 5,
			"syscall read: stopped is judged per process, not per syscall; set it under states:"},
		{"page_fault on a syscall", def + "syscalls:\n  read:\n    page_fault: unbounded\n", 4,
			"syscall read: page_fault is judged outside any syscall, not per syscall; set it under states:"},
		{"process state on a kind", def + "syscalls:\n  read:\n    by_fd:\n      pipe: {budget: unbounded, dumping_core: unbounded}\n", 5,
			"syscall read, by_fd pipe: dumping_core is judged per process, not per syscall"},
		{"by_fd in an override", def + "syscalls:\n  fsync:\n    uninterruptible:\n      budget: 1s\n      by_fd: {}\n", 6,
			"syscall fsync, uninterruptible: by_fd is for syscall rules"},
		{"state in an override", def + "syscalls:\n  fsync:\n    uninterruptible: {budget: 1s, running: 2s}\n", 4,
			"syscall fsync, uninterruptible: a state rule cannot hold a rule for running"},
		{"duplicate override", def + "syscalls:\n  fsync:\n    running: unbounded\n    running: unbounded\n", 5, `syscall fsync: duplicate key "running" (first at line 4)`},
		{"override scalar", def + "syscalls:\n  fsync: {uninterruptible: 5s}\n", 3, `syscall fsync, uninterruptible: want unbounded or a mapping`},
		{"override empty", def + "syscalls:\n  fsync:\n    running: {}\n", 4, "syscall fsync, running: budget is missing"},
		{"override kill_after below budget", def + "syscalls:\n  fsync:\n    running: {budget: 2s, kill_after: 1s}\n", 4, "syscall fsync, running: kill_after 1s is below budget 2s"},
		{"override inherits from its syscall", def + "syscalls:\n  fsync:\n    budget: 10s\n    kill_after: 20s\n    uninterruptible: {budget: 30s}\n", 6,
			"syscall fsync, uninterruptible: budget 30s is above the kill_after 20s it inherits from syscall fsync"},
		{"override under unbounded inherits from default", def + "syscalls:\n  poll: {budget: unbounded, running: {budget: 2m}}\n", 3,
			"syscall poll, running: budget 2m is above the kill_after 1m it inherits from the default rule"},
		{"kind override inherits from its kind", def + "syscalls:\n  read:\n    by_fd:\n      device:\n        budget: 5s\n        kill_after: 10s\n        running: {budget: 20s}\n", 8,
			"syscall read, by_fd device, running: budget 20s is above the kill_after 10s it inherits from syscall read, by_fd device"},
		{"override nothing to inherit", "default: unbounded\nsyscalls:\n  poll:\n    running: {budget: 1s}\n", 4,
			"syscall poll, running: kill_after is missing and the default rule is unbounded"},
		{"syscall error before later states", def + "syscalls:\n  fsync: {budget: 90s}\nstates:\n  running: {budget: 90s}\n", 3, "syscall fsync"},
		{"states error before later syscalls", def + "states:\n  running: {budget: 90s}\nsyscalls:\n  fsync: {budget: 90s}\n", 3, "states: running"},
	})
}

func TestParseStateForms(t *testing.T) {
	tb := mustParse(t, `default: {budget: 5s, kill_after: 60s}
states:
  uninterruptible: {budget: 30s}
  stopped: unbounded
syscalls:
  epoll_wait: unbounded
`)
	if got := tb.ProcessRule(Uninterruptible); got != (Rule{Budget: 30 * time.Second, KillAfter: time.Minute}) {
		t.Errorf("state rule without kill_after = %v, want the default's", got)
	}
	if got := tb.ProcessRule(Stopped); !got.Unbounded {
		t.Errorf("stopped: unbounded = %v", got)
	}
	// A scalar unbounded frees only the elapsed time: waiting in D still counts.
	if got := tb.StateRule("epoll_wait", fdkind.None, Uninterruptible); got != (Rule{Budget: 30 * time.Second, KillAfter: time.Minute}) {
		t.Errorf("StateRule(epoll_wait) = %v", got)
	}
}
