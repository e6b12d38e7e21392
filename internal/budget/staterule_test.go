package budget

import (
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/fdkind"
)

const stateTable = `default: {budget: 5s, kill_after: 60s}
states:
  uninterruptible: {budget: 2s, kill_after: 30s}
  running: {budget: 3s}
  stopped: {budget: 20s, kill_after: 90s}
  frozen: unbounded
syscalls:
  vfork: {budget: unbounded, uninterruptible: unbounded}
  clone3: {uninterruptible: unbounded}
  fsync: {budget: 10s, kill_after: 120s}
  poll: unbounded
  nanosleep: {budget: unbounded, running: {budget: 1s}}
  write:
    budget: 8s
    kill_after: never
    running: {budget: 4s}
    by_fd:
      pipe: unbounded
      device: {budget: 9s, uninterruptible: {budget: 1m}}
      tty: {running: unbounded}
  ioctl:
    by_fd:
      tty: unbounded
      other: {budget: unbounded, running: unbounded}
  read:
    by_fd:
      socket: {budget: unbounded, uninterruptible: {budget: 7s}}
  sendfile:
    by_fd: {socket: unbounded, pipe: unbounded}
  splice:
    by_fd: {socket: unbounded, pipe: unbounded}
`

var (
	sec  = time.Second
	free = Rule{Unbounded: true}
)

func TestStateRulePrecedence(t *testing.T) {
	tb := mustParse(t, stateTable)
	U, R := Uninterruptible, Running
	cases := []struct {
		syscall string
		kind    fdkind.Kind
		state   State
		want    Rule
		why     string
	}{
		{"", fdkind.None, U, Rule{Budget: 2 * sec, KillAfter: 30 * sec}, "outside a syscall: the table's rule"},
		{"", fdkind.Regular, R, Rule{Budget: 3 * sec, KillAfter: 60 * sec}, "outside a syscall: running inherits the default's kill_after"},
		{"epoll_wait", fdkind.None, U, Rule{Budget: 5 * sec, KillAfter: 60 * sec}, "unlisted: raised to the default rule"},
		{"poll", fdkind.None, U, Rule{Budget: 2 * sec, KillAfter: 30 * sec}, "unbounded syscall: the table's rule as is"},
		{"fsync", fdkind.Regular, U, Rule{Budget: 10 * sec, KillAfter: 120 * sec}, "raised to fsync's own rule"},
		{"fsync", fdkind.None, R, Rule{Budget: 10 * sec, KillAfter: 120 * sec}, "raised to fsync's own rule"},
		{"vfork", fdkind.None, U, free, "syscall override"},
		{"vfork", fdkind.None, R, Rule{Budget: 3 * sec, KillAfter: 60 * sec}, "no running override, syscall unbounded"},
		{"clone3", fdkind.None, U, free, "state-only entry's override"},
		{"clone3", fdkind.None, R, Rule{Budget: 5 * sec, KillAfter: 60 * sec}, "state-only entry follows the default, which raises"},
		{"nanosleep", fdkind.None, R, Rule{Budget: sec, KillAfter: 60 * sec}, "override kept as written; kill_after from the default around an unbounded syscall"},
		{"write", fdkind.Socket, R, Rule{Budget: 4 * sec}, "override below the syscall's rule kept; kill_after never from write"},
		{"write", fdkind.Socket, U, Rule{Budget: 8 * sec}, "raised: never beats 30s"},
		{"write", fdkind.Pipe, U, Rule{Budget: 2 * sec, KillAfter: 30 * sec}, "unbounded kind rule: not raised"},
		{"write", fdkind.Pipe, R, Rule{Budget: 4 * sec}, "kind without override: the syscall's override"},
		{"write", fdkind.Device, U, Rule{Budget: time.Minute}, "kind override, kill_after never from the kind rule"},
		{"write", fdkind.Device, R, Rule{Budget: 4 * sec}, "kind override for another state: the syscall's"},
		{"write", fdkind.TTY, R, free, "state-only kind rule's override"},
		{"write", fdkind.TTY, U, Rule{Budget: 8 * sec}, "state-only kind rule follows write, which raises"},
		{"write", fdkind.None, R, Rule{Budget: 4 * sec}, "None: the syscall's override"},
		{"ioctl", fdkind.Other, R, free, "KVM_RUN-style override"},
		{"ioctl", fdkind.Other, U, Rule{Budget: 2 * sec, KillAfter: 30 * sec}, "unbounded kind rule: table's rule"},
		{"ioctl", fdkind.Device, R, Rule{Budget: 5 * sec, KillAfter: 60 * sec}, "device: raised to the default"},
		{"read", fdkind.Socket, U, Rule{Budget: 7 * sec, KillAfter: 60 * sec}, "kind override under unbounded kind and no syscall rule: default's kill_after"},
		{"read", fdkind.Regular, U, Rule{Budget: 5 * sec, KillAfter: 60 * sec}, "raised to the default"},
		{"read", fdkind.Kind(99), U, Rule{Budget: 5 * sec, KillAfter: 60 * sec}, "out-of-range kind: like None"},
		{"write", fdkind.Socket, Stopped, Rule{Budget: 20 * sec, KillAfter: 90 * sec}, "process state: ProcessRule"},
	}
	for _, c := range cases {
		if got := tb.StateRule(c.syscall, c.kind, c.state); got != c.want {
			t.Errorf("StateRule(%q, %v, %v) = %v, want %v (%s)", c.syscall, c.kind, c.state, got, c.want, c.why)
		}
	}
}

