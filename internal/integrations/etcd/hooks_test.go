package etcd

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/sink"
)

// A hook that outlives its timeout is killed with everything it started,
// the next hook still runs, and enqueueing never waits for either.
func TestHookTimeoutKillsItsGroup(t *testing.T) {
	log := testLogger(t)
	dir := t.TempDir()
	child := filepath.Join(dir, "child")
	h := newHookRunner(log, 300*time.Millisecond)
	defer h.close(time.Second)

	start := time.Now()
	h.enqueue(hookRun{event: hookElected, cmd: fmt.Sprintf("sleep 60 & echo $! > '%s'; wait", child)})
	h.enqueue(hookRun{event: hookDemoted, cmd: `echo "$STALLMON_EVENT ran"`, env: []string{"STALLMON_EVENT=demoted"}})
	if took := time.Since(start); took > 50*time.Millisecond {
		t.Errorf("enqueueing took %v", took)
	}
	waitFor(t, "both hooks logged", 5*time.Second, func() bool { return len(records(log, event.EtcdHook)) == 2 })
	recs := records(log, event.EtcdHook)
	if recs[0]["hook"] != hookElected || !strings.Contains(fmt.Sprint(recs[0]["err"]), "timed out") {
		t.Errorf("first hook logged %v, want elected timed out", recs[0])
	}
	if recs[1]["hook"] != hookDemoted || recs[1]["err"] != nil || recs[1]["output"] != "demoted ran" || recs[1]["exit_code"] != int64(0) {
		t.Errorf("second hook logged %v, want demoted, exit 0, its output", recs[1])
	}
	b, err := os.ReadFile(child)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// Reaped by init once killed; until then a zombie at most.
	waitFor(t, "the hook's background child killed", 5*time.Second, func() bool {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		f := strings.Fields(string(st)[strings.LastIndexByte(string(st), ')')+1:])
		return len(f) > 0 && f[0] == "Z"
	})
	if err := syscall.Kill(pid, 0); err == nil {
		t.Logf("child %d is a zombie awaiting its reaper", pid)
	}
}

// Close gives queued hooks their time, then kills what still runs: it
// never waits longer than asked.
func TestHookRunnerCloseIsBounded(t *testing.T) {
	log := testLogger(t)
	h := newHookRunner(log, time.Minute)
	h.enqueue(hookRun{event: hookDemoted, cmd: "sleep 60"})
	h.enqueue(hookRun{event: hookElected, cmd: "true"})
	waitFor(t, "hook started", 5*time.Second, func() bool { return hookRunning(h) })
	start := time.Now()
	h.close(200 * time.Millisecond)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("close took %v", took)
	}
	if recs := records(log, event.EtcdHook); len(recs) != 1 || !strings.Contains(fmt.Sprint(recs[0]["err"]), "killed") {
		t.Errorf("hook records %v, want the sleep killed", recs)
	}
	if recs := records(log, event.EtcdHookSkipped); len(recs) != 1 {
		t.Errorf("skip records %v, want the queued hook skipped", recs)
	}
}

func hookRunning(h *hookRunner) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.queue) == 1
}

// A demotion hook can tell a stall that stallmon will kill from one a
// rule that never kills holds (a stopped service): it must not stop the
// latter itself.
func TestHookSaysWhetherTheRuleKills(t *testing.T) {
	s := &Sink{cfg: Config{NodeID: "n", Election: "e"}}
	for _, c := range []struct {
		stall      *sink.Stall
		rule, kill string
	}{
		{&sink.Stall{Reason: "stopped"}, "stopped", "0"},
		{&sink.Stall{Reason: "over_budget", Kills: true}, "over_budget", "1"},
		{nil, "", "0"},
	} {
		env := s.hook(hookDemoted, "true", sink.Verdict{State: sink.Stalled, Stall: c.stall}, "stalled").env
		for _, want := range []string{"STALLMON_RULE=" + c.rule, "STALLMON_KILLS=" + c.kill} {
			if !slices.Contains(env, want) {
				t.Errorf("stall %+v: env %v lacks %s", c.stall, env, want)
			}
		}
	}
}
