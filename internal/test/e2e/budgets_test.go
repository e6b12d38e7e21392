package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/testutil/harness"
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
		"default: {budget: 1s, kill_after: 3s}  # from builtin, then --budget and --kill-after\n",
		"  uninterruptible: {budget: 1s, kill_after: 3s}  # from the default rule\n",
		"  page_fault: {budget: 1s, kill_after: 3s}  # from the default rule\n",
		"  dumping_core: {budget: 1s, kill_after: never}  # from the default rule\n",
		"  stopped: {budget: 3s, kill_after: never}  # from builtin\n", // pinned by the built-in table
		"  clone3: {budget: unbounded, uninterruptible: unbounded, running: {budget: 30s, kill_after: 2m}}  # from builtin\n",
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

// TestBudgetsDefaultTablePath: the binary reads its default table and
// the drop-ins beside it without --config, prints where each rule came
// from, and reads its own output back; the stallmon the other tests run
// has that path pinned where nothing is, so the host's /etc/stallmon
// cannot change what they see.
func TestBudgetsDefaultTablePath(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "budgets.yaml")
	dropIn := filepath.Join(dir, "budgets.d", "10-db.yaml")
	bin := harness.BuildWithTablePath(t, table)
	budgets := func(bin string, args ...string) string {
		t.Helper()
		var out bytes.Buffer
		cmd := exec.Command(bin, append([]string{"budgets"}, args...)...)
		cmd.Stdout = &out
		if code, stderr := runCmd(t, cmd); code != 0 {
			t.Fatalf("stallmon budgets %v exited %d: %s", args, code, stderr)
		}
		return out.String()
	}
	const builtinDefault = "default: {budget: 5s, kill_after: 1m}  # from builtin\n"
	if out := budgets(bin); !strings.Contains(out, builtinDefault) {
		t.Errorf("no table at the default path: want the built-in table, got\n%s", out)
	}

	if err := os.MkdirAll(filepath.Dir(dropIn), 0o755); err != nil {
		t.Fatal(err)
	}
	for path, text := range map[string]string{
		table:  "extends: builtin\nsyscalls:\n  fsync: {budget: 50s, kill_after: 200s}\n",
		dropIn: "syscalls:\n  read: {by_fd: {device: unbounded}}\n",
	} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := budgets(bin)
	for _, line := range []string{
		builtinDefault,
		"  fsync: {budget: 50s, kill_after: 3m20s}  # from " + table + "\n",
		"      device: unbounded  # from " + dropIn + "\n",
		"      socket: unbounded  # from builtin\n",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("budgets lacks %q:\n%s", line, out)
		}
	}
	// The output is a table --config takes, the same rules once more.
	again := filepath.Join(t.TempDir(), "again.yaml")
	if err := os.WriteFile(again, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	back := budgets(bin, "--config", again)
	if strip(back) != strip(out) {
		t.Errorf("budgets --config of its own output differs:\n%s\nwas\n%s", back, out)
	}

	// The harness's stallmon is built with the same -X, so its default
	// path is its own (where nothing is), never the host's.
	info, err := exec.Command("go", "version", "-m", stallmonBin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	if !strings.Contains(string(info), "-X main.defaultTablePath="+filepath.Dir(stallmonBin)+"/etc/budgets.yaml") {
		t.Errorf("the harness's stallmon reads the host's table: its default path is not pinned:\n%s", info)
	}
}

// strip drops the "# from" comments budgets writes.
func strip(text string) string {
	return regexp.MustCompile(`(?m)  # from .*$`).ReplaceAllString(text, "")
}