// TestStateRuleNeverStricter checks the promise that an inherited state
// rule never acts before the syscall's own bounded rule would.
func TestStateRuleNeverStricter(t *testing.T) {
	tb := mustParse(t, stateTable)
	for _, name := range append(tb.Names(), "unlisted") {
		for _, k := range fdkind.Kinds() {
			own := tb.Lookup(name, k)
			for _, s := range []State{Uninterruptible, Running} {
				r := tb.StateRule(name, k, s)
				if _, explicit := overrideOf(tb, name, k, s); explicit || own.Unbounded || r.Unbounded {
					continue
				}
				if r.Budget < own.Budget || killRank(r.KillAfter) < killRank(own.KillAfter) {
					t.Errorf("StateRule(%s, %v, %v) = %v is stricter than Lookup = %v", name, k, s, r, own)
				}
				if r.Kills() && r.KillAfter < r.Budget {
					t.Errorf("StateRule(%s, %v, %v) = %v kills before its budget", name, k, s, r)
				}
			}
		}
	}
}

func overrideOf(tb *Table, name string, k fdkind.Kind, s State) (Rule, bool) {
	e, ok := tb.rules[name]
	if !ok {
		return Rule{}, false
	}
	if r, ok := e.kindStates[k][s]; ok && k != fdkind.None {
		return r, true
	}
	r, ok := e.states[s]
	return r, ok
}

func TestProcessRule(t *testing.T) {
	tb := mustParse(t, stateTable)
	cases := []struct {
		s    State
		want Rule
	}{
		{Stopped, Rule{Budget: 20 * sec, KillAfter: 90 * sec}},
		{Traced, Rule{Budget: 5 * sec}},
		{Frozen, free},
		{DumpingCore, Rule{Budget: 5 * sec}},
		{Exiting, Rule{Budget: 5 * sec, KillAfter: 60 * sec}},
		{Uninterruptible, Rule{Budget: 2 * sec, KillAfter: 30 * sec}},
		{Running, Rule{Budget: 3 * sec, KillAfter: 60 * sec}},
		{State(99), Rule{Budget: 5 * sec, KillAfter: 60 * sec}},
	}
	for _, c := range cases {
		if got := tb.ProcessRule(c.s); got != c.want {
			t.Errorf("ProcessRule(%v) = %v, want %v", c.s, got, c.want)
		}
	}
	if got := tb.StateRule("fsync", fdkind.Regular, State(99)); got != tb.DefaultRule() {
		t.Errorf("StateRule with an out-of-range state = %v, want the default", got)
	}
}

func TestStatesInheritDefault(t *testing.T) {
	tb := mustParse(t, "default: {budget: 4s, kill_after: 40s}\n")
	for _, s := range States() {
		want := Rule{Budget: 4 * sec}
		if s == WorkWaiting {
			// Off unless the table lists it.
			want = Rule{Unbounded: true}
		}
		if s == Uninterruptible || s == Running || s == PageFault || s == Exiting {
			want.KillAfter = 40 * sec
		}
		if got := tb.ProcessRule(s); got != want {
			t.Errorf("%v without a states section = %v, want %v", s, got, want)
		}
	}
	tb = mustParse(t, "default: unbounded\nstates:\n")
	for _, s := range States() {
		if got := tb.ProcessRule(s); !got.Unbounded {
			t.Errorf("%v under an unbounded default = %v, want unbounded", s, got)
		}
	}
	if got := tb.StateRule("fsync", fdkind.None, Uninterruptible); !got.Unbounded {
		t.Errorf("uninterruptible under an unbounded default = %v", got)
	}
}

