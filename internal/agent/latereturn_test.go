package agent

import (
	"context"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/sink"
)

// A declared target stays dead. Its hung read returns, before kill_after,
// after the sinks heard it stalled: under the fence policy it is killed at
// once (or, when stallmon may not kill or the rule never kills, the
// verdict stays stalled and the target lives); under resume it is alive
// again. Either way nothing reports it alive between the stall and the
// policy's outcome.
func TestLateReturn(t *testing.T) {
	for _, c := range []struct {
		name      string
		policy    LateReturn
		kill      bool
		killAfter time.Duration // 0: never
		want      Outcome       // for kill; otherwise the last verdict is checked
		last      sink.State
	}{
		{"fence kills", LateReturnFence, true, 30 * time.Second, TargetKilled, sink.Fenced},
		{"fence without kill stays stalled", LateReturnFence, false, 30 * time.Second, Detached, sink.Stalled},
		{"fence under kill_after never stays stalled", LateReturnFence, true, 0, Detached, sink.Stalled},
		{"resume", LateReturnResume, true, 30 * time.Second, Detached, sink.Alive},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, mon, table := watchHang(t, 200*time.Millisecond, c.killAfter)
			got := &verdicts{ch: make(chan sink.Verdict, 256)}
			hub := integrations(t, got)
			a, err := New(mon, Config{PollInterval: 20 * time.Millisecond, Table: table, Kill: c.kill, KillGrace: 5 * time.Second,
				LateReturn:   c.policy,
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
			if _, err := w.Do("uffd-hang"); err != nil {
				t.Fatal(err)
			}
			got.wait(t, sink.Stalled)
			released := time.Now()
			if _, err := w.Do("uffd-release"); err != nil {
				t.Fatal(err)
			}
			switch {
			case c.want == TargetKilled:
				select {
				case <-done:
					if outcome != TargetKilled {
						t.Fatalf("outcome %v, want killed", outcome)
					}
					t.Logf("killed %v after the read returned (kill_after 30s)", time.Since(released).Round(time.Millisecond))
				case <-time.After(10 * time.Second):
					t.Fatal("not fenced within 10s of the late return")
				}
			case c.last == sink.Alive:
				got.wait(t, sink.Alive)
			default:
				// Twenty more verdicts, a second's worth: all stalled.
				for range 20 {
					if v := <-got.ch; v.State != sink.Stalled {
						t.Fatalf("verdict %v after the late return, want stalled for good", v.State)
					}
				}
			}
			cancel()
			<-done
			if c.want != TargetKilled && outcome != Detached {
				t.Fatalf("outcome %v, want detached: the target must live", outcome)
			}
			if _, err := w.Do("tids"); c.want != TargetKilled && err != nil {
				t.Fatalf("the target no longer answers: %v", err)
			}
			if !hub.Settle(10 * time.Second) {
				t.Fatal("the integrations did not settle")
			}
			got.mu.Lock()
			defer got.mu.Unlock()
			stalled := false
			for _, v := range got.got {
				stalled = stalled || v.State == sink.Stalled
				if stalled && v.State == sink.Alive && c.policy == LateReturnFence {
					t.Fatalf("alive after stalled under the fence policy")
				}
			}
			if c.want == TargetKilled {
				if last := got.got[len(got.got)-1]; last.State != sink.Fenced || last.Stall == nil || last.Stall.Reason != reasonLateReturn {
					t.Fatalf("last verdict %+v, want fenced for late_return", last)
				}
			}
		})
	}
}
