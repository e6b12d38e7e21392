package workload

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// stalledSender is a thread asleep in sendfile(2) from a regular file into
// a socket whose peer has stopped reading: back-pressure, a wait on the
// client that lasts as long as the client likes. The socket's buffers
// are small, so a file of a few megabytes fills them.
type stalledSender struct {
	wk         *worker
	sock, peer int
	file       int
	size       int64
}

// bufSize is what each end of the connection may buffer: small, so the
// sender blocks after this much, and the same on every kernel (no
// autotuning).
const bufSize = 16 << 10

func (w *workload) sendfileStalled(args []string) ([]any, error) {
	if s := w.stalled; s != nil {
		if _, _, done := s.wk.finished(); !done {
			return nil, fmt.Errorf("thread %d still sends: send sendfile-drain first", s.wk.tid)
		}
		s.close()
		w.stalled = nil
	}
	kind, path := args[0], args[1]
	s := &stalledSender{sock: -1, peer: -1, file: -1}
	var err error
	switch kind {
	case "tcp":
		s.sock, s.peer, err = tcpConnection()
	case "unix":
		var sp [2]int
		sp, err = unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		s.sock, s.peer = sp[0], sp[1]
	default:
		return nil, fmt.Errorf("socket kind %q: want tcp or unix", kind)
	}
	if err != nil {
		return nil, err
	}
	if s.file, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		s.close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(s.file, &st); err != nil {
		s.close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	s.size = st.Size
	if s.size <= 4*bufSize {
		s.close()
		return nil, fmt.Errorf("%s has %d bytes: too few to fill the socket's buffers (want over %d)", path, s.size, 4*bufSize)
	}
	for _, o := range []struct{ fd, opt int }{{s.sock, unix.SO_SNDBUF}, {s.peer, unix.SO_RCVBUF}} {
		if err := unix.SetsockoptInt(o.fd, unix.SOL_SOCKET, o.opt, bufSize); err != nil {
			s.close()
			return nil, fmt.Errorf("setting socket buffer: %w", err)
		}
	}
	// Signals blocked, as for every waiter: a signal would end the
	// sendfile early with what it had sent so far.
	s.wk, err = startWorker(threadOpts{blockSignals: true}, func() (int, error) {
		sent := 0
		for int64(sent) < s.size {
			n, err := unix.Sendfile(s.sock, s.file, nil, int(s.size)-sent)
			if err != nil {
				return sent, err
			}
			if n == 0 {
				return sent, errors.New("sendfile sent nothing")
			}
			sent += n
		}
		return sent, nil
	})
	if err != nil {
		s.close()
		return nil, err
	}
	w.stalled = s
	if err := waitAsleepIn(s.wk, unix.SYS_SENDFILE, s.sock); err != nil {
		return nil, err
	}
	return []any{"tid", s.wk.tid, "fd", s.sock, "in_fd", s.file, "nr", unix.SYS_SENDFILE, "syscall", "sendfile"}, nil
}

// sendfileDrain has the peer read everything, and replies once the
// sendfile returned, with what it sent.
func (w *workload) sendfileDrain([]string) ([]any, error) {
	s := w.stalled
	if s == nil {
		return nil, errors.New("no sendfile-stalled thread: send sendfile-stalled first")
	}
	w.stalled = nil
	defer s.close()
	buf := make([]byte, 64<<10)
	got := int64(0)
	for got < s.size {
		n, err := unix.Read(s.peer, buf)
		if err != nil {
			return nil, fmt.Errorf("reading the peer's end: %w", err)
		}
		if n == 0 {
			break
		}
		got += int64(n)
	}
	ret, err := s.wk.await()
	if err != nil {
		return nil, fmt.Errorf("sendfile: %w", err)
	}
	return []any{"tid", s.wk.tid, "ret", ret}, nil
}

func (s *stalledSender) close() {
	for _, fd := range []int{s.sock, s.peer, s.file} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// tcpConnection returns both ends of a loopback TCP connection.
func tcpConnection() (conn, peer int, err error) {
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(ln)
	if err := unix.Bind(ln, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return -1, -1, fmt.Errorf("bind: %w", err)
	}
	if err := unix.Listen(ln, 1); err != nil {
		return -1, -1, fmt.Errorf("listen: %w", err)
	}
	sa, err := unix.Getsockname(ln)
	if err != nil {
		return -1, -1, fmt.Errorf("getsockname: %w", err)
	}
	if peer, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
		return -1, -1, fmt.Errorf("socket: %w", err)
	}
	// The receive buffer is set before connecting: the window it
	// advertises is fixed at the handshake.
	if err := unix.SetsockoptInt(peer, unix.SOL_SOCKET, unix.SO_RCVBUF, bufSize); err != nil {
		unix.Close(peer)
		return -1, -1, fmt.Errorf("setting the receive buffer: %w", err)
	}
	if err := unix.Connect(peer, sa); err != nil {
		unix.Close(peer)
		return -1, -1, fmt.Errorf("connect: %w", err)
	}
	if conn, _, err = unix.Accept4(ln, unix.SOCK_CLOEXEC); err != nil {
		unix.Close(peer)
		return -1, -1, fmt.Errorf("accept: %w", err)
	}
	return conn, peer, nil
}
