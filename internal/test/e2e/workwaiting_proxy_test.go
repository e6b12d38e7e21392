package e2e

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/workload"
)

// backPressure is how long the proxy tests hold the proxy's client
// waiting: four budgets, so that a rule that judged back-pressure would
// have flagged it three times over.
const backPressure = 4 * waitBudget

// upstream is the proxy's upstream, in the test process (never watched):
// it accepts one connection and reads from it at readEvery (16 KiB at a
// time), or never when readEvery is 0.
type upstream struct {
	addr string
	read atomic.Int64
}

func startUpstream(t *testing.T, ns serviceNS, readEvery time.Duration) *upstream {
	t.Helper()
	// A small receive buffer, set before listen so that the accepted
	// socket has it from its handshake: a stalled upstream fills fast,
	// and a slow one reopens its window after each read.
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<10) })
		return errors.Join(err, serr)
	}}
	lc.SetMultipathTCP(false)
	// Listening inside ns, where the proxy is; served from here.
	var ln net.Listener
	ns.do(t, func() error {
		var err error
		ln, err = lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
		return err
	})
	t.Cleanup(func() { ln.Close() })
	u := &upstream{addr: ln.Addr().String()}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { c.Close() })
		if readEvery == 0 {
			return
		}
		buf := make([]byte, 16<<10)
		tick := time.NewTicker(readEvery)
		defer tick.Stop()
		for range tick.C {
			n, err := c.Read(buf)
			u.read.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	return u
}

// proxyClient connects to the proxy at addr and writes to it without end
// from a goroutine, counting what its writes took.
type proxyClient struct {
	written atomic.Int64
	started time.Time // just before the first write
}

func startProxyClient(t *testing.T, ns serviceNS, addr string) *proxyClient {
	t.Helper()
	conn := ns.dial(t, addr)
	t.Cleanup(func() { conn.Close() })
	p := &proxyClient{started: time.Now()}
	go func() {
		buf := make([]byte, 4<<10)
		for {
			n, err := conn.Write(buf)
			p.written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	return p
}

// blocked waits until the client's writes have stopped taking data for
// a few polls: every buffer between it and the stalled upstream is full,
// and the proxy has stopped reading it.
func (p *proxyClient) blocked(t *testing.T) time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	last, since := p.written.Load(), time.Now()
	for {
		time.Sleep(50 * time.Millisecond)
		now := p.written.Load()
		if now != last {
			last, since = now, time.Now()
			continue
		}
		if time.Since(since) >= 3*waitPoll && now > 0 {
			return since
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client still writes after 10s (%d bytes): no back-pressure", now)
		}
	}
}

// startProxy runs the workload's proxy in ns to up and returns the
// workload and the proxy's address.
func startProxy(t *testing.T, ns serviceNS, up *upstream) (*workload.Proc, string) {
	t.Helper()
	w := ns.startWorkload(t)
	return w, startServer(t, w, "proxy-server "+up.addr)
}

// idleHeartbeats waits until heartbeats have gone on for d after from
// and checks there was no stall.
func heartbeatsFor(t *testing.T, c *cluster, agent *harness.Proc, from time.Time, d time.Duration) {
	t.Helper()
	c.WaitPacket("heartbeats through the window", d+10*time.Second, func(p heartbeat.Packet) bool {
		return time.Unix(0, p.SendTime).Sub(from) >= d || p.State != heartbeat.StateAlive
	})
	noStall(t, c, agent)
}

// A proxy whose upstream stops reading stops reading its client
// (back-pressure): the client's data waits unread in the proxy's socket,
// with no read, for as long as the upstream likes. The default rule
// (listeners) never flags it.
func TestWorkWaitingBackPressureNotFlaggedByDefault(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	ns := newServiceNS(t)
	up := startUpstream(t, ns, 0)
	w, addr := startProxy(t, ns, up)
	agent := attachWaiting(t, c, w.PID, "backpressure")
	client := startProxyClient(t, ns, addr)
	since := client.blocked(t)
	written := client.written.Load()
	heartbeatsFor(t, c, agent, since, backPressure)
	if now := client.written.Load(); now != written {
		t.Fatalf("the client wrote %d more bytes: the proxy read again, the back-pressure did not last", now-written)
	}
	t.Logf("proxy's client held %v (%d bytes taken), not flagged", time.Since(since).Round(time.Millisecond), written)
}

// The same back-pressure under by_socket: all is work waiting on a
// connected socket: flagged within the budget and a poll, naming the
// proxy's socket, and killed at kill_after.
func TestWorkWaitingBackPressureFlaggedWithAllSockets(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	ns := newServiceNS(t)
	up := startUpstream(t, ns, 0)
	w, addr := startProxy(t, ns, up)
	agent := attachWaitingOn(t, c, w.PID, "backpressureall", "by_socket: all")
	client := startProxyClient(t, ns, addr)
	// The proxy reads its client until the buffers to the upstream are
	// full, a few ms after the first write: the wait starts after first.
	stalledOn(t, c, agent, w.PID, addr, "connected", client.started, itoa(w.PID)+":")
	killedWorkload(t, w)
}

// A proxy whose upstream reads slowly but steadily reads its client as
// slowly: data always waits in the proxy's socket, and reads keep
// taking it. Under by_socket: all it is never flagged.
func TestWorkWaitingSlowReaderNotFlaggedWithAllSockets(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	ns := newServiceNS(t)
	up := startUpstream(t, ns, 100*time.Millisecond)
	w, addr := startProxy(t, ns, up)
	agent := attachWaitingOn(t, c, w.PID, "slowreader", "by_socket: all")
	client := startProxyClient(t, ns, addr)
	heartbeatsFor(t, c, agent, client.started, backPressure)
	r, err := w.Do("server-counts")
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := r.Int("proxy_forwarded")
	if err != nil {
		t.Fatal(err)
	}
	read, written := up.read.Load(), client.written.Load()
	// Progress all along, and more written than forwarded: the proxy
	// never caught up, so its socket was never empty for long.
	if read < 10*16<<10 || int64(fwd) >= written {
		t.Fatalf("upstream read %d, proxy forwarded %d, client wrote %d: want steady reads behind the client", read, fwd, written)
	}
	t.Logf("in %v: client wrote %d, proxy forwarded %d, upstream read %d; not flagged", backPressure, written, fwd, read)
}
