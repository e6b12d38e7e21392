package heartbeat

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/nettest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// openLoopback returns a receiver and a sender on lo. TTL 0 keeps every
// packet on this host even if the interface choice were wrong.
func openLoopback(t *testing.T) (*Receiver, *Sender) {
	t.Helper()
	privtest.Require(t)
	group := nettest.LoopbackGroup(t)
	r, err := Listen(ReceiverConfig{Group: group, Interface: "lo"})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	s, err := NewSender(SenderConfig{Group: group, Interface: "lo", TTL: 0, Loopback: true})
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return r, s
}

func readWithin(t *testing.T, r *Receiver, d time.Duration) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	b, err := r.Read(ctx)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return b
}

func TestMulticastLoopback(t *testing.T) {
	r, s := openLoopback(t)
	ring := mustRing(t, testKey1)
	for seq := uint64(1); seq <= 3; seq++ {
		p := vecStalled()
		p.Seq = seq
		b := mustMarshal(t, p, testKey1)
		if err := s.Send(b); err != nil {
			t.Fatalf("Send: %v", err)
		}
		got := readWithin(t, r, 5*time.Second)
		if !bytes.Equal(got, b) {
			t.Fatalf("received %x, sent %x", got, b)
		}
		dp, err := Unmarshal(got, ring)
		if err != nil || dp.Seq != seq || dp.NodeID != p.NodeID {
			t.Fatalf("decoded %+v, %v; want seq %d", dp, err, seq)
		}
	}
}

func TestReceiverReadHonoursContext(t *testing.T) {
	r, s := openLoopback(t)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := r.Read(ctx)
		errc <- err
	}()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Read returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after cancel")
	}

	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	if _, err := r.Read(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read past deadline returned %v, want context.DeadlineExceeded", err)
	}

	// The interrupted reads must not leave a deadline behind.
	want := mustMarshal(t, vecAlive(), nil)
	if err := s.Send(want); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := readWithin(t, r, 5*time.Second); !bytes.Equal(got, want) {
		t.Fatalf("after cancel received %x, want %x", got, want)
	}
}

func TestOversizedDatagram(t *testing.T) {
	r, s := openLoopback(t)
	big := make([]byte, 600)
	copy(big, mustMarshal(t, vecAlive(), nil))
	if err := s.Send(big); !errors.Is(err, ErrOversized) {
		t.Fatalf("Send(600 bytes) = %v, want ErrOversized", err)
	}
	// Bypass Send's check to see what a receiver does with a hostile sender.
	if _, err := s.pc.WriteTo(big, nil, s.group); err != nil {
		t.Fatalf("raw send: %v", err)
	}
	got := readWithin(t, r, 5*time.Second)
	if len(got) != MaxPacketSize+1 {
		t.Fatalf("read %d bytes, want the %d-byte probe buffer full", len(got), MaxPacketSize+1)
	}
	if _, err := Unmarshal(got, KeyRing{}); !errors.Is(err, ErrOversized) {
		t.Fatalf("Unmarshal = %v, want ErrOversized", err)
	}
}
