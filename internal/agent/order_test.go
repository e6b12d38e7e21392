package agent

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/event"
)

// gateWatch is a log handler that notes what the gate says at the moment
// each stall and stall_cleared event is written.
type gateWatch struct {
	gate *gate
	mu   sync.Mutex
	seen map[string]gateState
	got  chan string
}

func (h *gateWatch) Enabled(context.Context, slog.Level) bool { return true }
func (h *gateWatch) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *gateWatch) WithGroup(string) slog.Handler            { return h }

func (h *gateWatch) Handle(_ context.Context, r slog.Record) error {
	if r.Message != event.Stall && r.Message != event.StallCleared {
		return nil
	}
	st, _ := h.gate.state(time.Now())
	h.mu.Lock()
	h.seen[r.Message] = st
	h.mu.Unlock()
	h.got <- r.Message
	return nil
}

// A stall is logged before the gate closes on it, and its clearing before
// the gate opens again, so that the beacon's heartbeat_stopped and
// heartbeat_resumed, written when it reads the gate, always come after the
// event that caused them. Had the gate moved first, a beacon tick between
// the two would log heartbeat_resumed ahead of stall_cleared: an operator
// reading the log, and a test waiting for them in order, were misled.
func TestStallEventsPrecedeGate(t *testing.T) {
	w, mon, table := watchHang(t, 100*time.Millisecond, 0)
	watch := &gateWatch{seen: map[string]gateState{}, got: make(chan string, 4)}
	rec := &recorder{got: make(chan heartbeat.Packet, 1)}
	a, err := New(mon, Config{PollInterval: 20 * time.Millisecond, Table: table, Logger: slog.New(watch),
		Heartbeat: &HeartbeatConfig{Sender: rec, Interval: 20 * time.Millisecond, NodeID: "n"}})
	if err != nil {
		t.Fatal(err)
	}
	watch.gate = a.gate
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	wait := func(ev string) {
		t.Helper()
		select {
		case got := <-watch.got:
			if got != ev {
				t.Fatalf("event %s, want %s", got, ev)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s within 10s", ev)
		}
	}
	if _, err := w.Do("uffd-hang"); err != nil {
		t.Fatal(err)
	}
	wait(event.Stall)
	if _, err := w.Do("uffd-release"); err != nil {
		t.Fatal(err)
	}
	wait(event.StallCleared)
	watch.mu.Lock()
	defer watch.mu.Unlock()
	if st := watch.seen[event.Stall]; st == gateStalled {
		t.Errorf("the gate was already %v when the stall was logged", st)
	}
	if st := watch.seen[event.StallCleared]; st == gateAlive {
		t.Errorf("the gate was already %v when stall_cleared was logged", st)
	}
}
