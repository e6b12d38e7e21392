package listenq

import (
	"context"
	"net"
	"testing"
	"time"
)

// With Go >= 1.24 net.Listen("tcp4") makes an MPTCP listener where
// the kernel has MPTCP on (as here): TestTCPListenerQueue exercises only
// the IPPROTO_MPTCP branch. This runs the same checks on a plain TCP
// listener (IPPROTO_TCP, what redis, nginx, a C service make).
func TestPlainTCPListenerQueue(t *testing.T) {
	s := openScanner(t)
	ln := plainTCPListener(t)
	queueMoves(t, s, ln, "tcp4", ln.Addr().String(), TCP)
}

// When the head's client resets or closes, its TCP request stays queued
// with its ISNs: the mark stands and the wait goes on.
func TestTCPMarkStillWhenHeadClientCloses(t *testing.T) {
	s := openScanner(t)
	ln := plainTCPListener(t)
	head, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	dialN(t, "tcp4", ln.Addr().String(), 2)
	before := find(t, s, ln.Addr().String())
	head.(*net.TCPConn).SetLinger(0) // RST
	head.Close()
	time.Sleep(50 * time.Millisecond)
	after := find(t, s, ln.Addr().String())
	if after.Mark != before.Mark || after.Queued != before.Queued {
		t.Errorf("head client reset: queued %d -> %d, mark %v -> %v", before.Queued, after.Queued, before.Mark, after.Mark)
	}
}

// plainTCPListener listens on loopback with IPPROTO_TCP, not Go's
// default MPTCP; it is closed at the test's end.
func plainTCPListener(t *testing.T) net.Listener {
	t.Helper()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
