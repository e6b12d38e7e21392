package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// --cgroup watches every process of a cgroup and of its descendants,
// including one moved in after attach: a hang in that one is found (with
// its pid), and the whole service is killed through cgroup.kill, every
// process of it, before stallmon reports the kill done.
func TestCgroupStallKillsWholeService(t *testing.T) {
	privtest.Require(t)
	const budget, killAfter = 300 * time.Millisecond, time.Second
	first, nested, late := startWorkload(t), startWorkload(t), startWorkload(t)
	cg := cgrouptest.New(t)
	sub, err := cgroup.Mkdir(cg.Path, "workers")
	if err != nil {
		t.Fatal(err)
	}
	if err := cg.Add(first.PID); err != nil {
		t.Fatal(err)
	}
	if err := sub.Add(nested.PID); err != nil {
		t.Fatal(err)
	}
	agent := startStallmon(t, "attach", "--cgroup", cg.Path, "--no-heartbeat", "--log-format", "json",
		"--metrics-addr", "", "--budget", budget.String(), "--kill-after", killAfter.String(), "--poll-interval", "100ms")
	agent.Events.Next("attached", 10*time.Second)
	if err := sub.Add(late.PID); err != nil {
		t.Fatal(err)
	}
	r, err := late.Do("uffd-hang")
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := r.Int("tid")
	stall := agent.Events.Next("stall", 10*time.Second)
	wantFields(t, "stall", stall, map[string]any{"pid": late.PID, "tid": tid, "syscall": "read", "reason": "over_budget"})
	kill := agent.Events.Next("kill", 10*time.Second)
	wantFields(t, "kill", kill, map[string]any{"pid": late.PID, "tid": tid})
	if code := agent.Wait(t, 10*time.Second); code != exitKilled {
		t.Fatalf("stallmon exited %d, want %d (killed)", code, exitKilled)
	}
	for _, p := range []struct {
		name string
		pid  int
	}{{"first", first.PID}, {"nested", nested.PID}, {"late", late.PID}} {
		if !processExited(t, p.pid) {
			t.Errorf("the %s process (%d) outlived the kill of its cgroup", p.name, p.pid)
		}
	}
	if populated, err := cg.Populated(); err != nil || populated {
		t.Errorf("cgroup still populated (%v, %v) after stallmon reported the kill", populated, err)
	}
}

// A process outside the cgroup is never watched, and stallmon refuses a
// cgroup it runs in, or one that is empty.
func TestCgroupScope(t *testing.T) {
	privtest.Require(t)
	cg := cgrouptest.New(t)
	code, stderr := runStallmon(t, nil, "attach", "--cgroup", cg.Path, "--metrics-addr", "")
	if code != exitUsage || !strings.Contains(stderr, "has no processes") {
		t.Errorf("empty cgroup: exit %d, stderr %q; want %d and 'has no processes'", code, stderr, exitUsage)
	}
	code, stderr = runStallmon(t, nil, "attach", "--cgroup", "/", "--metrics-addr", "")
	if code != exitUsage || !strings.Contains(stderr, "stallmon itself runs in") {
		t.Errorf("cgroup holding stallmon: exit %d, stderr %q; want %d and 'stallmon itself runs in'", code, stderr, exitUsage)
	}
	code, stderr = runStallmon(t, nil, "attach", "--cgroup", "no/such/cgroup", "--metrics-addr", "")
	if code != exitUsage || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing cgroup: exit %d, stderr %q; want %d", code, stderr, exitUsage)
	}
}
