package listenq

import (
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// An urgent byte (MSG_OOB) takes a sequence number that normal reads
// skip and a read with MSG_OOB never copies past: copied_seq stays one
// short of rcv_nxt for good, and epoll reports no EPOLLIN for it (tcp_poll
// adds one to the target when copied_seq == urg_seq). A healthy, idle
// server that has read everything, the urgent byte included, must not be
// reported, or any client could get it declared stalled (and killed)
// under by_socket: all by sending one byte with MSG_OOB (telnet's
// interrupt, for one). The urgent byte is not counted while it waits
// either: SIOCINQ does not count it. (Found by the cold review.)
func TestUrgentByteReadIsNoWork(t *testing.T) {
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
	write(t, client, make([]byte, 100))
	cfd := fdOf(t, client.(syscall.Conn))
	if err := unix.Sendto(cfd, []byte{'!'}, unix.MSG_OOB, nil); err != nil {
		t.Fatal(err)
	}
	connectedAt(t, s, fd, 100)
	read(t, srv, 100) // stops at the urgent mark
	buf := make([]byte, 1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, _, err := unix.Recvfrom(fd, buf, unix.MSG_OOB|unix.MSG_DONTWAIT)
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("urgent byte never read: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Everything the client sent has been read: nothing waits.
	ls, err := s.Scan([]int{os.Getpid()}, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.FD == fd {
			t.Fatalf("WRONG KILL: every byte read (the urgent one with MSG_OOB), yet reported as unread work with a mark that cannot move: %+v", l)
		}
	}
	// Data after the urgent byte is work again, the urgent byte skipped.
	write(t, client, make([]byte, 5))
	connectedAt(t, s, fd, 5)
}

// A server that half-closes (shutdown(SHUT_WR)) and
// then receives the peer's FIN goes FIN_WAIT2 -> TIME_WAIT, which leaves
// the full socket the fd holds in TCP_CLOSE with the FIN's sequence
// number unread. A close nobody has read yet is no work waiting, whatever
// the state the connection went on to. (Found by the cold review, when
// only CLOSE_WAIT, LAST_ACK and CLOSING discounted the FIN.)
func TestUnreadFINAfterHalfCloseIsNoWork(t *testing.T) {
	s := openScanner(t)
	ln := plainTCPListener(t)
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fd := fdOf(t, srv.(syscall.Conn))
	if err := srv.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	client.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := tcpState(t, fd)
		if st == 7 { // TCP_CLOSE
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %d, want TCP_CLOSE", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ls, err := s.Scan([]int{os.Getpid()}, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.FD == fd {
			t.Fatalf("WRONG KILL: a closed connection whose only unread item is the peer's FIN is reported as work waiting: %+v", l)
		}
	}
}

func tcpState(t *testing.T, fd int) uint8 {
	t.Helper()
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}

// A reader that keeps up one message behind a steady writer of
// same-sized messages has one message queued at every scan. On a unix
// datagram socket the slab hands the freed buffer straight back to the
// next send on the same CPU, so a mark made of the queue's buffers did not
// move although a message was read between two scans (found by the cold
// review: 50 of 50 rounds): such sockets are never reported. On TCP the
// mark is copied_seq, which moves with every read.
func TestMarkMovesWithEveryRead(t *testing.T) {
	s := openScanner(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set unix.CPUSet
	set.Set(0)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	dgram, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dgram[0])
	defer unix.Close(dgram[1])
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
	tcpFD := fdOf(t, srv.(syscall.Conn))
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	scan := func() (Mark, bool) {
		ls, err := s.Scan([]int{os.Getpid()}, true)
		if err != nil {
			t.Fatal(err)
		}
		var m Mark
		found := false
		for _, l := range ls {
			switch l.FD {
			case dgram[1]:
				t.Fatalf("a unix datagram socket was reported: %+v", l)
			case tcpFD:
				m, found = l.Mark, true
			}
		}
		return m, found
	}
	if _, err := unix.Write(dgram[0], msg); err != nil {
		t.Fatal(err)
	}
	write(t, client, msg)
	prev := connectedAt(t, s, tcpFD, 64).Mark
	same, rounds := 0, 50
	for range rounds {
		// One message read, one written: each queue holds one at each scan.
		if _, err := unix.Read(dgram[1], buf); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Write(dgram[0], msg); err != nil {
			t.Fatal(err)
		}
		read(t, srv, 64)
		write(t, client, msg)
		m := connectedAt(t, s, tcpFD, 64).Mark
		if m == prev {
			same++
		}
		prev = m
		if _, found := scan(); !found {
			t.Fatal("the TCP reader's socket, one message behind, was not reported")
		}
	}
	if same > 0 {
		t.Fatalf("WRONG KILL: in %d of %d rounds a TCP message was read between two scans and the mark did not move", same, rounds)
	}
}

// A server that sets SO_RCVLOWAT to its frame size
// is not woken (epoll, poll, a blocking read) until a whole frame has
// arrived. A client that sends half a frame and pauses leaves those bytes
// unread with copied_seq unmoved: the scan reports them as work waiting,
// so under by_socket: all any client can get a healthy, idle service
// killed by sending part of a message (kTLS receive keeps a partial TLS
// record in the TCP queue the same way). The kernel itself does not call
// the socket readable: neither should the scan. Once the whole frame is
// there it is work waiting again. (Found by the cold review.)
func TestBelowRcvlowatIsNoWork(t *testing.T) {
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
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVLOWAT, 100); err != nil {
		t.Fatal(err)
	}
	write(t, client, make([]byte, 10)) // a tenth of a frame
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if n, err := unix.IoctlGetInt(fd, unix.SIOCINQ); err == nil && n == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the 10 bytes never arrived")
		}
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, 0); err != nil || n != 0 {
		t.Fatalf("poll says readable (%d, %v): the premise does not hold", n, err)
	}
	ls, err := s.Scan([]int{os.Getpid()}, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.FD == fd {
			t.Fatalf("WRONG KILL: 10 bytes below SO_RCVLOWAT 100 (the kernel reports the socket not readable; the service waits for the rest of the frame) reported as work waiting: %+v", l)
		}
	}
	write(t, client, make([]byte, 90)) // the rest of the frame
	connectedAt(t, s, fd, 100)
}
