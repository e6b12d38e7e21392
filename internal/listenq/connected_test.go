package listenq

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// connectedAt scans this process for connected sockets until the one
// whose fd is fd shows want queued (data crosses loopback in softirq,
// usually before the write returns), and returns it.
func connectedAt(t *testing.T, s *Scanner, fd int, want uint32) Listener {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ls, err := s.Scan([]int{os.Getpid()}, true)
		if err != nil {
			t.Fatal(err)
		}
		var got *Listener
		for i := range ls {
			if ls[i].FD == fd {
				got = &ls[i]
			}
		}
		if got != nil && got.Queued == want {
			if !got.Connected {
				t.Fatalf("%+v: not marked connected", *got)
			}
			return *got
		}
		if time.Now().After(deadline) {
			t.Fatalf("fd %d: %+v, want %d queued", fd, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// absent checks that no socket with fd is reported.
func absent(t *testing.T, s *Scanner, fd int, connected bool) {
	t.Helper()
	ls, err := s.Scan([]int{os.Getpid()}, connected)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.FD == fd {
			t.Fatalf("fd %d reported: %+v", fd, l)
		}
	}
}

// fdOf returns the fd number of a socket kept open by its net.Conn.
func fdOf(t *testing.T, c syscall.Conn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		t.Fatal(err)
	}
	return fd
}

func write(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, c net.Conn, n int) {
	t.Helper()
	if _, err := io.ReadFull(c, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
}

// A connected TCP socket: its unread bytes and a mark (copied_seq) that
// stands while nothing is read and moves with a read; nothing reported
// when listeners alone are asked for, nor once everything is read, nor
// for a peer's close nobody has read (no work).
func TestConnectedTCPUnread(t *testing.T) {
	s := openScanner(t)
	ln := plainTCPListener(t)
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fd := fdOf(t, srv.(syscall.Conn))
	absent(t, s, fd, true)
	write(t, client, make([]byte, 100))
	before := connectedAt(t, s, fd, 100)
	if before.Kind != TCP || before.Addr != ln.Addr().String() || before.Limit == 0 {
		t.Fatalf("%+v, want tcp at %s with a limit", before, ln.Addr())
	}
	absent(t, s, fd, false)
	if again := connectedAt(t, s, fd, 100); again.Mark != before.Mark {
		t.Fatalf("mark moved with nothing read: %v then %v", before.Mark, again.Mark)
	}
	read(t, srv, 10)
	if after := connectedAt(t, s, fd, 90); after.Mark == before.Mark || after.Ino != before.Ino {
		t.Fatalf("after a read: %+v (was %+v), want the same socket with a new mark", after, before)
	}
	read(t, srv, 90)
	absent(t, s, fd, true)
	// The peer closes: its FIN takes a sequence number, but is no data.
	client.Close()
	fin := time.Now().Add(5 * time.Second)
	for !peerClosed(t, srv) {
		if time.Now().After(fin) {
			t.Fatal("the client's FIN never arrived")
		}
		time.Sleep(10 * time.Millisecond)
	}
	absent(t, s, fd, true)
}

// Unix stream, unix datagram and UDP sockets keep no count of reads:
// their only marks (the queue's buffers) repeat when a freed buffer's
// address is reused, so a steady reader could look stuck. They are never
// reported, with data waiting in them or not.
func TestConnectedUnixAndUDPNeverReported(t *testing.T) {
	s := openScanner(t)
	dir := t.TempDir()
	stream, err := net.Listen("unix", filepath.Join(dir, "c.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	ua, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "d.sock"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	client, err := net.Dial("unix", stream.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	srv, err := stream.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, c := range []struct {
		network, addr string
		srv           net.Conn
		client        net.Conn
	}{
		{"unix", "", srv, client},
		{"unixgram", ua.LocalAddr().String(), ua, nil},
		{"udp4", udp.LocalAddr().String(), udp, nil},
	} {
		if c.client == nil {
			if c.client, err = net.Dial(c.network, c.addr); err != nil {
				t.Fatal(err)
			}
			defer c.client.Close()
		}
		fd := fdOf(t, c.srv.(syscall.Conn))
		for range 3 {
			write(t, c.client, []byte("request"))
		}
		// The data is there (loopback delivers before the write
		// returns), and nobody reads it.
		if n, err := unix.IoctlGetInt(fd, unix.SIOCINQ); err != nil || n == 0 {
			t.Fatalf("%s: SIOCINQ %d, %v: want data waiting", c.network, n, err)
		}
		absent(t, s, fd, true)
	}
}

func read1(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := c.Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
}

// peerClosed reports whether c's peer has closed (its FIN arrived), by
// the socket's TCP state, without reading the EOF.
func peerClosed(t *testing.T, c net.Conn) bool {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	var serr error
	if err := rc.Control(func(fd uintptr) { info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return info.State == 8 // TCP_CLOSE_WAIT
}
