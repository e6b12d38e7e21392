package e2e

import (
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// stallmon attach --bpf-features=minimal, on a kernel that has every
// feature, loads the minimal object (the one Linux 5.10-5.14 get) and
// judges with it: a pipe read outlives kill_after with the heartbeat
// ALIVE, then a hung FUSE read is found by its syscall and fd, STALLED
// goes out and the target is killed.
func TestMinimalObjectKillsHungReadSparesPipe(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	const budget, killAfter, poll = 500 * time.Millisecond, 2 * time.Second, 100 * time.Millisecond
	w := startWorkload(t)
	fs := fusehang.Mount(t, fusehang.Options{HonourInterrupts: true})
	c := harness.NewCluster(t)
	agent := startStallmon(t, append([]string{"attach", "--pid", itoa(w.PID), "--bpf-features", "minimal",
		"--log-format", "json", "--budget", budget.String(), "--kill-after", killAfter.String(),
		"--poll-interval", poll.String(), "--interval", "200ms", "--metrics-addr", ""}, c.GroupFlags()...)...)
	loaded := agent.Events.Next("bpf_minimal_loaded", 10*time.Second)
	if loaded["choice"] != "minimal" {
		t.Errorf("bpf_minimal_loaded %v, want choice minimal", loaded)
	}
	if att := agent.Events.Next("attached", 10*time.Second); att["bpf_object"] != "minimal" {
		t.Errorf("attached %v, want bpf_object minimal", att)
	}

	pipe, err := w.Do("pipe-wait")
	if err != nil {
		t.Fatal(err)
	}
	pipeAt := time.Now()
	c.WaitPacket("ALIVE while the pipe read waits past kill_after", 15*time.Second, func(p heartbeat.Packet) bool {
		return p.State == heartbeat.StateAlive && time.Unix(0, p.SendTime).Sub(pipeAt) > killAfter+poll
	})

	r, err := w.Do("read-file " + fs.File)
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := r.Int("tid")
	fd, _ := r.Int("fd")
	stall := agent.Events.Next("stall", 10*time.Second)
	wantFields(t, "stall", stall, map[string]any{"tid": tid, "syscall": "read", "fd": fd,
		"fd_kind": "regular", "fs": "fuse", "reason": "over_budget"})
	c.WaitPacket("STALLED", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled })
	kill := agent.Events.Next("kill", 10*time.Second)
	if el, _ := kill["elapsed_seconds"].(float64); el <= killAfter.Seconds() {
		t.Errorf("killed at elapsed %vs, before kill_after %v", el, killAfter)
	}
	if code := agent.Wait(t, 10*time.Second); code != exitKilled {
		t.Fatalf("stallmon exited %d, want %d (killed)", code, exitKilled)
	}
	if !processExited(t, w.PID) {
		t.Fatal("the target runs on after the kill")
	}
	pt, _ := pipe.Int("tid")
	t.Logf("minimal object: pipe read (tid %d) spared past %v; FUSE read stalled at %.2fs, killed at %.2fs",
		pt, killAfter, stall["elapsed_seconds"], kill["elapsed_seconds"])
}
