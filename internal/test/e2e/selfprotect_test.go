package e2e

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/selfprotect"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// While attached, stallmon's memory is locked (its judging never waits on
// a page coming back from swap) and the OOM killer takes it after the
// service. Logs what the lock costs in resident memory.
func TestAttachProtectsItself(t *testing.T) {
	privtest.Require(t)
	w := startWorkload(t)
	agent := startStallmon(t, "attach", "--pid", itoa(w.PID), "--no-heartbeat", "--log-format", "json",
		"--metrics-addr", "")
	agent.Events.Next("attached", 20*time.Second)
	pid := agent.Cmd.Process.Pid
	adj, err := os.ReadFile("/proc/" + itoa(pid) + "/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.TrimSpace(string(adj))
	if hasCap(t, unix.CAP_SYS_RESOURCE) {
		if got != strconv.Itoa(selfprotect.OOMScoreAdj) {
			t.Errorf("oom_score_adj %s, want %d", got, selfprotect.OOMScoreAdj)
		}
	} else {
		// A container without CAP_SYS_RESOURCE (this CI's) may not lower
		// it: stallmon says so and goes on.
		warned := false
		for _, ev := range agent.Events.All() {
			warned = warned || (ev["msg"] == "self_protect_failed" && strings.Contains(ev["err"].(string), "CAP_SYS_RESOURCE"))
		}
		if !warned || got != "0" {
			t.Errorf("without CAP_SYS_RESOURCE: oom_score_adj %s, warned %v; want 0 and a self_protect_failed naming it", got, warned)
		}
		t.Logf("no CAP_SYS_RESOURCE here: oom_score_adj stays %s, as logged", got)
	}
	status, err := os.ReadFile("/proc/" + itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	kb := func(field string) int {
		for line := range strings.Lines(string(status)) {
			if rest, ok := strings.CutPrefix(line, field+":"); ok {
				n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
				return n
			}
		}
		t.Fatalf("no %s in /proc/%d/status", field, pid)
		return 0
	}
	locked, rss := kb("VmLck"), kb("VmRSS")
	t.Logf("stallmon attached: VmLck %d kB, VmRSS %d kB", locked, rss)
	if locked == 0 {
		t.Error("no memory locked")
	}
	// The service keeps its own score: only stallmon's is lowered.
	if adj, err := os.ReadFile("/proc/" + itoa(w.PID) + "/oom_score_adj"); err != nil || strings.TrimSpace(string(adj)) == strconv.Itoa(selfprotect.OOMScoreAdj) {
		t.Errorf("the target's oom_score_adj is %q (%v)", adj, err)
	}
}

// hasCap reports whether this process holds capability c in its effective
// set: stallmon, started by it as root, holds the same.
func hasCap(t *testing.T, c int) bool {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "CapEff:"); ok {
			v, err := strconv.ParseUint(strings.TrimSpace(rest), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v&(1<<uint(c)) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}
