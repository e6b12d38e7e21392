package peer

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
)

// chanSource hands the listener whatever the test pushes.
type chanSource struct {
	ch  chan []byte
	err chan error
}

func newChanSource() *chanSource {
	return &chanSource{ch: make(chan []byte, 64), err: make(chan error, 1)}
}

func (c *chanSource) Read(ctx context.Context) ([]byte, error) {
	select {
	case b := <-c.ch:
		return b, nil
	case err := <-c.err:
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fakeClock is advanced by the test; the listener's ticker still runs in
// real time, but what it decides depends only on this clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer is a log sink safe for the hook goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	key1 = &heartbeat.Key{ID: 1, Secret: bytes.Repeat([]byte{0x11}, 32)}
	// forger knows the key id but not the secret.
	forger = &heartbeat.Key{ID: 1, Secret: bytes.Repeat([]byte{0x99}, 32)}
)

func marshal(t *testing.T, p *heartbeat.Packet, k *heartbeat.Key) []byte {
	t.Helper()
	return marshalAt(t, p, k, time.Time{})
}

// marshalAt encodes p as sent at the given time (the zero time: 0).
func marshalAt(t *testing.T, p *heartbeat.Packet, k *heartbeat.Key, sent time.Time) []byte {
	t.Helper()
	if !sent.IsZero() {
		p.SendTime = sent.UnixNano()
	}
	b, err := p.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type harness struct {
	src    *chanSource
	clock  *fakeClock
	events chan Event
	log    *syncBuffer
	l      *Listener
	cancel context.CancelFunc
	done   chan error
}

func startListener(t *testing.T, cfg ListenerConfig) *harness {
	t.Helper()
	return startListenerWith(t, cfg, nil)
}

// startListenerWith lets tweak change the listener's insides before Run.
func startListenerWith(t *testing.T, cfg ListenerConfig, tweak func(*Listener)) *harness {
	t.Helper()
	h := &harness{
		src: newChanSource(), clock: &fakeClock{now: t0},
		events: make(chan Event, 64), log: &syncBuffer{}, done: make(chan error, 1),
	}
	cfg.Now = h.clock.Now
	cfg.OnEvent = func(ev Event) { h.events <- ev }
	cfg.Logger = slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l, err := NewListener(h.src, cfg)
	if err != nil {
		t.Fatalf("NewListener: %v", err)
	}
	h.l = l
	if tweak != nil {
		tweak(l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- l.Run(ctx) }()
	t.Cleanup(func() { h.stop(t) })
	return h
}

// stop cancels Run and waits for it, hooks included.
func (h *harness) stop(t *testing.T) error {
	t.Helper()
	h.cancel()
	select {
	case err, ok := <-h.done:
		if ok {
			close(h.done)
		}
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

func (h *harness) next(t *testing.T) Event {
	t.Helper()
	select {
	case ev := <-h.events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return Event{}
	}
}

func (h *harness) expect(t *testing.T, node string, from, to State, failover bool) Event {
	t.Helper()
	ev := h.next(t)
	if ev.Node != node || ev.Previous != from || ev.State != to || ev.Failover != failover {
		t.Fatalf("event %s %s->%s failover=%v, want %s %s->%s failover=%v",
			ev.Node, ev.Previous, ev.State, ev.Failover, node, from, to, failover)
	}
	return ev
}

func TestListenerDropsBadPackets(t *testing.T) {
	ring, err := heartbeat.NewKeyRing(key1)
	if err != nil {
		t.Fatal(err)
	}
	h := startListener(t, ListenerConfig{Keys: ring, Detector: Config{Timeout: time.Hour}})
	now := h.clock.Now()
	good1 := marshalAt(t, pkt("a", alive, 1, 1), key1, now)
	bad := [][]byte{
		nil,
		[]byte("STMN"),
		make([]byte, heartbeat.MaxPacketSize+1),
		marshalAt(t, pkt("a", alive, 1, 2), forger, now),
		marshal(t, pkt("a", alive, 1, 3), nil),
		good1, // replay
		marshalAt(t, pkt("a", alive, 1, 4), key1, now.Add(-2*time.Hour)), // a recording
	}
	h.src.ch <- good1
	h.expect(t, "a", Unknown, Alive, false)
	for _, b := range bad {
		h.src.ch <- b
	}
	// Packets are handled in order, so once this transition shows up every
	// bad packet before it has been judged.
	h.src.ch <- marshalAt(t, pkt("a", stalled, 1, 2), key1, now)
	h.expect(t, "a", Alive, Stalled, true)

	got := h.l.Stats()
	want := map[string]uint64{"truncated": 2, "oversized": 1, "bad_mac": 1, "unauthenticated": 1, "replay": 1, "outside_window": 1}
	if got.Accepted != 2 || len(got.Rejected) != len(want) {
		t.Fatalf("Stats() = %+v, want 2 accepted and %v", got, want)
	}
	for k, v := range want {
		if got.Rejected[k] != v {
			t.Fatalf("Stats().Rejected = %v, want %v", got.Rejected, want)
		}
	}
	if err := h.stop(t); err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
	// First of each kind is a warning, repeats are debug.
	if n := strings.Count(h.log.String(), "level=WARN msg=packet_dropped reason=truncated"); n != 1 {
		t.Fatalf("%d truncated warnings, want 1; log:\n%s", n, h.log)
	}
}

func TestListenerDeadAndHookOnce(t *testing.T) {
	out := filepath.Join(t.TempDir(), "hook.log")
	h := startListener(t, ListenerConfig{
		Detector:   Config{Timeout: 50 * time.Millisecond},
		OnFailover: `echo "$STALLMON_NODE $STALLMON_REASON $STALLMON_STATE $STALLMON_PREVIOUS $STALLMON_INCARNATION $STALLMON_SEQ $STALLMON_TAKEOVER_DEADLINE $STALLMON_AUTHENTICATED" >> ` + shellQuote(out),
	})
	h.src.ch <- marshal(t, pkt("n1", alive, 9, 1), nil)
	h.expect(t, "n1", Unknown, Alive, false)
	st := pkt("n1", stalled, 9, 2)
	st.TakeoverDeadline = 123456789
	h.src.ch <- marshal(t, st, nil)
	h.expect(t, "n1", Alive, Stalled, true)
	h.clock.Advance(time.Minute)
	ev := h.expect(t, "n1", Stalled, Dead, false)
	if ev.Reason != "dead" {
		t.Fatalf("dead event reason %q", ev.Reason)
	}
	if err := h.stop(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("hook output: %v", err)
	}
	if want := "n1 stalled stalled alive 9 2 123456789 0\n"; string(got) != want {
		t.Fatalf("hook ran with\n%q\nwant exactly one run\n%q", got, want)
	}
	if !strings.Contains(h.log.String(), "msg=failover_hook_done") {
		t.Fatalf("hook completion not logged:\n%s", h.log)
	}
}

func TestListenerFailingHook(t *testing.T) {
	h := startListener(t, ListenerConfig{OnFailover: "echo to-the-log; exit 3"})
	h.src.ch <- marshal(t, pkt("n1", alive, 1, 1), nil)
	h.expect(t, "n1", Unknown, Alive, false)
	h.src.ch <- marshal(t, pkt("n1", fenced, 1, 2), nil)
	h.expect(t, "n1", Alive, Fenced, true)
	// The listener keeps working after the hook fails.
	h.src.ch <- marshal(t, pkt("n1", alive, 2, 1), nil)
	h.expect(t, "n1", Fenced, Alive, false)
	if err := h.stop(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	log := h.log.String()
	for _, want := range []string{"msg=failover_hook_failed", "exit status 3", "to-the-log"} {
		if !strings.Contains(log, want) {
			t.Fatalf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestListenerHookTimeout(t *testing.T) {
	h := startListener(t, ListenerConfig{
		OnFailover:  "sleep 60; echo finished",
		HookTimeout: 100 * time.Millisecond,
	})
	h.src.ch <- marshal(t, pkt("n1", alive, 1, 1), nil)
	h.expect(t, "n1", Unknown, Alive, false)
	h.src.ch <- marshal(t, pkt("n1", stalled, 1, 2), nil)
	h.expect(t, "n1", Alive, Stalled, true)
	begin := time.Now()
	if err := h.stop(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if waited := time.Since(begin); waited > 5*time.Second {
		t.Fatalf("Run waited %v for a hook with a 100ms timeout", waited)
	}
	log := h.log.String()
	if !strings.Contains(log, "timed out") || strings.Contains(log, "finished") {
		t.Fatalf("want a timed-out hook that never finished; log:\n%s", log)
	}
}

func TestListenerSourceError(t *testing.T) {
	h := startListener(t, ListenerConfig{})
	boom := errors.New("socket gone")
	h.src.err <- boom
	select {
	case err := <-h.done:
		if !errors.Is(err, boom) {
			t.Fatalf("Run = %v, want %v", err, boom)
		}
		h.done <- nil // let Cleanup's stop find a result
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the source failed")
	}
}

func TestNewListenerRefuses(t *testing.T) {
	if _, err := NewListener(nil, ListenerConfig{}); err == nil {
		t.Fatal("nil source accepted")
	}
	if _, err := NewListener(newChanSource(), ListenerConfig{HookTimeout: -1}); err == nil {
		t.Fatal("negative hook timeout accepted")
	}
	if _, err := NewListener(newChanSource(), ListenerConfig{Detector: Config{Timeout: -1}}); err == nil {
		t.Fatal("negative detector timeout accepted")
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
