package agent

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
)

// Stats follow a real stall through to the kill, read from another
// goroutine while Run runs, as a metrics scrape does.
func TestStatsThroughStallAndKill(t *testing.T) {
	w, mon, table := watchHang(t, 200*time.Millisecond, 1500*time.Millisecond)
	const poll = 20 * time.Millisecond
	rec := &recorder{got: make(chan heartbeat.Packet, 1)}
	a, err := New(mon, Config{PollInterval: poll, Table: table, Kill: true, KillGrace: 2 * time.Second,
		Heartbeat: &HeartbeatConfig{Sender: rec, Interval: 50 * time.Millisecond, NodeID: "n1", Repeats: 2}})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		out Outcome
		err error
	}
	done := make(chan result, 1)
	go func() { o, err := a.Run(context.Background()); done <- result{o, err} }()

	waitStats := func(what string, ok func(Stats) bool) Stats {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			st := a.Stats()
			if ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 10s; stats %+v", what, st)
			}
			time.Sleep(poll)
		}
	}
	if _, err := w.Do("pipe-wait"); err != nil {
		t.Fatal(err)
	}
	st := waitStats("alive gate with the pipe read in flight", func(st Stats) bool {
		return st.Gate == "alive" && st.HeartbeatsSent["alive"] > 0 && hasInFlight(st, "read")
	})
	if st.PID != w.PID || st.NodeID != "n1" || len(st.Stalled) != 0 || st.Polls == 0 {
		t.Fatalf("healthy stats = %+v", st)
	}

	r, err := w.Do("uffd-hang")
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := r.Int("tid")
	st = waitStats("stalled gate", func(st Stats) bool { return st.Gate == "stalled" && len(st.Stalled) == 1 })
	if s := st.Stalled[0]; s.TID != tid || s.Syscall != "read" || s.Budget != 200*time.Millisecond ||
		s.KillAfter != 1500*time.Millisecond || s.Elapsed < s.Budget || s.FDKind != "device" {
		t.Fatalf("stalled thread = %+v, want tid %d in read over 200ms", s, tid)
	}
	if st.Stalls["read"] != 1 {
		t.Fatalf("stalls = %v, want one read", st.Stalls)
	}

	res := <-done
	if res.err != nil || res.out != TargetKilled {
		t.Fatalf("Run = %v, %v; want TargetKilled", res.out, res.err)
	}
	st = a.Stats()
	if st.Gate != "fenced" || st.Kills["read"] != 1 || st.Unkillable {
		t.Fatalf("after the kill: gate %s, kills %v, unkillable %v", st.Gate, st.Kills, st.Unkillable)
	}
	// One burst of Repeats per announcement. The stall is announced again
	// if the agent itself went blind meanwhile (a starved poll loop, which
	// a loaded CI machine does produce at a 20ms poll), so only the burst
	// size is fixed here; TestBeaconPacketsPerGateState pins the rest.
	sent := st.HeartbeatsSent
	if n := sent["stalled"]; n == 0 || n%2 != 0 {
		t.Errorf("stalled heartbeats sent = %d, want whole bursts of 2 (all: %v)", n, sent)
	}
	if sent["fenced"] != 2 {
		t.Errorf("fenced heartbeats sent = %d, want 2 (all: %v)", sent["fenced"], sent)
	}
	if got := uint64(len(rec.packets())); got != sent["alive"]+sent["stalled"]+sent["fenced"] {
		t.Errorf("sender got %d packets, stats count %v", got, sent)
	}
	for _, p := range rec.packets() {
		if p.State == heartbeat.StateStalled && (int(p.Stall.TID) != tid || p.Stall.Name != "read") {
			t.Errorf("STALLED names tid %d %q, want %d read", p.Stall.TID, p.Stall.Name, tid)
		}
	}
	if st.PollDuration.Count != st.Polls+st.PollFailures || st.PollLag.Count != st.PollDuration.Count-1 {
		t.Errorf("poll histograms count %d and %d for %d polls", st.PollDuration.Count, st.PollLag.Count, st.Polls)
	}
}

func hasInFlight(st Stats, syscall string) bool {
	for _, f := range st.InFlight {
		if f.Syscall == syscall && f.Threads > 0 && f.Oldest > 0 {
			return true
		}
	}
	return false
}

func TestHistogramBuckets(t *testing.T) {
	h := newHistogram([]time.Duration{time.Millisecond, 10 * time.Millisecond})
	for _, d := range []time.Duration{0, time.Millisecond, time.Millisecond + 1, 10 * time.Millisecond, time.Second} {
		h.observe(d)
	}
	if want := []uint64{2, 2, 1}; !slices.Equal(h.Counts, want) || h.Count != 5 {
		t.Fatalf("counts %v (total %d), want %v: a bound belongs to its own bucket", h.Counts, h.Count, want)
	}
}
