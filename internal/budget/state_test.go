package budget

import (
	"strings"
	"testing"
)

func TestStateNamesRoundTrip(t *testing.T) {
	want := []string{"uninterruptible", "running", "page_fault", "stopped", "traced", "frozen", "dumping_core", "exiting", "work_waiting"}
	states := States()
	if len(states) != len(want) {
		t.Fatalf("States() has %d states, want %d", len(states), len(want))
	}
	for i, s := range states {
		if s != State(i) || s.String() != want[i] {
			t.Errorf("States()[%d] = %v (%d), want %q", i, s, s, want[i])
		}
		got, err := ParseState(want[i])
		if err != nil || got != s {
			t.Errorf("ParseState(%q) = %v, %v", want[i], got, err)
		}
	}
	if got := State(42).String(); got != "State(42)" {
		t.Errorf("out-of-range String() = %q", got)
	}
}

func TestParseStateUnknown(t *testing.T) {
	_, err := ParseState("sleeping")
	if err == nil {
		t.Fatal("unknown state accepted")
	}
	for _, n := range []string{`"sleeping"`, "uninterruptible", "exiting or work_waiting"} {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("error %q does not mention %s", err, n)
		}
	}
}

func TestStatePerSyscall(t *testing.T) {
	for _, s := range States() {
		want := s == Uninterruptible || s == Running
		if s.PerSyscall() != want {
			t.Errorf("%v.PerSyscall() = %v", s, !want)
		}
	}
}
