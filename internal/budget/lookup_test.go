package budget

import (
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/fdkind"
)

const precedenceTable = `
default: {budget: 1s, kill_after: 10s}
syscalls:
  read:
    budget: 2s
    kill_after: 20s
    by_fd:
      socket: {budget: 3s, kill_after: 30s}
      pipe: unbounded
      device: {budget: 15s}
  write:
    budget: 8s
    kill_after: never
    by_fd:
      regular: {budget: 500ms}
  recvmsg:
    budget: unbounded
    by_fd:
      regular: {budget: 4s}
  ioctl:
    by_fd:
      tty: unbounded
  fsync: {budget: 4s}
  accept: unbounded
`

func TestLookupPrecedence(t *testing.T) {
	tb := mustParse(t, precedenceTable)
	s := time.Second
	cases := []struct {
		syscall string
		kind    fdkind.Kind
		want    Rule
		why     string
	}{
		{"read", fdkind.Socket, Rule{Budget: 3 * s, KillAfter: 30 * s}, "kind rule beats syscall rule"},
		{"read", fdkind.Pipe, Rule{Unbounded: true}, "unbounded kind rule"},
		{"read", fdkind.Regular, Rule{Budget: 2 * s, KillAfter: 20 * s}, "no kind rule: syscall rule"},
		{"read", fdkind.None, Rule{Budget: 2 * s, KillAfter: 20 * s}, "None never matches a kind rule"},
		{"read", fdkind.Device, Rule{Budget: 15 * s, KillAfter: 20 * s}, "kind rule inherits the syscall's kill_after"},
		{"write", fdkind.Regular, Rule{Budget: 500 * time.Millisecond}, "kind rule inherits never from the syscall"},
		{"write", fdkind.Socket, Rule{Budget: 8 * s}, "syscall rule with kill_after never"},
		{"recvmsg", fdkind.Regular, Rule{Budget: 4 * s, KillAfter: 10 * s}, "syscall unbounded: kind rule inherits the default's kill_after"},
		{"recvmsg", fdkind.Socket, Rule{Unbounded: true}, "unbounded syscall rule"},
		{"ioctl", fdkind.TTY, Rule{Unbounded: true}, "by_fd-only entry: kind rule"},
		{"ioctl", fdkind.Device, Rule{Budget: s, KillAfter: 10 * s}, "by_fd-only entry: default for other kinds"},
		{"fsync", fdkind.Regular, Rule{Budget: 4 * s, KillAfter: 10 * s}, "syscall rule inherits the default's kill_after"},
		{"accept", fdkind.Socket, Rule{Unbounded: true}, "unbounded syscall"},
		{"openat", fdkind.Regular, Rule{Budget: s, KillAfter: 10 * s}, "unlisted: default"},
		{"read", fdkind.Kind(99), Rule{Budget: 2 * s, KillAfter: 20 * s}, "out-of-range kind: syscall rule"},
	}
	for _, c := range cases {
		if got := tb.Lookup(c.syscall, c.kind); got != c.want {
			t.Errorf("Lookup(%s, %v) = %v, want %v (%s)", c.syscall, c.kind, got, c.want, c.why)
		}
	}
}

func TestNeedsFDKind(t *testing.T) {
	tb := mustParse(t, precedenceTable)
	for name, want := range map[string]bool{
		"read": true, "write": true, "recvmsg": true, "ioctl": true,
		"fsync": false, "accept": false, "openat": false,
	} {
		if got := tb.NeedsFDKind(name); got != want {
			t.Errorf("NeedsFDKind(%s) = %v, want %v", name, got, want)
		}
	}
}

func TestMinBudget(t *testing.T) {
	tb := mustParse(t, precedenceTable)
	cases := []struct {
		syscall string
		min     time.Duration
		free    bool
	}{
		{"read", 2 * time.Second, false},         // own rule below every kind rule
		{"write", 500 * time.Millisecond, false}, // kind rule below own rule
		{"recvmsg", 4 * time.Second, false},      // own unbounded, kind rule bounded
		{"ioctl", time.Second, false},            // follows the default
		{"accept", 0, true},                      // nothing can fire
		{"openat", time.Second, false},           // unlisted
	}
	for _, c := range cases {
		min, free := tb.MinBudget(c.syscall)
		if min != c.min || free != c.free {
			t.Errorf("MinBudget(%s) = %v, %v; want %v, %v", c.syscall, min, free, c.min, c.free)
		}
		// Whatever MinBudget promises must hold for every kind.
		for _, k := range fdkind.Kinds() {
			r := tb.Lookup(c.syscall, k)
			if free && !r.Unbounded {
				t.Errorf("%s: MinBudget says all unbounded, but %v gets %v", c.syscall, k, r)
			}
			if !r.Unbounded && r.Budget < min {
				t.Errorf("%s: %v gets budget %v below MinBudget %v", c.syscall, k, r.Budget, min)
			}
		}
	}

	free := mustParse(t, "default: unbounded\n")
	if min, all := free.MinBudget("anything"); !all || min != 0 {
		t.Errorf("unbounded default: MinBudget = %v, %v", min, all)
	}
}

func TestRuleKillsAndString(t *testing.T) {
	cases := []struct {
		r     Rule
		kills bool
		str   string
	}{
		{Rule{Unbounded: true}, false, "unbounded"},
		{Rule{Budget: 5 * time.Second}, false, "{budget: 5s, kill_after: never}"},
		{Rule{Budget: 5 * time.Second, KillAfter: 2 * time.Minute}, true, "{budget: 5s, kill_after: 2m}"},
		{Rule{Budget: 1500 * time.Millisecond, KillAfter: 90 * time.Minute}, true, "{budget: 1.5s, kill_after: 1h30m}"},
		{Rule{Budget: 1500 * time.Nanosecond, KillAfter: 2 * time.Hour}, true, "{budget: 1.5us, kill_after: 2h}"},
	}
	for _, c := range cases {
		if c.r.Kills() != c.kills {
			t.Errorf("%+v.Kills() = %v", c.r, !c.kills)
		}
		if c.r.String() != c.str {
			t.Errorf("%+v.String() = %q, want %q", c.r, c.r.String(), c.str)
		}
	}
}

func TestConfigErrorWithoutLine(t *testing.T) {
	if got := (&ConfigError{Msg: "bad override"}).Error(); got != "bad override" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&ConfigError{Line: 7, Msg: "bad"}).Error(); got != "line 7: bad" {
		t.Errorf("Error() = %q", got)
	}
}
