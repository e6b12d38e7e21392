package budget

import (
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/fdkind"
)

func dur(d time.Duration) *time.Duration { return &d }

const overrideTable = `default: {budget: 5s, kill_after: 60s}
syscalls:
  fsync: {budget: 10s, kill_after: 120s}
  msync: {budget: 10s}
  read:
    by_fd: {socket: unbounded}
  write:
    budget: 2s
    by_fd: {regular: {budget: 3s}, pipe: {budget: 1s, kill_after: 4s}}
`

func TestOverrideOnlyDefault(t *testing.T) {
	base := mustParse(t, overrideTable)
	before := format(t, base)
	tb, err := base.WithDefaults(dur(time.Second), dur(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	s := time.Second
	cases := []struct {
		syscall string
		kind    fdkind.Kind
		want    Rule
		why     string
	}{
		{"openat", fdkind.None, Rule{Budget: s, KillAfter: 30 * s}, "unlisted follows the new default"},
		{"read", fdkind.Regular, Rule{Budget: s, KillAfter: 30 * s}, "by_fd-only entry follows the new default"},
		{"read", fdkind.Socket, Rule{Unbounded: true}, "kind rule untouched"},
		{"fsync", fdkind.None, Rule{Budget: 10 * s, KillAfter: 120 * s}, "explicit values kept"},
		{"msync", fdkind.None, Rule{Budget: 10 * s, KillAfter: 30 * s}, "own budget kept, inherited kill_after follows"},
		{"write", fdkind.Socket, Rule{Budget: 2 * s, KillAfter: 30 * s}, "own budget kept, inherited kill_after follows"},
		{"write", fdkind.Regular, Rule{Budget: 3 * s, KillAfter: 30 * s}, "kind rule inherits through the syscall"},
		{"write", fdkind.Pipe, Rule{Budget: s, KillAfter: 4 * s}, "explicit kind rule kept"},
	}
	for _, c := range cases {
		if got := tb.Lookup(c.syscall, c.kind); got != c.want {
			t.Errorf("Lookup(%s, %v) = %v, want %v (%s)", c.syscall, c.kind, got, c.want, c.why)
		}
	}
	if after := format(t, base); after != before {
		t.Errorf("WithDefaults changed the original table:\n%s\nbecame\n%s", before, after)
	}
}

func TestOverrideOneValue(t *testing.T) {
	base := mustParse(t, overrideTable)
	tb, err := base.WithDefaults(dur(2*time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tb.DefaultRule(); got != (Rule{Budget: 2 * time.Second, KillAfter: time.Minute}) {
		t.Errorf("budget only: default = %v", got)
	}
	tb, err = base.WithDefaults(nil, dur(0))
	if err != nil {
		t.Fatal(err)
	}
	if got := tb.DefaultRule(); got != (Rule{Budget: 5 * time.Second}) {
		t.Errorf("kill_after 0: default = %v, want never", got)
	}
	if got := tb.Lookup("msync", fdkind.None); got.Kills() {
		t.Errorf("msync inherits never, got %v", got)
	}
	tb, err = base.WithDefaults(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := sameBehaviour(base, tb); d != "" {
		t.Errorf("no-op override changed the table: %s", d)
	}
}

func TestOverrideUnboundedDefault(t *testing.T) {
	base := mustParse(t, "default: unbounded\nsyscalls:\n  fsync: {budget: 5s, kill_after: 10s}\n")
	tb, err := base.WithDefaults(dur(3*time.Second), dur(9*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got := tb.Lookup("openat", fdkind.None); got != (Rule{Budget: 3 * time.Second, KillAfter: 9 * time.Second}) {
		t.Errorf("default made bounded = %v", got)
	}
	for _, c := range []struct {
		budget, kill *time.Duration
		msg          string
	}{
		{dur(time.Second), nil, "needs a kill_after override too"},
		{nil, dur(time.Second), "needs a budget override too"},
	} {
		_, err := base.WithDefaults(c.budget, c.kill)
		if err == nil {
			t.Fatalf("override %v/%v of unbounded default accepted", c.budget, c.kill)
		}
		if ce := configError(t, err); !strings.Contains(ce.Msg, c.msg) {
			t.Errorf("error %q does not contain %q", ce.Msg, c.msg)
		}
	}
}

func TestOverrideErrors(t *testing.T) {
	base := mustParse(t, overrideTable)
	cases := []struct {
		name         string
		budget, kill *time.Duration
		line         int
		msg          string
	}{
		{"zero budget", dur(0), nil, 0, "budget override must be positive"},
		{"negative budget", dur(-time.Second), nil, 0, "budget override must be positive"},
		{"negative kill", nil, dur(-time.Second), 0, "kill_after override must be positive"},
		{"budget above kill", dur(2 * time.Minute), nil, 0, "kill_after 1m is below budget 2m"},
		{"kill below budget", nil, dur(time.Second), 0, "kill_after 1s is below budget 5s"},
		// msync (line 4) keeps its 10s budget but inherits the 8s kill_after.
		{"inheriting rule broken", dur(time.Second), dur(8 * time.Second), 4, "syscall msync: budget 10s is above the kill_after 8s it inherits from the default rule"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb, err := base.WithDefaults(c.budget, c.kill)
			if err == nil {
				t.Fatalf("accepted:\n%s", format(t, tb))
			}
			ce := configError(t, err)
			if ce.Line != c.line || !strings.Contains(ce.Msg, c.msg) {
				t.Errorf("got line %d %q, want line %d containing %q", ce.Line, ce.Msg, c.line, c.msg)
			}
		})
	}
}