func TestStateOverridesFollowDefaults(t *testing.T) {
	base := mustParse(t, stateTable)
	tb, err := base.WithDefaults(dur(sec), dur(10*sec))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		got, want Rule
		why       string
	}{
		{tb.ProcessRule(Uninterruptible), Rule{Budget: 2 * sec, KillAfter: 30 * sec}, "explicit state rule kept"},
		{tb.ProcessRule(Running), Rule{Budget: 3 * sec, KillAfter: 10 * sec}, "explicit budget kept, inherited kill_after follows"},
		{tb.ProcessRule(Traced), Rule{Budget: sec}, "unlisted process state follows, never kills"},
		{tb.ProcessRule(Exiting), Rule{Budget: sec, KillAfter: 10 * sec}, "unlisted exiting follows entirely"},
		{tb.StateRule("nanosleep", fdkind.None, Running), Rule{Budget: sec, KillAfter: 10 * sec}, "override inherits the new kill_after"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("after --budget 1s --kill-after 10s: %v, want %v (%s)", c.got, c.want, c.why)
		}
	}
	// running's 3s budget (line 4) is above an inherited 2s kill_after.
	_, err = base.WithDefaults(dur(sec), dur(2*sec))
	if ce := configError(t, err); ce.Line != 4 || !strings.Contains(ce.Msg, "states: running: budget 3s is above the kill_after 2s it inherits from the default rule") {
		t.Errorf("override breaking a state rule: %v", err)
	}
}

func TestStateParseForms(t *testing.T) {
	tb := mustParse(t, stateTable)
	if tb.NeedsFDKind("clone3") || tb.NeedsFDKind("vfork") {
		t.Error("state-only overrides do not depend on the fd kind")
	}
	if !tb.NeedsFDKind("write") {
		t.Error("write has by_fd rules")
	}
	if got := tb.Lookup("clone3", fdkind.None); got != tb.DefaultRule() {
		t.Errorf("state-only entry's own rule = %v, want the default", got)
	}
	if got := tb.Lookup("write", fdkind.TTY); got != (Rule{Budget: 8 * sec}) {
		t.Errorf("state-only kind rule's elapsed rule = %v, want write's", got)
	}
	if min, free := tb.MinBudget("clone3"); min != 5*sec || free {
		t.Errorf("MinBudget(clone3) = %v, %v", min, free)
	}
}

func TestFormatStates(t *testing.T) {
	tb := mustParse(t, stateTable)
	want := `default: {budget: 5s, kill_after: 1m}
states:
  uninterruptible: {budget: 2s, kill_after: 30s}
  running: {budget: 3s, kill_after: 1m}
  page_fault: {budget: 5s, kill_after: 1m}
  stopped: {budget: 20s, kill_after: 1m30s}
  traced: {budget: 5s, kill_after: never}
  frozen: unbounded
  dumping_core: {budget: 5s, kill_after: never}
  exiting: {budget: 5s, kill_after: 1m}
  work_waiting: unbounded
syscalls:
  clone3: {budget: 5s, kill_after: 1m, uninterruptible: unbounded}
  fsync: {budget: 10s, kill_after: 2m}
  ioctl:
    budget: 5s
    kill_after: 1m
    by_fd:
      tty: unbounded
      other: {budget: unbounded, running: unbounded}
  nanosleep: {budget: unbounded, running: {budget: 1s, kill_after: 1m}}
  poll: unbounded
  read:
    budget: 5s
    kill_after: 1m
    by_fd:
      socket: {budget: unbounded, uninterruptible: {budget: 7s, kill_after: 1m}}
  sendfile:
    budget: 5s
    kill_after: 1m
    by_fd:
      socket: unbounded
      pipe: unbounded
  splice:
    budget: 5s
    kill_after: 1m
    by_fd:
      socket: unbounded
      pipe: unbounded
  vfork: {budget: unbounded, uninterruptible: unbounded}
  write:
    budget: 8s
    kill_after: never
    running: {budget: 4s, kill_after: never}
    by_fd:
      pipe: unbounded
      tty: {budget: 8s, kill_after: never, running: unbounded}
      device: {budget: 9s, kill_after: never, uninterruptible: {budget: 1m, kill_after: never}}
`
	if got := format(t, tb); got != want {
		t.Errorf("Format:\n%s\nwant:\n%s", got, want)
	}
}

// page_fault is set under states: only, inherits the default's kill_after,
// and no syscall changes it: a thread in a page fault is in none.
func TestPageFaultRule(t *testing.T) {
	tb := mustParse(t, "default: {budget: 5s, kill_after: 60s}\nstates:\n  page_fault: {budget: 2s}\nsyscalls:\n  read: unbounded\n")
	want := Rule{Budget: 2 * sec, KillAfter: 60 * sec}
	if got := tb.ProcessRule(PageFault); got != want {
		t.Errorf("ProcessRule(page_fault) = %v, want %v", got, want)
	}
	for _, syscall := range []string{"", "read"} {
		if got := tb.StateRule(syscall, fdkind.Regular, PageFault); got != want {
			t.Errorf("StateRule(%q, page_fault) = %v, want %v", syscall, got, want)
		}
	}
}
