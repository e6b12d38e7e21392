package peer

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/nettest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// TestMulticastEndToEnd runs a real Sender and a real Listener over
// loopback multicast: signed ALIVE then STALLED, with a forged and a
// replayed packet in between that must be counted and ignored.
func TestMulticastEndToEnd(t *testing.T) {
	privtest.Require(t)
	group := nettest.LoopbackGroup(t)
	recv, err := heartbeat.Listen(heartbeat.ReceiverConfig{Group: group, Interface: "lo"})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer recv.Close()
	// TTL 0 keeps every packet on this host.
	send, err := heartbeat.NewSender(heartbeat.SenderConfig{Group: group, Interface: "lo", TTL: 0, Loopback: true})
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	defer send.Close()

	ring, err := heartbeat.NewKeyRing(key1)
	if err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(t.TempDir(), "env")
	events := make(chan Event, 16)
	l, err := NewListener(recv, ListenerConfig{
		Keys:       ring,
		Detector:   Config{Timeout: time.Hour}, // no deaths: this test is about packets
		OnEvent:    func(ev Event) { events <- ev },
		OnFailover: "env | grep '^STALLMON_' | sort > " + shellQuote(envFile),
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()

	incarnation := uint64(time.Now().UnixNano())
	sendPkt := func(b []byte) {
		t.Helper()
		if err := send.Send(b); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	wait := func(want State) Event {
		t.Helper()
		select {
		case ev := <-events:
			if ev.Node != "node-a" || ev.State != want || !ev.Authenticated {
				t.Fatalf("event %+v, want authenticated node-a %s", ev, want)
			}
			return ev
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s event within 10s", want)
			return Event{}
		}
	}

	sendPkt(marshalAt(t, pkt("node-a", alive, incarnation, 1), key1, time.Now()))
	wait(Alive)
	second := marshalAt(t, pkt("node-a", alive, incarnation, 2), key1, time.Now())
	sendPkt(second)
	sendPkt(marshalAt(t, pkt("node-a", stalled, incarnation, 3), forger, time.Now()))
	sendPkt(second)
	sendPkt(marshalAt(t, pkt("node-a", stalled, incarnation, 3), key1, time.Now()))
	// Loopback keeps order, so by the STALLED event the forged and the
	// replayed packet have been judged.
	ev := wait(Stalled)
	if !ev.Failover || ev.Reason != "stalled" || ev.Seq != 3 {
		t.Fatalf("stalled event %+v, want failover for seq 3", ev)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	st := l.Stats()
	if st.Accepted != 3 || st.Rejected["bad_mac"] != 1 || st.Rejected["replay"] != 1 || st.TotalRejected() != 2 {
		t.Fatalf("Stats() = %+v, want 3 accepted, 1 bad_mac, 1 replay", st)
	}
	// Run waits for hooks, so the file is complete now.
	data, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatalf("hook did not write its environment: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for _, want := range []string{
		"STALLMON_NODE=node-a",
		"STALLMON_REASON=stalled",
		"STALLMON_STATE=stalled",
		"STALLMON_INCARNATION=" + strconv.FormatUint(incarnation, 10),
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("hook environment lacks %s; got:\n%s", want, data)
		}
	}
}
