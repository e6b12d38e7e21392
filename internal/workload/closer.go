package workload

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// closeWaitTimeout bounds close-wait: long enough for any linger a test
// asks for, short enough that a close that never returns fails the
// command rather than the whole test run.
const closeWaitTimeout = 2 * time.Minute

// closer is a thread asleep in close(2): on a TCP socket that lingers
// (SO_LINGER) with data its peer does not read, or on a file whose file
// system holds the FLUSH that close sends. Only the peer, the linger
// timeout or the file's server ends the close; then the thread exits.
type closer struct {
	wk   *worker
	fd   int
	what string
	// seconds receives, once close returned, how long it took.
	seconds chan float64
}

// closeLinger connects to ADDR, fills the connection until the kernel
// takes no more (the peer must not read), sets SO_LINGER to SECONDS and
// closes the socket: close(2) waits for the unsent data to go, which it
// cannot, until the linger time ran out. With dup2, the socket's fd is
// replaced by dup2(2) instead: the kernel runs the final close as task
// work once dup2 returned, and the linger waits outside any syscall.
func (w *workload) closeLinger(args []string) ([]any, error) {
	dup2 := len(args) == 3
	if dup2 && args[2] != "dup2" {
		return nil, fmt.Errorf("want dup2 or nothing after SECONDS, got %q", args[2])
	}
	addr, err := netip.ParseAddrPort(args[0])
	if err != nil || !addr.Addr().Is4() {
		return nil, fmt.Errorf("want an IPv4 ADDR:PORT, got %q", args[0])
	}
	secs, err := strconv.Atoi(args[1])
	if err != nil || secs <= 0 {
		return nil, fmt.Errorf("want a positive linger in seconds, got %q", args[1])
	}
	return w.startClose("socket "+args[0], dup2, func() (int, error) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("socket: %w", err)
		}
		if err := lingerOn(fd, addr, secs); err != nil {
			unix.Close(fd)
			return -1, err
		}
		return fd, nil
	})
}

// lingerOn connects fd to addr, fills the connection and sets SO_LINGER.
func lingerOn(fd int, addr netip.AddrPort, secs int) error {
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}); err != nil {
		return fmt.Errorf("connecting to %v: %w", addr, err)
	}
	// Non-blocking only while filling: the peer's receive buffer, then
	// our send buffer, fill up and the kernel answers EAGAIN.
	if err := unix.SetNonblock(fd, true); err != nil {
		return fmt.Errorf("non-blocking: %w", err)
	}
	buf := make([]byte, 64<<10)
	for sent := 0; ; {
		n, err := unix.Write(fd, buf)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			return fmt.Errorf("filling the connection after %d bytes: %w", sent, err)
		}
		sent += n
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		return fmt.Errorf("blocking again: %w", err)
	}
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: int32(secs)}); err != nil {
		return fmt.Errorf("SO_LINGER: %w", err)
	}
	return nil
}

// closeFile opens PATH and closes it: on a file system that holds the
// FLUSH close sends (fusehang's HoldFlushes), close(2) waits for it.
func (w *workload) closeFile(args []string) ([]any, error) {
	path := args[0]
	return w.startClose(path, false, func() (int, error) {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("opening %s: %w", path, err)
		}
		return fd, nil
	})
}

// startClose runs open on a worker with signals blocked (a signal would
// end a linger, or become a FUSE interrupt), then closes what it opened
// and replies once the worker sleeps in close, or, with dup2, replaces it
// with /dev/null and replies once the worker sleeps outside any syscall.
func (w *workload) startClose(what string, dup2 bool, open func() (int, error)) ([]any, error) {
	if c := w.closer; c != nil {
		if _, _, done := c.wk.finished(); !done {
			return nil, fmt.Errorf("thread %d still closes %s", c.wk.tid, c.what)
		}
		w.closer = nil
	}
	type opened struct {
		fd, null int
		err      error
	}
	ready := make(chan opened, 1)
	seconds := make(chan float64, 1)
	wk, err := startWorker(threadOpts{blockSignals: true}, func() (int, error) {
		fd, err := open()
		if err != nil {
			ready <- opened{err: err}
			return 0, err
		}
		var null int
		if dup2 {
			if null, err = unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
				unix.Close(fd)
				ready <- opened{err: err}
				return 0, err
			}
		}
		ready <- opened{fd: fd, null: null}
		start := time.Now()
		if dup2 {
			err = unix.Dup3(null, fd, 0)
			unix.Close(null)
		} else {
			err = unix.Close(fd)
		}
		seconds <- time.Since(start).Seconds()
		if err != nil {
			return -1, fmt.Errorf("closing %s: %w", what, err)
		}
		return 0, nil
	})
	if err != nil {
		return nil, err
	}
	o := <-ready
	if o.err != nil {
		wk.await()
		return nil, o.err
	}
	c := &closer{wk: wk, fd: o.fd, what: what, seconds: seconds}
	w.closer = c
	if dup2 {
		// dup3 itself never sleeps: asleep with its number in the
		// registers, the thread runs the final close after it returned
		// (/proc shows the number whether or not the call returned).
		if err := waitAsleepIn(wk, unix.SYS_DUP3, o.null); err != nil {
			return nil, err
		}
		return []any{"tid", wk.tid, "fd", c.fd}, nil
	}
	if err := waitAsleepIn(wk, unix.SYS_CLOSE, c.fd); err != nil {
		return nil, err
	}
	return []any{"tid", wk.tid, "fd", c.fd, "nr", unix.SYS_CLOSE, "syscall", "close"}, nil
}

// closeWait waits for the close to return and tells how long it took.
func (w *workload) closeWait([]string) ([]any, error) {
	c := w.closer
	if c == nil {
		return nil, errors.New("nothing closing: send close-linger or close-file first")
	}
	select {
	case secs := <-c.seconds:
		w.closer = nil
		ret, err := c.wk.await()
		if err != nil {
			return nil, err
		}
		return []any{"tid", c.wk.tid, "ret", ret, "seconds", strconv.FormatFloat(secs, 'f', 3, 64)}, nil
	case <-time.After(closeWaitTimeout):
		return nil, fmt.Errorf("thread %d still closes %s after %v", c.wk.tid, c.what, closeWaitTimeout)
	}
}
