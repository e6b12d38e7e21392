package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// The user's incident, end to end: a syscall hangs for real; the heartbeat
// stops within budget + poll + interval, STALLED reaches the peer, whose
// failover hook runs; at kill_after the process is killed through its
// pidfd and stallmon exits 3.
func TestStallStopsHeartbeatAndKills(t *testing.T) {
	privtest.Require(t)
	const (
		budget    = 300 * time.Millisecond
		killAfter = 2 * time.Second
		poll      = 100 * time.Millisecond
		interval  = 200 * time.Millisecond
	)
	c := newCluster(t)
	w := startWorkload(t)
	hookFile := filepath.Join(t.TempDir(), "hook")
	listener := startStallmon(t, append([]string{"listen", "--json", "--timeout", "3s",
		"--on-failover", `echo "$STALLMON_NODE $STALLMON_REASON $(date +%s%N)" >> ` + hookFile}, c.GroupFlags()...)...)
	agent := startStallmon(t, append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json",
		"--node-id", "n1", "--budget", budget.String(), "--kill-after", killAfter.String(),
		"--poll-interval", poll.String(), "--interval", interval.String(), "--kill-grace", "3s"}, c.GroupFlags()...)...)

	agent.Events.Next("attached", 10*time.Second)
	if ev := listener.Events.NextAny(10 * time.Second); ev["state"] != "alive" || ev["node"] != "n1" || ev["authenticated"] != true {
		t.Fatalf("listener's first transition = %v, want n1 alive, authenticated", ev)
	}

	if _, err := w.Do("uffd-hang"); err != nil {
		t.Fatal(err)
	}
	stalled := c.WaitPacket("STALLED", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled })
	if stalled.Stall.Name != "read" || stalled.TakeoverDeadline == 0 {
		t.Fatalf("STALLED packet = %+v, want the read and a takeover deadline", stalled)
	}
	// ALIVE promises no deadline: nothing kills a healthy target whose
	// heartbeat is lost (docs/wire.md, What a peer may rely on).
	for _, tp := range c.Seen() {
		if tp.P.State == heartbeat.StateAlive && tp.P.TakeoverDeadline != 0 {
			t.Fatalf("ALIVE seq %d carries a takeover deadline %v after its send",
				tp.P.Seq, time.Unix(0, tp.P.TakeoverDeadline).Sub(time.Unix(0, tp.P.SendTime)))
		}
	}
	// The kernel measured how long the read had been in flight when
	// STALLED was sent, which dates the hang on the sender's clock.
	hang := time.Unix(0, stalled.SendTime).Add(-stalled.Stall.Elapsed)

	ev := listener.Events.NextAny(10 * time.Second)
	if ev["state"] != "stalled" || ev["failover"] != true {
		t.Fatalf("listener transition = %v, want stalled with failover", ev)
	}
	if code := agent.Wait(t, 15*time.Second); code != exitKilled {
		t.Fatalf("stallmon attach exited %d, want %d (killed)", code, exitKilled)
	}
	for _, name := range []string{"stall", "heartbeat_stopped", "kill", "target_exited"} {
		agent.Events.Next(name, time.Second)
	}
	if err := w.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("workload ended with %v, want killed by a signal", err)
	}
	if ws := w.Cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("workload status %v, want SIGKILL", ws)
	}
	fenced := c.WaitPacket("FENCED", 5*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateFenced })

	lastAlive := c.LastAliveBefore(stalled)
	hookAt := readHook(t, hookFile, "n1 stalled")
	toLastAlive, toHook, toFenced := lastAlive.Sub(hang), hookAt.Sub(hang), time.Unix(0, fenced.SendTime).Sub(hang)
	t.Logf("budget %v, poll %v, interval %v, kill_after %v: hang->last ALIVE %v, hang->STALLED sent %v, hang->peer hook %v, hang->FENCED %v",
		budget, poll, interval, killAfter, toLastAlive.Round(time.Millisecond), stalled.Stall.Elapsed.Round(time.Millisecond),
		toHook.Round(time.Millisecond), toFenced.Round(time.Millisecond))
	if bound := budget + poll + interval; toLastAlive > bound {
		t.Errorf("last ALIVE %v after the hang, want <= budget+poll+interval = %v", toLastAlive, bound)
	}
	if toFenced < killAfter {
		t.Errorf("FENCED %v after the hang, before kill_after %v", toFenced, killAfter)
	}
}

// readHook returns the time the failover hook wrote the line starting
// with prefix, checking it ran exactly once.
func readHook(t *testing.T, path, prefix string) time.Time {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("failover hook did not run: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], prefix+" ") {
		t.Fatalf("hook output %q, want one line %q", b, prefix)
	}
	ns, err := strconv.ParseInt(strings.TrimPrefix(lines[0], prefix+" "), 10, 64)
	if err != nil {
		t.Fatalf("hook time: %v", err)
	}
	return time.Unix(0, ns)
}

// A stall that is past kill_after at the very poll that first sees it
// (here kill_after equals the budget) is fenced at once; the peers must
// still hear STALLED before the kill, not only FENCED after it.
func TestStalledSentBeforeImmediateKill(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	w := startWorkload(t)
	agent := startStallmon(t, append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json",
		"--node-id", "n1", "--budget", "300ms", "--kill-after", "300ms", "--poll-interval", "100ms",
		"--interval", "200ms", "--kill-grace", "3s"}, c.GroupFlags()...)...)
	agent.Events.Next("attached", 10*time.Second)
	c.WaitPacket("ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })
	if _, err := w.Do("uffd-hang"); err != nil {
		t.Fatal(err)
	}
	if code := agent.Wait(t, 15*time.Second); code != exitKilled {
		t.Fatalf("stallmon attach exited %d, want %d (killed)", code, exitKilled)
	}
	// STALLED went out before the kill: heartbeat_stopped, logged as it
	// is sent, comes before the kill event.
	stopped := agent.Events.Next("heartbeat_stopped", time.Second)
	if stopped["reason"] != "stall" || stopped["syscall"] != "read" {
		t.Fatalf("heartbeat_stopped = %v, want the read's stall", stopped)
	}
	agent.Events.Next("kill", time.Second)
	fenced := c.WaitPacket("FENCED", 5*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateFenced })
	var stalled []heartbeat.Packet
	for _, tp := range c.Seen() {
		if tp.P.State == heartbeat.StateStalled {
			stalled = append(stalled, tp.P)
		}
	}
	if len(stalled) == 0 || stalled[0].Seq > fenced.Seq || stalled[0].Stall.Name != "read" || stalled[0].TakeoverDeadline == 0 {
		t.Fatalf("STALLED packets %+v before FENCED seq %d, want the read's, with a takeover deadline", stalled, fenced.Seq)
	}
}
