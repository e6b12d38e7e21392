// Package hbtest is the seed's own system for tests: a C service whose
// heartbeat thread sends multicast while its main thread serves requests
// (Service), and a peer that listens to that group on loopback and
// records when each node was last heard, as the seed's peers do before
// they take over (Peer).
package hbtest

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Peer records the heartbeats heard on one group.
type Peer struct {
	mu    sync.Mutex
	heard map[string][]time.Time
	seqs  map[string][]uint64
	sent  map[string]time.Duration // CLOCK_MONOTONIC of the latest send
	conn  *net.UDPConn
	done  chan struct{}
}

// Listen joins group on loopback until the test ends.
func Listen(t testing.TB, group *net.UDPAddr) *Peer {
	t.Helper()
	lc := net.ListenConfig{}
	pc, err := lc.ListenPacket(context.Background(), "udp4", net.JoinHostPort(group.IP.String(), strconv.Itoa(group.Port)))
	if err != nil {
		t.Fatalf("hbtest: listening on %v: %v", group, err)
	}
	conn := pc.(*net.UDPConn)
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatalf("hbtest: %v", err)
	}
	if err := ipv4.NewPacketConn(conn).JoinGroup(lo, &net.UDPAddr{IP: group.IP}); err != nil {
		conn.Close()
		t.Fatalf("hbtest: joining %v: %v", group, err)
	}
	p := &Peer{heard: map[string][]time.Time{}, seqs: map[string][]uint64{}, sent: map[string]time.Duration{}, conn: conn, done: make(chan struct{})}
	go p.read()
	t.Cleanup(func() {
		conn.Close()
		<-p.done
	})
	return p
}

func (p *Peer) read() {
	defer close(p.done)
	buf := make([]byte, 256)
	for {
		n, _, err := p.conn.ReadFromUDP(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		now := time.Now()
		f := strings.Fields(string(buf[:n]))
		if len(f) != 4 || f[0] != "hb" {
			continue
		}
		seq, _ := strconv.ParseUint(f[2], 10, 64)
		mono, _ := strconv.ParseInt(f[3], 10, 64)
		p.mu.Lock()
		p.heard[f[1]] = append(p.heard[f[1]], now)
		p.seqs[f[1]] = append(p.seqs[f[1]], seq)
		p.sent[f[1]] = time.Duration(mono)
		p.mu.Unlock()
	}
}

// Heard is every arrival time of node's heartbeats so far.
func (p *Peer) Heard(node string) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.heard[node]...)
}

// Seqs is every sequence number heard from node, in arrival order.
func (p *Peer) Seqs(node string) []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]uint64(nil), p.seqs[node]...)
}

// LastSent is when the latest packet heard from node was sent, on
// CLOCK_MONOTONIC (compare with Mono): free of the peer's own receive
// latency.
func (p *Peer) LastSent(node string) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent[node]
}

// Mono is CLOCK_MONOTONIC now, the clock of LastSent.
func Mono() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return time.Duration(ts.Nano())
}

// Last is when node was last heard; zero if never.
func (p *Peer) Last(node string) time.Time {
	h := p.Heard(node)
	if len(h) == 0 {
		return time.Time{}
	}
	return h[len(h)-1]
}

// HeardSince reports whether node was heard after since.
func (p *Peer) HeardSince(node string, since time.Time) bool {
	return p.Last(node).After(since)
}

// WaitHeard waits until node is heard after since, or timeout passes.
func (p *Peer) WaitHeard(node string, since time.Time, timeout time.Duration) bool {
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		if p.HeardSince(node, since) {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return p.HeardSince(node, since)
}

// WaitSilent waits until node has been silent for takeover (the peer
// takes over then), or timeout passes. It returns the last arrival before
// the silence, and whether the silence came.
func (p *Peer) WaitSilent(node string, takeover, timeout time.Duration) (time.Time, bool) {
	end := time.Now().Add(timeout)
	for {
		last := p.Last(node)
		if !last.IsZero() && time.Since(last) >= takeover {
			return last, true
		}
		if time.Now().After(end) {
			return last, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}
