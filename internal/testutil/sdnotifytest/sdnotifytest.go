// Package sdnotifytest stands in for systemd's end of the notify
// protocol in tests: a datagram socket with SO_PASSCRED, bound as systemd
// binds /run/systemd/notify, so each message arrives with the credentials
// the kernel vouches for. systemd itself cannot run here (it is not PID 1).
package sdnotifytest

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Socket is a bound notify socket, closed when the test ends.
type Socket struct {
	// Addr is its address: a path, or "@name" in the abstract namespace.
	Addr string
	fd   int
}

// Datagram is one notification and the credentials it came with.
type Datagram struct {
	Msg  string
	Cred *unix.Ucred
	// At is when the test saw it.
	At time.Time
}

// Listen binds a notify socket at addr.
func Listen(t testing.TB, addr string) *Socket {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: addr}); err != nil {
		t.Fatalf("binding %s: %v", addr, err)
	}
	return &Socket{Addr: addr, fd: fd}
}

// Temp binds a notify socket in a directory of the test's own.
func Temp(t testing.TB) *Socket {
	t.Helper()
	return Listen(t, filepath.Join(t.TempDir(), "notify"))
}

// Recv waits up to timeout for a datagram; false if none came.
func (s *Socket) Recv(t testing.TB, timeout time.Duration) (Datagram, bool) {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for {
		n, err := unix.Poll(fds, int(max(time.Until(deadline), 0).Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return Datagram{}, false
		}
		break
	}
	buf := make([]byte, 8192)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	n, oobn, _, _, err := unix.Recvmsg(s.fd, buf, oob, unix.MSG_DONTWAIT)
	if err != nil {
		t.Fatal(err)
	}
	d := Datagram{Msg: string(buf[:n]), At: time.Now()}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if c, err := unix.ParseUnixCredentials(&m); err == nil {
			d.Cred = c
		}
	}
	if d.Cred == nil {
		t.Fatalf("datagram %q came without credentials", d.Msg)
	}
	return d, true
}

// Next wants a datagram within timeout.
func (s *Socket) Next(t testing.TB, timeout time.Duration) Datagram {
	t.Helper()
	d, ok := s.Recv(t, timeout)
	if !ok {
		t.Fatalf("no datagram on the notify socket %s within %v", s.Addr, timeout)
	}
	return d
}

// None wants the queue empty right now: a send is synchronous, so what
// was sent before is queued.
func (s *Socket) None(t testing.TB, after string) {
	t.Helper()
	if d, ok := s.Recv(t, 0); ok {
		t.Fatalf("after %s: unexpected datagram %q (pid %d)", after, d.Msg, d.Cred.Pid)
	}
}
