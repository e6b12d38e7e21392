package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/sink"
	"github.com/stallmon/stallmon/internal/tracker"
)

// The heartbeat's packets for each gate verdict, stepped at chosen times so
// that no scheduler decides when the gate goes stale: one STALLED burst
// per stall, silence while it lasts, a new burst (but not a new
// heartbeat_stopped) after a blind spell, and ALIVE again once it clears.
func TestBeaconPacketsPerGateState(t *testing.T) {
	const maxAge, repeats = 100 * time.Millisecond, 3
	var logs bytes.Buffer
	rec := &recorder{got: make(chan heartbeat.Packet, 1)}
	g := newGate(maxAge)
	pub := &publisher{gate: g, deadline: func(time.Time, *judged) time.Time { return time.Time{} }, pid: func() int { return 1 }}
	b := newBeacon(HeartbeatConfig{Sender: rec, Interval: time.Second, NodeID: "n", Repeats: repeats},
		slog.New(slog.NewJSONHandler(&logs, nil)), newStatsRecorder(maxAge/2))
	stall := judged{thread: tracker.Thread{TID: 42, Syscall: "read", Nr: 0, Elapsed: time.Second}, span: time.Second}
	t0 := time.Unix(1000, 0)

	steps := []struct {
		name   string
		polled []judged // nil: no new poll before this step
		fresh  bool     // a poll at the step's time
		at     time.Duration
		want   []heartbeat.State
	}{
		{"healthy", nil, true, 0, []heartbeat.State{heartbeat.StateAlive}},
		{"stall begins", []judged{stall}, true, 10 * time.Millisecond, stalledBurst(repeats)},
		{"stall goes on", []judged{stall}, true, 20 * time.Millisecond, nil},
		{"agent starved: blind", nil, false, 20*time.Millisecond + maxAge + 1, nil},
		{"stall seen again", []judged{stall}, true, 200 * time.Millisecond, stalledBurst(repeats)},
		{"stall goes on again", []judged{stall}, true, 210 * time.Millisecond, nil},
		{"stall cleared", nil, true, 220 * time.Millisecond, []heartbeat.State{heartbeat.StateAlive}},
		{"still healthy", nil, true, 230 * time.Millisecond, []heartbeat.State{heartbeat.StateAlive}},
	}
	for _, st := range steps {
		at := t0.Add(st.at)
		if st.fresh {
			g.polled(at, st.polled)
		}
		before := len(rec.packets())
		b.now = func() time.Time { return at }
		if err := b.Apply(context.Background(), pub.verdict(at)); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var got []heartbeat.State
		for _, p := range rec.packets()[before:] {
			got = append(got, p.State)
			if p.State == heartbeat.StateStalled && (p.Stall.TID != 42 || p.Stall.Name != "read") {
				t.Errorf("%s: STALLED names tid %d %q, want 42 read", st.name, p.Stall.TID, p.Stall.Name)
			}
		}
		if !slices.Equal(got, st.want) {
			t.Fatalf("%s: sent %v, want %v", st.name, got, st.want)
		}
	}
	seq := uint64(0)
	for _, p := range rec.packets() {
		if p.Seq != seq+1 {
			t.Fatalf("sequence jumps from %d to %d", seq, p.Seq)
		}
		seq = p.Seq
	}
	if n := countEvents(t, logs.Bytes(), event.HeartbeatStopped); n != 1 {
		t.Errorf("%d %s events, want 1: the blind spell is part of the same silence", n, event.HeartbeatStopped)
	}
	if n := countEvents(t, logs.Bytes(), event.HeartbeatResumed); n != 1 {
		t.Errorf("%d %s events, want 1", n, event.HeartbeatResumed)
	}
}

func stalledBurst(n int) []heartbeat.State {
	s := make([]heartbeat.State, n)
	for i := range s {
		s[i] = heartbeat.StateStalled
	}
	return s
}

func countEvents(t *testing.T, logs []byte, msg string) int {
	t.Helper()
	n := 0
	for line := range bytes.Lines(logs) {
		var rec struct{ Msg string }
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Msg == msg {
			n++
		}
	}
	return n
}

// An alive verdict that went stale before the beacon could send it (the
// agent stopped in between) sends nothing, and the next fresh one does.
func TestBeaconDropsStaleAlive(t *testing.T) {
	rec := &recorder{got: make(chan heartbeat.Packet, 4)}
	b := newBeacon(HeartbeatConfig{Sender: rec, Interval: time.Second, NodeID: "n", Repeats: 1},
		slog.New(slog.DiscardHandler), newStatsRecorder(time.Second))
	t0 := time.Unix(1000, 0)
	b.now = func() time.Time { return t0.Add(3 * time.Second) }
	stale := sink.Verdict{State: sink.Alive, At: t0, ValidUntil: t0.Add(200 * time.Millisecond)}
	if err := b.Apply(context.Background(), stale); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.packets()); n != 0 {
		t.Fatalf("%d packets for a stale alive verdict", n)
	}
	fresh := sink.Verdict{State: sink.Alive, At: t0.Add(3 * time.Second), ValidUntil: t0.Add(3200 * time.Millisecond)}
	if err := b.Apply(context.Background(), fresh); err != nil {
		t.Fatal(err)
	}
	if p := rec.packets(); len(p) != 1 || p[0].State != heartbeat.StateAlive {
		t.Fatalf("packets %v, want one ALIVE", p)
	}
}
