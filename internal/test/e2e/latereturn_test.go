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

// --kill-after 0 never kills, also once the declared stall has ended: the
// hung read returns after STALLED went out, the service lives on, and it
// is reported stalled for the rest of the incarnation (peers may have
// taken over; only a restart rejoins). Before, the late return killed it.
func TestKillAfterZeroNeverKills(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	w := startWorkload(t)
	agent := startStallmon(t, append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json",
		"--node-id", "never", "--budget", "300ms", "--kill-after", "0", "--poll-interval", "100ms",
		"--interval", "100ms", "--metrics-addr", "127.0.0.1:0"}, c.GroupFlags()...)...)
	addr := agent.Events.Next("metrics_listening", 20*time.Second)["addr"].(string)
	agent.Events.Next("attached", 20*time.Second)
	c.WaitPacket("ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })
	if _, err := w.Do("uffd-hang"); err != nil {
		t.Fatal(err)
	}
	stalled := c.WaitPacket("STALLED", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled })
	if stalled.TakeoverDeadline != 0 {
		t.Errorf("STALLED promises a takeover deadline under --kill-after 0")
	}
	if _, err := w.Do("uffd-release"); err != nil {
		t.Fatal(err)
	}
	late := agent.Events.Next("late_return", 10*time.Second)
	if late["fence"] != false {
		t.Errorf("late_return %v, want fence false", late)
	}
	// The gate stays shut for twenty polls past the return (two
	// seconds at --poll-interval 100ms), each of which once killed.
	waitPolls(t, addr, 20)
	if body := scrape(t, addr); !strings.Contains(body, `stallmon_gate_state{state="stalled"} 1`) {
		t.Errorf("gate not stalled twenty polls after the late return:\n%s", body)
	}
	select {
	case <-agent.Done():
		t.Fatalf("stallmon exited %d after the late return", agent.Code())
	default:
	}
	if _, err := w.Do("tids"); err != nil {
		t.Fatalf("the service no longer answers after its late return: %v", err)
	}
	for _, tp := range c.Seen() {
		if tp.P.Incarnation == stalled.Incarnation && tp.P.Seq > stalled.Seq && tp.P.State != heartbeat.StateStalled {
			t.Fatalf("%v seq %d after STALLED seq %d under --kill-after 0, want STALLED for good", tp.P.State, tp.P.Seq, stalled.Seq)
		}
	}
	for _, ev := range agent.Events.Drain() {
		if ev["msg"] == "kill" {
			t.Fatalf("kill event %v under --kill-after 0", ev)
		}
	}
}
