package e2e

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// progIDs lists the BPF programs process pid holds, from its fdinfo.
func progIDs(t *testing.T, pid int) []ebpf.ProgramID {
	t.Helper()
	dir := "/proc/" + itoa(pid) + "/fdinfo"
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []ebpf.ProgramID
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name())
		if err != nil {
			continue // closed since
		}
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "prog_id:"); ok {
				if id, err := strconv.ParseUint(strings.TrimSpace(rest), 10, 32); err == nil {
					ids = append(ids, ebpf.ProgramID(id))
				}
			}
		}
	}
	return ids
}

// An agent killed outright: its heartbeats stop, its BPF programs go with
// it, the target runs on untouched, and an agent started again speaks for
// the same node under a new incarnation, which the listener accepts.
func TestAgentKilledThenRestarted(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	w := startWorkload(t)
	listener := startStallmon(t, append([]string{"listen", "--json", "--timeout", "1s", "--metrics-addr", ""}, c.GroupFlags()...)...)
	args := append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json", "--node-id", "killed",
		"--interval", "100ms", "--metrics-addr", ""}, c.GroupFlags()...)
	first := startStallmon(t, args...)
	first.Events.Next("attached", 20*time.Second)
	alive := c.WaitPacket("ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })
	if ev := listener.Events.NextAny(10 * time.Second); ev["state"] != "alive" {
		t.Fatalf("listener: %v, want alive", ev)
	}
	progs := progIDs(t, first.Cmd.Process.Pid)
	if len(progs) == 0 {
		t.Fatal("the agent holds no BPF program")
	}

	if err := first.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	first.Wait(t, 10*time.Second)
	// Its heartbeats stopped: the listener hears a second of silence.
	if ev := listener.Events.NextAny(10 * time.Second); ev["state"] != "dead" || ev["failover"] != true {
		t.Fatalf("listener: %v, want dead with failover", ev)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, id := range progs {
		for {
			p, err := ebpf.NewProgramFromID(id)
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			if err == nil {
				p.Close()
			}
			if time.Now().After(deadline) {
				t.Fatalf("BPF program %d outlived the agent by 10s", id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := syscall.Kill(w.PID, 0); err != nil {
		t.Fatalf("the target did not outlive its agent: %v", err)
	}
	if _, err := w.Do("tids"); err != nil {
		t.Fatalf("the target no longer answers: %v", err)
	}

	second := startStallmon(t, args...)
	second.Events.Next("attached", 20*time.Second)
	ev := listener.Events.NextAny(10 * time.Second)
	if ev["state"] != "alive" || ev["incarnation"].(float64) <= float64(alive.Incarnation) {
		t.Fatalf("listener after the restart: %v, want alive with an incarnation over %d", ev, alive.Incarnation)
	}
}

// An agent stopped for two seconds (SIGSTOP, a VM paused) sends no ALIVE
// when it resumes until a poll taken after the resume backs it, and says
// how late it was.
func TestAgentStoppedSendsNoStaleAlive(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	w := startWorkload(t)
	agent := startStallmon(t, append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json",
		"--node-id", "paused", "--poll-interval", "100ms", "--interval", "50ms", "--metrics-addr", ""}, c.GroupFlags()...)...)
	agent.Events.Next("attached", 20*time.Second)
	c.WaitPacket("ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })
	pid := agent.Cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	// Two seconds stopped: the point of the test, not a wait for an event.
	time.Sleep(2 * time.Second)
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	late := agent.Events.Next("agent_late", 10*time.Second)
	if gap := late["gap_seconds"].(float64); gap < 2 {
		t.Fatalf("agent_late gap %.2fs, want at least the 2s stop", gap)
	}
	lateAt, err := time.Parse(time.RFC3339Nano, late["time"].(string))
	if err != nil {
		t.Fatal(err)
	}
	resumed := c.WaitPacket("ALIVE after the resume", 10*time.Second, func(p heartbeat.Packet) bool {
		return p.State == heartbeat.StateAlive && time.Unix(0, p.SendTime).After(stopped.Add(time.Second))
	})
	// The late poll is the first after the resume: no ALIVE before it.
	if sent := time.Unix(0, resumed.SendTime); sent.Before(lateAt) {
		t.Fatalf("ALIVE sent %v before the first poll after the resume", lateAt.Sub(sent))
	}
	t.Logf("first ALIVE %v after the late poll", time.Unix(0, resumed.SendTime).Sub(lateAt).Round(time.Microsecond))
}
