package harness

import (
	"context"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/nettest"
)

// Cluster is one node's view of a test: a multicast group on loopback, a
// shared key, and a tap that records every heartbeat on the group.
type Cluster struct {
	t       testing.TB
	Group   *net.UDPAddr
	KeyFile string
	Keys    heartbeat.KeyRing

	mu      sync.Mutex
	packets []Tapped
	arrived chan struct{}
}

// Tapped is a heartbeat as the tap received it.
type Tapped struct {
	P  heartbeat.Packet
	At time.Time
}

// NewCluster makes the group and key and starts the tap, which stops with
// the test.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i*7 + 1)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("id=1\nsecret="+hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := heartbeat.LoadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := heartbeat.NewKeyRing(key)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, Group: nettest.LoopbackGroup(t), KeyFile: keyFile, Keys: ring, arrived: make(chan struct{}, 1)}
	c.tap()
	return c
}

// GroupFlags are the flags that put attach or listen on this cluster.
func (c *Cluster) GroupFlags() []string {
	return []string{"--group", c.Group.String(), "--interface", "lo", "--key-file", c.KeyFile}
}

// tap joins the group and records every valid packet with its arrival time.
func (c *Cluster) tap() {
	r, err := heartbeat.Listen(heartbeat.ReceiverConfig{Group: c.Group, Interface: "lo"})
	if err != nil {
		c.t.Fatalf("joining %v: %v", c.Group, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c.t.Cleanup(func() { cancel(); <-done; r.Close() })
	go func() {
		defer close(done)
		for {
			b, err := r.Read(ctx)
			if err != nil {
				return
			}
			p, err := heartbeat.Unmarshal(b, c.Keys)
			if err != nil {
				c.t.Errorf("tap: invalid heartbeat on the group: %v", err)
				continue
			}
			c.mu.Lock()
			c.packets = append(c.packets, Tapped{p, time.Now()})
			c.mu.Unlock()
			select {
			case c.arrived <- struct{}{}:
			default:
			}
		}
	}()
}

// Seen returns every packet tapped so far, in arrival order.
func (c *Cluster) Seen() []Tapped {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Tapped(nil), c.packets...)
}

// WaitPacket waits for a packet matching ok, failing the test after timeout.
func (c *Cluster) WaitPacket(what string, timeout time.Duration, ok func(heartbeat.Packet) bool) heartbeat.Packet {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		for _, tp := range c.Seen() {
			if ok(tp.P) {
				return tp.P
			}
		}
		select {
		case <-c.arrived:
		case <-deadline:
			c.t.Fatalf("no %s heartbeat within %v (saw %d packets)", what, timeout, len(c.Seen()))
		}
	}
}

// LastAliveBefore is the send time of the last ALIVE before stalled, on
// the sender's clock. It fails the test if an ALIVE followed stalled, or
// if none came before it.
func (c *Cluster) LastAliveBefore(stalled heartbeat.Packet) time.Time {
	c.t.Helper()
	var last time.Time
	for _, tp := range c.Seen() {
		if tp.P.State != heartbeat.StateAlive {
			continue
		}
		if tp.P.Seq > stalled.Seq {
			c.t.Fatalf("ALIVE sent after STALLED: %+v", tp.P)
		}
		if at := time.Unix(0, tp.P.SendTime); at.After(last) {
			last = at
		}
	}
	if last.IsZero() {
		c.t.Fatal("no ALIVE before STALLED")
	}
	return last
}
