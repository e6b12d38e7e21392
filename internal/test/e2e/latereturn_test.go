package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// Declared dead stays dead, by default: the hung read returns after
// STALLED went out and long before kill_after, and the service is killed
// at once rather than coming back beside the peer that took over. No
// ALIVE follows STALLED in that incarnation; FENCED does.
func TestLateReturnIsFencedByDefault(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	w := startWorkload(t)
	agent := startStallmon(t, append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json",
		"--node-id", "late", "--budget", "300ms", "--kill-after", "30s", "--poll-interval", "100ms",
		"--interval", "100ms", "--metrics-addr", ""}, c.GroupFlags()...)...)
	agent.Events.Next("attached", 20*time.Second)
	c.WaitPacket("ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })
	if _, err := w.Do("uffd-hang"); err != nil {
		t.Fatal(err)
	}
	stalled := c.WaitPacket("STALLED", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled })
	if _, err := w.Do("uffd-release"); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	if code := agent.Wait(t, 15*time.Second); code != exitKilled {
		t.Fatalf("stallmon exited %d, want %d (killed)", code, exitKilled)
	}
	t.Logf("killed and exited %v after the late return (kill_after 30s)", time.Since(released).Round(time.Millisecond))
	agent.Events.Next("late_return", time.Second)
	if kill := agent.Events.Next("kill", time.Second); kill["reason"] != "late_return" {
		t.Fatalf("kill event %v, want reason late_return", kill)
	}
	if err := w.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("workload ended with %v, want killed", err)
	}
	if ws := w.Cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("workload status %v, want SIGKILL", ws)
	}
	c.WaitPacket("FENCED", 5*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateFenced })
	for _, tp := range c.Seen() {
		if tp.P.Incarnation == stalled.Incarnation && tp.P.Seq > stalled.Seq && tp.P.State == heartbeat.StateAlive {
			t.Fatalf("ALIVE seq %d after STALLED seq %d in the same incarnation", tp.P.Seq, stalled.Seq)
		}
	}
}
