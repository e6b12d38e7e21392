package e2e

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// The bad inputs docs/badinput.md lists are run from it by
// TestDocsBadInput, under strace; these are the others.
func TestAttachBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"pid and cgroup", []string{"attach", "--pid", "1", "--cgroup", "/x"}, exitUsage, "none of the others can be"},
		{"tree and cgroup", []string{"attach", "--tree", "--cgroup", "/x"}, exitUsage, "none of the others can be"},
		{"missing cgroup", []string{"attach", "--cgroup", "no/such/cgroup"}, exitUsage, "no such file or directory"},
		{"tree of pid 1", []string{"attach", "--pid", "1", "--tree"}, exitUsage, "every process of the host"},
		{"tree holding stallmon", []string{"attach", "--pid", strconv.Itoa(os.Getpid()), "--tree"}, exitUsage, "stallmon itself is in the tree"},
		{"bad log format", []string{"attach", "--pid", "1", "--log-format", "xml"}, exitUsage, `--log-format "xml"`},
		{"unknown node fence", []string{"attach", "--pid", "1", "--on-unkillable", "halt"}, exitUsage, `--on-unkillable "halt"`},
		{"node fence without kill", []string{"attach", "--pid", "1", "--on-unkillable", "reboot", "--no-kill"}, exitUsage, "needs the kill"},
		{"missing watchdog device", []string{"attach", "--pid", "1", "--on-unkillable", "watchdog", "--watchdog-device", "/nonexistent/watchdog"}, exitUsage, "/nonexistent/watchdog"},
		{"watchdog timeout under 1s", []string{"attach", "--pid", "1", "--on-unkillable", "watchdog", "--watchdog-timeout", "500ms"}, exitUsage, "at least 1s"},
		{"bad config", []string{"attach", "--pid", "1", "--config", "/nonexistent.yaml"}, exitUsage, "timeout table"},
		{"short key", []string{"attach", "--pid", "1", "--key-file", "/dev/null"}, exitUsage, "--key-file"},
		{"stray argument", []string{"attach", "--pid", "1", "extra"}, exitUsage, `unknown command "extra"`},
		{"bad late return", []string{"attach", "--pid", "1", "--late-return", "maybe"}, exitUsage, `--late-return: late return "maybe": want fence or resume`},
		{"node id too long", []string{"attach", "--pid", "1", "--node-id", strings.Repeat("n", 65)}, exitUsage, "--node-id: node id is 65 bytes, want 1..64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := runStallmon(t, nil, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want exit %d with %q", code, stderr, tc.code, tc.msg)
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); n != 0 {
				t.Fatalf("error is %d lines, want one: %q", n+1, stderr)
			}
		})
	}
}

// The story end to end: a real hung syscall is reported as a stall within
// one poll interval of its budget, cleared when it returns, and stallmon
// exits 0 with the target's status when the target exits.
func TestAttachReportsStall(t *testing.T) {
	privtest.Require(t)
	const budget, poll = 300 * time.Millisecond, 100 * time.Millisecond
	p := startWorkload(t)
	agent := startStallmon(t, "attach", "--pid", strconv.Itoa(p.PID),
		"--budget", budget.String(), "--poll-interval", poll.String(), "--log-format", "json", "--late-return", "resume")
	ev := agent.Events
	ev.Next("attached", 10*time.Second)

	r, err := p.Do("uffd-hang")
	if err != nil {
		t.Fatal(err)
	}
	stall := ev.Next("stall", 10*time.Second)
	wantTID, _ := r.Int("tid")
	wantFD, _ := r.Int("fd")
	if stall["tid"] != float64(wantTID) || stall["syscall"] != "read" || stall["fd"] != float64(wantFD) ||
		stall["pid"] != float64(p.PID) || stall["state"] != "interruptible" || stall["comm"] == "" {
		t.Fatalf("stall event = %v, want read on fd %d by tid %d", stall, wantFD, wantTID)
	}
	// Judged at the first poll after the budget ran out; slack covers
	// timer jitter on a loaded machine.
	el := stall["elapsed_seconds"].(float64)
	if el <= budget.Seconds() || el > (budget+poll+100*time.Millisecond).Seconds() {
		t.Fatalf("stall reported at %.3fs in flight, want within (%.1f, %.1f]", el, budget.Seconds(), (budget + poll + 100*time.Millisecond).Seconds())
	}

	if _, err := p.Do("uffd-release"); err != nil {
		t.Fatal(err)
	}
	cleared := ev.Next("stall_cleared", 10*time.Second)
	if cleared["tid"] != float64(wantTID) || cleared["duration_seconds"].(float64) < el {
		t.Fatalf("stall_cleared = %v", cleared)
	}

	if err := p.Send("exit 5"); err != nil {
		t.Fatal(err)
	}
	exited := ev.Next("target_exited", 10*time.Second)
	if exited["exit_code"] != float64(5) {
		t.Fatalf("target_exited = %v, want exit_code 5", exited)
	}
	if code := agent.Wait(t, 10*time.Second); code != exitOK {
		t.Fatalf("stallmon exited %d after its target, want %d", code, exitOK)
	}
}
