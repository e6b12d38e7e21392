package budget

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/repo"
)

// work_waiting judges accept queues only when the table asks: neither the
// built-in table nor --budget/--kill-after turns it on.
func TestWorkWaitingOffUnlessListed(t *testing.T) {
	tb, err := Default(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tb.ProcessRule(WorkWaiting); !got.Unbounded {
		t.Errorf("built-in work_waiting = %v, want unbounded (off)", got)
	}
	tb, err = tb.WithDefaults(dur(time.Second), dur(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got := tb.ProcessRule(WorkWaiting); !got.Unbounded {
		t.Errorf("work_waiting after --budget 1s --kill-after 3s = %v, want unbounded (off)", got)
	}
}

func TestWorkWaitingListed(t *testing.T) {
	tb := mustParse(t, "default: {budget: 5s, kill_after: 60s}\nstates:\n  work_waiting: {budget: 10s, kill_after: 30s}\n")
	if got, want := tb.ProcessRule(WorkWaiting), (Rule{Budget: 10 * sec, KillAfter: 30 * sec}); got != want {
		t.Errorf("work_waiting = %v, want %v", got, want)
	}
	// A budget alone takes the default's kill_after, as other states do.
	tb = mustParse(t, "default: {budget: 5s, kill_after: 60s}\nstates:\n  work_waiting: {budget: 10s}\n")
	if got, want := tb.ProcessRule(WorkWaiting), (Rule{Budget: 10 * sec, KillAfter: 60 * sec}); got != want {
		t.Errorf("work_waiting with a budget only = %v, want %v", got, want)
	}
	if got := tb.StateRule("accept", 0, WorkWaiting); got != tb.ProcessRule(WorkWaiting) {
		t.Errorf("StateRule(accept, work_waiting) = %v, want the states rule", got)
	}
}

func TestWorkWaitingNotPerSyscall(t *testing.T) {
	_, err := Parse([]byte("default: {budget: 5s, kill_after: 60s}\nsyscalls:\n  accept: {budget: unbounded, work_waiting: {budget: 1s}}\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "per listening socket") {
		t.Errorf("work_waiting under a syscall: err %v, want a refusal naming what it judges", err)
	}
}

// The rule docs/budgets.md recommends, and the built-in table's comment
// shows, parses to what they say.
func TestWorkWaitingRecommendation(t *testing.T) {
	const line = "  work_waiting: {budget: 10s, kill_after: 60s}\n"
	doc, err := os.ReadFile(repo.Path(t, "docs/budgets.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "states:\n"+line) {
		t.Errorf("docs/budgets.md does not recommend %q", line)
	}
	if !strings.Contains(string(DefaultYAML()), "  # "+line) {
		t.Errorf("default.yaml's comment does not show %q", line)
	}
	tb := mustParse(t, "default: {budget: 5s, kill_after: 60s}\nstates:\n"+line)
	if got, want := tb.ProcessRule(WorkWaiting), (Rule{Budget: 10 * sec, KillAfter: 60 * sec}); got != want {
		t.Errorf("recommended rule = %v, want %v", got, want)
	}
}
