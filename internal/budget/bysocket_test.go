package budget

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const wwDefault = "default: {budget: 5s, kill_after: 60s}\nstates:\n"

func TestBySocketDefaultsToListeners(t *testing.T) {
	for _, src := range []string{
		wwDefault + "  work_waiting: {budget: 10s, kill_after: 60s}\n",
		wwDefault + "  work_waiting: {budget: 10s, kill_after: 60s, by_socket: listeners}\n",
		"default: {budget: 5s, kill_after: 60s}\n",
	} {
		if got := mustParse(t, src).WorkWaitingSockets(); got != Listeners {
			t.Errorf("%q: by_socket = %v, want listeners", src, got)
		}
	}
}

func TestBySocketAll(t *testing.T) {
	tb := mustParse(t, wwDefault+"  work_waiting: {budget: 1s, kill_after: 30s, by_socket: all}\n")
	if got := tb.WorkWaitingSockets(); got != AllSockets {
		t.Errorf("by_socket = %v, want all", got)
	}
	// by_socket is no part of the timing: the rule is what it was.
	if got, want := tb.ProcessRule(WorkWaiting), (Rule{Budget: time.Second, KillAfter: 30 * sec}); got != want {
		t.Errorf("work_waiting = %v, want %v", got, want)
	}
	// --budget/--kill-after rebuild the table: by_socket stays.
	o, err := tb.WithDefaults(dur(2*time.Second), dur(90*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got := o.WorkWaitingSockets(); got != AllSockets {
		t.Errorf("by_socket after WithDefaults = %v, want all", got)
	}
}

// Format writes by_socket back, and what it writes parses to the same.
func TestBySocketRoundTrip(t *testing.T) {
	tb := mustParse(t, wwDefault+"  work_waiting: {budget: 1s, by_socket: all}\n")
	var b bytes.Buffer
	if err := tb.Format(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "  work_waiting: {budget: 1s, kill_after: 1m, by_socket: all}\n") {
		t.Fatalf("formatted table lacks by_socket:\n%s", b.String())
	}
	back := mustParse(t, b.String())
	if back.WorkWaitingSockets() != AllSockets || back.ProcessRule(WorkWaiting) != tb.ProcessRule(WorkWaiting) {
		t.Errorf("round trip: %v %v, want all %v", back.WorkWaitingSockets(), back.ProcessRule(WorkWaiting), tb.ProcessRule(WorkWaiting))
	}
	// The default writes nothing: a table without by_socket reads as before.
	plain := mustParse(t, wwDefault+"  work_waiting: {budget: 1s}\n")
	b.Reset()
	if err := plain.Format(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "by_socket") {
		t.Errorf("listeners (the default) written out:\n%s", b.String())
	}
}

// A drop-in that restates work_waiting without by_socket goes back to
// listeners: a rule is replaced whole, as budget and kill_after are.
func TestBySocketDropInReplacesRule(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "budgets.yaml")
	write(t, main, wwDefault+"  work_waiting: {budget: 1s, kill_after: 30s, by_socket: all}\n")
	mkdir(t, DropInDir(main))
	write(t, filepath.Join(DropInDir(main), "10-ww.yaml"), "states:\n  work_waiting: {budget: 2s, kill_after: 30s}\n")
	over, err := Load(main, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := over.WorkWaitingSockets(); got != Listeners {
		t.Errorf("after a drop-in without by_socket: %v, want listeners", got)
	}
}

func TestBySocketRejected(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{wwDefault + "  work_waiting: {budget: 1s, by_socket: connected}\n", `line 3: states: work_waiting: by_socket: want listeners or all, got "connected"`},
		{wwDefault + "  work_waiting: {budget: 1s, by_socket: [all]}\n", "by_socket: want listeners or all, got a list"},
		{wwDefault + "  work_waiting: {budget: 1s, by_socket: }\n", "by_socket: want listeners or all, got nothing"},
		{wwDefault + "  work_waiting: {budget: 1s, by_socket: ALL}\n", `want listeners or all, got "ALL"`},
		{wwDefault + "  work_waiting: {budget: unbounded, by_socket: all}\n", "by_socket, only and skip need a budget"},
		{wwDefault + "  work_waiting: {by_socket: all}\n", "budget is missing"},
		{wwDefault + "  work_waiting: {budget: 1s, by_socket: all, by_socket: listeners}\n", "duplicate key"},
		{wwDefault + "  frozen: {budget: 1s, by_socket: all}\n", "states: frozen: by_socket is for the work_waiting rule only"},
		{"default: {budget: 5s, kill_after: 60s, by_socket: all}\n", "by_socket is for the work_waiting rule only"},
		{"default: {budget: 5s, kill_after: 60s}\nsyscalls:\n  accept: {budget: 1s, by_socket: all}\n", "syscall accept: by_socket is for the work_waiting rule only"},
	} {
		_, err := Parse([]byte(c.src), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want one containing %q", c.src, err, c.want)
		}
	}
}
