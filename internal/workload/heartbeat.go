package workload

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// heartbeatLoop is the seed's heartbeat thread: an OS thread of its own
// that tells the peers "I am alive" every interval, whatever the other
// threads do, so that a worker stuck in the kernel leaves it going. It
// sends "hb PID SEQ MONO" (MONO: CLOCK_MONOTONIC at the send, in ns), the
// datagram the C hbservice sends with the pid as its node name, so the
// same peers can listen to either.
type heartbeatLoop struct {
	wk     *worker
	stop   atomic.Bool
	fd     int
	dst    unix.SockaddrInet4
	every  time.Duration
	errs   atomic.Int64 // sends that failed after the first
	pid    int
	opened bool // fd not yet closed
}

func (w *workload) heartbeatStart(args []string) ([]any, error) {
	if w.heartbeat != nil {
		return nil, errors.New("already sending: send heartbeat-stop first")
	}
	dst, err := netip.ParseAddrPort(args[0])
	if err != nil || !dst.Addr().Is4() {
		return nil, fmt.Errorf("destination %q is not IPv4:PORT", args[0])
	}
	every, err := time.ParseDuration(args[1])
	if err != nil || every <= 0 {
		return nil, fmt.Errorf("interval %q is not a positive duration", args[1])
	}
	// A raw socket fd, not a net.UDPConn: every send stays a sendto(2) on
	// the heartbeat thread, as in a C service, rather than a write the
	// runtime could retry through its netpoller.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("heartbeat socket: %w", err)
	}
	h := &heartbeatLoop{fd: fd, dst: unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()},
		every: every, pid: unix.Getpid(), opened: true}
	if dst.Addr().IsMulticast() {
		// On loopback, as the tests' C service: the group never leaves
		// the host, and this host's listeners hear it.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 1); err != nil {
			h.close()
			return nil, fmt.Errorf("heartbeat socket: IP_MULTICAST_LOOP: %w", err)
		}
		if err := unix.SetsockoptInet4Addr(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, [4]byte{127, 0, 0, 1}); err != nil {
			h.close()
			return nil, fmt.Errorf("heartbeat socket: IP_MULTICAST_IF: %w", err)
		}
	}
	first := make(chan error, 1)
	// Signals blocked: the thread sleeps in nanosleep between sends, and
	// the runtime's signals would only cut those sleeps short.
	h.wk, err = startWorker(threadOpts{blockSignals: true}, func() (int, error) {
		return h.run(first)
	})
	if err != nil {
		h.close()
		return nil, err
	}
	// The reply means the first datagram left this thread.
	if err := <-first; err != nil {
		h.wk.await()
		h.close()
		return nil, err
	}
	w.heartbeat = h
	return []any{"tid", h.wk.tid, "fd", fd}, nil
}

// run sends until stopped and returns the number of datagrams sent. Only
// the first send's failure ends it: after that, a lost packet is not the
// thread's business and it sends on, as the seed's heartbeat thread does.
func (h *heartbeatLoop) run(first chan<- error) (int, error) {
	pause := unix.NsecToTimespec(h.every.Nanoseconds())
	buf := make([]byte, 0, 64)
	for seq := 1; ; seq++ {
		var ts unix.Timespec
		// CLOCK_MONOTONIC cannot fail with a valid pointer; a zero MONO
		// would only spoil a listener's latency figure.
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		buf = append(buf[:0], "hb "...)
		buf = strconv.AppendInt(buf, int64(h.pid), 10)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, int64(seq), 10)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, ts.Nano(), 10)
		err := unix.Sendto(h.fd, buf, 0, &h.dst)
		if seq == 1 {
			if err != nil {
				err = fmt.Errorf("sending the first heartbeat to %s:%d: %w", netip.AddrFrom4(h.dst.Addr), h.dst.Port, err)
				first <- err
				return 0, err
			}
			first <- nil
		} else if err != nil {
			h.errs.Add(1)
		}
		if h.stop.Load() {
			return seq, nil
		}
		// nanosleep, not time.Sleep: the pause stays on this thread.
		for err := unix.Nanosleep(&pause, &pause); err != nil; err = unix.Nanosleep(&pause, &pause) {
			if !errors.Is(err, unix.EINTR) {
				return seq, fmt.Errorf("pausing: %w", err)
			}
		}
		pause = unix.NsecToTimespec(h.every.Nanoseconds())
	}
}

func (w *workload) heartbeatStop([]string) ([]any, error) {
	h := w.heartbeat
	if h == nil {
		return nil, errors.New("not sending: send heartbeat first")
	}
	w.heartbeat = nil
	h.stop.Store(true)
	n, err := h.wk.await()
	h.close()
	if err != nil {
		return nil, err
	}
	return []any{"tid", h.wk.tid, "count", n, "errors", h.errs.Load()}, nil
}

func (h *heartbeatLoop) close() {
	if h.opened {
		unix.Close(h.fd)
		h.opened = false
	}
}
