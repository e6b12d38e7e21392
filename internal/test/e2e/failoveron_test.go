package e2e

import (
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// An agent that resumes after a stall (--late-return=resume) heard by two
// listeners: the default one fails the node over on STALLED and never
// takes it for alive again in that incarnation, whatever it sends; the one
// run with --failover-on=fenced does not fail it over, and sees it alive.
func TestListenerFailoverOn(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	w := startWorkload(t)
	onStalled := startStallmon(t, append([]string{"listen", "--json", "--timeout", "3s", "--metrics-addr", ""}, c.GroupFlags()...)...)
	onFenced := startStallmon(t, append([]string{"listen", "--json", "--timeout", "3s", "--metrics-addr", "",
		"--failover-on", "fenced"}, c.GroupFlags()...)...)
	agent := startStallmon(t, append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json",
		"--node-id", "resumer", "--budget", "300ms", "--kill-after", "30s", "--poll-interval", "100ms",
		"--interval", "100ms", "--metrics-addr", "", "--late-return", "resume"}, c.GroupFlags()...)...)
	agent.Events.Next("attached", 20*time.Second)
	expect := func(name string, ev map[string]any, state string, failover bool) {
		t.Helper()
		if ev["node"] != "resumer" || ev["state"] != state || ev["failover"] != failover {
			t.Fatalf("%s listener: %v, want %s failover=%v", name, ev, state, failover)
		}
	}
	expect("default", onStalled.Events.NextAny(10*time.Second), "alive", false)
	expect("fenced", onFenced.Events.NextAny(10*time.Second), "alive", false)
	if _, err := w.Do("uffd-hang"); err != nil {
		t.Fatal(err)
	}
	expect("default", onStalled.Events.NextAny(10*time.Second), "stalled", true)
	expect("fenced", onFenced.Events.NextAny(10*time.Second), "stalled", false)
	if _, err := w.Do("uffd-release"); err != nil {
		t.Fatal(err)
	}
	expect("fenced", onFenced.Events.NextAny(10*time.Second), "alive", false)
	// The agent now sends ALIVE in the same incarnation; wait for a second
	// of them before checking the default listener saw no change.
	resumed := c.WaitPacket("ALIVE after the stall", 10*time.Second, func(p heartbeat.Packet) bool {
		return p.NodeID == "resumer" && p.State == heartbeat.StateAlive && p.Stall.TID == 0
	})
	c.WaitPacket("a second of ALIVE", 10*time.Second, func(p heartbeat.Packet) bool {
		return p.State == heartbeat.StateAlive && time.Unix(0, p.SendTime).Sub(time.Unix(0, resumed.SendTime)) > time.Second
	})
	stalled := false
	for _, ev := range onStalled.Events.Drain() {
		stalled = stalled || ev["state"] == "stalled"
		if stalled && ev["state"] == "alive" {
			t.Fatalf("the default listener took the failed-over node for alive again: %v", ev)
		}
	}
}
