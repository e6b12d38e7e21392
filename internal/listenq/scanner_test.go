package listenq

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

func openScanner(t *testing.T) *Scanner {
	t.Helper()
	privtest.Require(t)
	s, err := Open()
	if err != nil {
		t.Fatalf("%+v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// find scans this process and returns the listener at addr.
func find(t *testing.T, s *Scanner, addr string) Listener {
	t.Helper()
	ls, err := s.Scan([]int{os.Getpid()}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Addr == addr {
			return l
		}
	}
	t.Fatalf("no listener %s among %+v", addr, ls)
	return Listener{}
}

// dialN opens n connections that complete their handshake (or unix
// connect) and wait in ln's accept queue.
func dialN(t *testing.T, network, addr string, n int) {
	t.Helper()
	for range n {
		c, err := net.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

// queueMoves checks the kernel-side view of one listener: an empty queue,
// then n queued with a mark that stands still while nothing is accepted,
// then a new mark after one accept.
func queueMoves(t *testing.T, s *Scanner, ln net.Listener, network, addr string, kind Kind) {
	idle := find(t, s, addr)
	if idle.Kind != kind || idle.Queued != 0 || idle.Limit == 0 || idle.PID != os.Getpid() {
		t.Fatalf("idle listener = %+v, want %v, empty queue, a limit, our pid", idle, kind)
	}
	dialN(t, network, ln.Addr().String(), 3)
	// TCP's handshake completes in softirq: the queue fills as the
	// client's connect returns, so no wait is needed.
	before := find(t, s, addr)
	if before.Queued != 3 {
		t.Fatalf("queued = %d after 3 connections, want 3", before.Queued)
	}
	if before.Mark == (Mark{}) {
		t.Fatal("a non-empty queue has a zero mark")
	}
	if again := find(t, s, addr); again.Mark != before.Mark {
		t.Fatalf("mark moved with nothing accepted: %v then %v", before.Mark, again.Mark)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	after := find(t, s, addr)
	if after.Queued != 2 || after.Mark == before.Mark {
		t.Fatalf("after one accept: queued %d (want 2), mark %v (was %v)", after.Queued, after.Mark, before.Mark)
	}
	if after.Ino != before.Ino {
		t.Fatalf("socket inode changed: %d then %d", before.Ino, after.Ino)
	}
}

func TestTCPListenerQueue(t *testing.T) {
	s := openScanner(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	queueMoves(t, s, ln, "tcp4", ln.Addr().String(), TCP)
}

func TestTCP6ListenerQueue(t *testing.T) {
	s := openScanner(t)
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer ln.Close()
	queueMoves(t, s, ln, "tcp6", ln.Addr().String(), TCP)
}

func TestUnixListenerQueue(t *testing.T) {
	s := openScanner(t)
	path := filepath.Join(t.TempDir(), "q.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	queueMoves(t, s, ln, "unix", path, Unix)
}

func TestAbstractUnixListener(t *testing.T) {
	s := openScanner(t)
	ln, err := net.Listen("unix", "@stallmon-listenq-test")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	find(t, s, "@stallmon-listenq-test")
}

// An abstract name bound with the whole sockaddr_un's length, padded with
// NULs (as C programs passing sizeof(struct sockaddr_un) do), is reported
// without them, so that skip and only can name it.
func TestAbstractUnixListenerPaddedWithNULs(t *testing.T) {
	s := openScanner(t)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	name := "@stallmon-listenq-padded"
	padded := name + strings.Repeat("\x00", 100-len(name))
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: padded}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		t.Fatal(err)
	}
	// /proc/net/unix prints an abstract name's NULs as '@': the kernel
	// holds the padding, or the test proves nothing.
	table, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(table), " "+name+"@@@") {
		t.Fatalf("no %s padded with NULs in /proc/net/unix", name)
	}
	if l := find(t, s, name); l.Kind != Unix {
		t.Fatalf("%+v, want a unix listener", l)
	}
}

// Connected sockets, datagram sockets and other processes' listeners are
// no listeners of ours.
func TestOnlyListenersOfTargets(t *testing.T) {
	s := openScanner(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	ls, err := s.Scan([]int{os.Getpid()}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Addr == c.LocalAddr().String() || l.Addr == u.LocalAddr().String() {
			t.Errorf("reported a socket that does not listen: %+v", l)
		}
	}
	// pid 1 never holds this test's listener.
	ls, err = s.Scan([]int{1}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Addr == ln.Addr().String() {
			t.Errorf("found our listener in pid 1's files: %+v", l)
		}
	}
	// A process that exited holds nothing, and is no error.
	if _, err := s.Scan([]int{deadPID(t)}, false); err != nil {
		t.Errorf("scanning an exited process: %v", err)
	}
}

func deadPID(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	return p.Pid
}

// A serial client of a serial server: each connection accepted, served
// and closed before the next comes, so its buffers and sockets are freed
// and the kernel readily hands the same addresses to the next one. The
// mark must still differ from one queued connection to the next, or a
// slow but serving service would look stuck.
func TestMarkMovesAcrossSerialConnections(t *testing.T) {
	s := openScanner(t)
	path := filepath.Join(t.TempDir(), "serial.sock")
	for _, c := range []struct{ network, addr string }{{"tcp4", "127.0.0.1:0"}, {"unix", path}} {
		t.Run(c.network, func(t *testing.T) {
			ln, err := net.Listen(c.network, c.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			addr := ln.Addr().String()
			var prev Mark
			for i := range 50 {
				client, err := net.Dial(c.network, addr)
				if err != nil {
					t.Fatal(err)
				}
				l := find(t, s, addr)
				if l.Queued != 1 {
					t.Fatalf("connection %d: queued %d, want 1", i, l.Queued)
				}
				if i > 0 && l.Mark == prev {
					t.Fatalf("connection %d has the mark of connection %d: %v", i, i-1, l.Mark)
				}
				prev = l.Mark
				conn, err := ln.Accept()
				if err != nil {
					t.Fatal(err)
				}
				conn.Close()
				client.Close()
			}
		})
	}
}
