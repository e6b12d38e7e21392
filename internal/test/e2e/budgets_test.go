package e2e

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/tracker"
)

// TestBudgetsPrintsStates checks that `stallmon budgets` shows the state
// rules moved by the overrides, as a table --config accepts back.
func TestBudgetsPrintsStates(t *testing.T) {
	var out bytes.Buffer
	code, stderr := runStallmon(t, func(c *exec.Cmd) { c.Stdout = &out }, "budgets", "--budget", "1s", "--kill-after", "3s")
	if code != 0 {
		t.Fatalf("stallmon budgets exited %d: %s", code, stderr)
	}
	for _, line := range []string{
		"  uninterruptible: {budget: 1s, kill_after: 3s}\n",
		"  page_fault: {budget: 1s, kill_after: 3s}\n",
		"  dumping_core: {budget: 1s, kill_after: never}\n",
		"  stopped: {budget: 3s, kill_after: never}\n", // pinned by the built-in table
		"  clone3: {budget: unbounded, uninterruptible: unbounded, running: {budget: 30s, kill_after: 2m}}\n",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("budgets output lacks %q:\n%s", line, out.String())
		}
	}
	tb, err := budget.Parse(out.Bytes(), tracker.JudgedSyscall)
	if err != nil {
		t.Fatalf("budgets output does not parse back: %v", err)
	}
	want := budget.Rule{Budget: time.Second, KillAfter: 3 * time.Second}
	if got := tb.StateRule("poll", fdkind.None, budget.Uninterruptible); got != want {
		t.Errorf("parsed back: poll in D = %v, want %v", got, want)
	}
}
