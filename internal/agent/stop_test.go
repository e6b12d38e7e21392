package agent

import (
	"context"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/sink"
)

// A stall that went past its kill_after after the last regular poll is
// found by the stop's last look and killed for its own rule
// (over_budget), as the next poll would have killed it: not for the stop,
// whose reason is kept for a stall declared earlier and fenced only
// because stallmon stops. Before, the kill said reason stop.
func TestStopKillsPastKillAfterForItsRule(t *testing.T) {
	const budget, killAfter = 100 * time.Millisecond, 300 * time.Millisecond
	w, mon, table := watchHang(t, budget, killAfter)
	got := &verdicts{ch: make(chan sink.Verdict, 256)}
	hub := integrations(t, got)
	// One poll at the start, the next 10 s later: the stop's last look is
	// the first to see the hang.
	a, err := New(mon, Config{PollInterval: 10 * time.Second, Table: table, Kill: true, KillGrace: 5 * time.Second,
		Heartbeat:    &HeartbeatConfig{Sender: &recorder{got: make(chan heartbeat.Packet, 1)}, Interval: 20 * time.Millisecond, NodeID: "n"},
		Integrations: hub})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	var outcome Outcome
	go func() { outcome, _ = a.Run(ctx); close(done) }()
	got.wait(t, sink.Alive)
	started := time.Now()
	if _, err := w.Do("uffd-hang"); err != nil {
		t.Fatal(err)
	}
	// The rule is about time: let kill_after pass, with room.
	<-time.After(killAfter + 200*time.Millisecond)
	if since := time.Since(started); since > 5*time.Second {
		t.Fatalf("%v since the hang: too close to the next poll for this test", since)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the stop did not end")
	}
	if outcome != TargetKilled {
		t.Fatalf("outcome %v, want killed", outcome)
	}
	if !hub.Settle(10 * time.Second) {
		t.Fatal("the integrations did not settle")
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	last := got.got[len(got.got)-1]
	if last.State != sink.Fenced || last.Stall == nil || last.Stall.Reason != "over_budget" {
		t.Fatalf("last verdict %v stall %+v, want fenced for over_budget", last.State, last.Stall)
	}
}
