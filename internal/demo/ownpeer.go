package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
)

// ownPeer is the service's own peer, as the seed's peers are: a plain
// multicast listener on the service's heartbeat group that knows nothing
// of stallmon, and takes over once that heartbeat has been silent for a
// while. Its read deadline, moved at each datagram, is its silence timer.
type ownPeer struct {
	conn    *net.UDPConn
	silence time.Duration
	print   func(format string, args ...any)
	heard   chan struct{}  // closed at the first datagram
	takes   chan time.Time // the takeover's time, once
	done    chan struct{}

	mu       sync.Mutex
	lastMono time.Duration // CLOCK_MONOTONIC at the send of the latest datagram
	lastSeq  int
	count    int
	after    int // datagrams heard after the takeover
}

// listenOwn joins group on loopback; the peer runs until ctx is done.
func listenOwn(ctx context.Context, group *net.UDPAddr, silence time.Duration, print func(string, ...any)) (*ownPeer, error) {
	pc, err := (&net.ListenConfig{}).ListenPacket(ctx, "udp4", group.String())
	if err != nil {
		return nil, fmt.Errorf("own peer: listening on %v: %w", group, err)
	}
	conn := pc.(*net.UDPConn)
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("own peer: %w", err)
	}
	if err := ipv4.NewPacketConn(conn).JoinGroup(lo, &net.UDPAddr{IP: group.IP}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("own peer: joining %v: %w", group, err)
	}
	p := &ownPeer{conn: conn, silence: silence, print: print,
		heard: make(chan struct{}), takes: make(chan time.Time, 1), done: make(chan struct{})}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	go p.run()
	return p, nil
}

func (p *ownPeer) run() {
	defer close(p.done)
	buf := make([]byte, 256)
	var last time.Time // arrival of the latest datagram
	took := false
	for {
		// No silence is counted before the first datagram, nor after
		// the takeover: there is nothing more to decide.
		deadline := time.Time{}
		if !last.IsZero() && !took {
			deadline = last.Add(p.silence)
		}
		if err := p.conn.SetReadDeadline(deadline); err != nil {
			return
		}
		n, _, err := p.conn.ReadFromUDP(buf)
		now := time.Now()
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			took = true
			p.mu.Lock()
			seq := p.lastSeq
			p.mu.Unlock()
			p.print("the service's own heartbeat stopped: taking over (nothing for %v since seq %d)", p.silence, seq)
			p.takes <- now
			continue
		case err != nil:
			return // closed at the end of the demo
		}
		seq, mono, ok := parseHeartbeat(buf[:n])
		if !ok {
			continue
		}
		last = now
		p.mu.Lock()
		p.lastSeq, p.lastMono = seq, mono
		p.count++
		first := p.count == 1
		if took {
			p.after++
		}
		p.mu.Unlock()
		if first {
			p.print("hears the service's own heartbeat (seq %d)", seq)
			close(p.heard)
		}
		if took {
			p.print("hears the service's own heartbeat again (seq %d) after taking over", seq)
		}
	}
}

// parseHeartbeat reads "hb PID SEQ MONO", the workload's heartbeat.
func parseHeartbeat(b []byte) (seq int, mono time.Duration, ok bool) {
	f := strings.Fields(string(b))
	if len(f) != 4 || f[0] != "hb" {
		return 0, 0, false
	}
	seq, err1 := strconv.Atoi(f[2])
	ns, err2 := strconv.ParseInt(f[3], 10, 64)
	return seq, time.Duration(ns), err1 == nil && err2 == nil
}

// last is the latest datagram's send time (CLOCK_MONOTONIC) and seq, and
// how many were heard after the takeover.
func (p *ownPeer) last() (mono time.Duration, seq, after int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastMono, p.lastSeq, p.after
}

// close stops the peer and waits for its reader.
func (p *ownPeer) close() {
	p.conn.Close()
	<-p.done
}
