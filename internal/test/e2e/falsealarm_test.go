package e2e

import (
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// A target idle in a pipe read (and Go's epoll_wait and futex waits) for
// 10s while another thread makes a steady stream of fast syscalls and a
// third fsyncs: with the default table and a 300ms default budget, the
// heartbeat never stops.
func TestIdleAndBusyTargetKeepsHeartbeat(t *testing.T) {
	privtest.Require(t)
	const (
		interval = 200 * time.Millisecond
		watch    = 10 * time.Second
	)
	c := newCluster(t)
	w := startWorkload(t)
	for _, cmd := range []string{"pipe-wait", "busy", "fsync-loop " + t.TempDir()} {
		if _, err := w.Do(cmd); err != nil {
			t.Fatal(err)
		}
	}
	agent := startStallmon(t, append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json",
		"--node-id", "idle", "--budget", "300ms", "--poll-interval", "100ms", "--interval", interval.String()}, c.GroupFlags()...)...)
	agent.Events.Next("attached", 10*time.Second)
	first := c.WaitPacket("ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })

	start := time.Unix(0, first.SendTime)
	// The window is measured on the sender's clock, from its packets.
	c.WaitPacket("10s of heartbeats", watch+10*time.Second, func(p heartbeat.Packet) bool {
		return time.Unix(0, p.SendTime).Sub(start) >= watch
	})

	var alive int
	var prev time.Time
	for _, tp := range c.Seen() {
		if tp.P.State != heartbeat.StateAlive {
			t.Fatalf("non-ALIVE heartbeat from a healthy target: %+v", tp.P)
		}
		sent := time.Unix(0, tp.P.SendTime)
		if !prev.IsZero() && sent.Sub(prev) > 3*interval {
			t.Errorf("heartbeat gap of %v at %v (interval %v)", sent.Sub(prev), sent.Sub(start), interval)
		}
		prev = sent
		alive++
	}
	if want := int(watch/interval) - 2; alive < want {
		t.Fatalf("%d ALIVE heartbeats in %v, want at least %d", alive, watch, want)
	}
	for _, ev := range agent.Events.Drain() {
		if ev["msg"] == "stall" || ev["msg"] == "heartbeat_stopped" {
			t.Fatalf("false alarm: %v", ev)
		}
	}
	t.Logf("%d ALIVE heartbeats in %v, no stall", alive, watch)
}

// A syscall that returns after its budget but before kill_after: the
// heartbeat stops, then resumes with a higher sequence; nothing is killed.
func TestStallThatClearsResumesHeartbeat(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	w := startWorkload(t)
	agent := startStallmon(t, append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json",
		"--node-id", "slow", "--budget", "300ms", "--kill-after", "10s", "--poll-interval", "100ms", "--interval", "200ms",
		"--late-return", "resume"}, c.GroupFlags()...)...)
	agent.Events.Next("attached", 10*time.Second)
	c.WaitPacket("ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })

	if _, err := w.Do("uffd-hang"); err != nil {
		t.Fatal(err)
	}
	stalled := c.WaitPacket("STALLED", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled })
	agent.Events.Next("heartbeat_stopped", 5*time.Second)
	if _, err := w.Do("uffd-release"); err != nil {
		t.Fatal(err)
	}
	cleared := agent.Events.Next("stall_cleared", 5*time.Second)
	if cleared["syscall"] != "read" {
		t.Fatalf("stall_cleared = %v", cleared)
	}
	agent.Events.Next("heartbeat_resumed", 5*time.Second)
	resumed := c.WaitPacket("ALIVE after STALLED", 5*time.Second, func(p heartbeat.Packet) bool {
		return p.State == heartbeat.StateAlive && p.Seq > stalled.Seq
	})
	if resumed.Incarnation != stalled.Incarnation {
		t.Fatalf("incarnation changed from %d to %d without a restart", stalled.Incarnation, resumed.Incarnation)
	}
	select {
	case <-agent.Done():
		t.Fatalf("stallmon exited (%d) although the syscall returned before kill_after", agent.Code())
	default:
	}
	if _, err := w.Do("tids"); err != nil {
		t.Fatalf("workload no longer answers: %v", err)
	}
}
