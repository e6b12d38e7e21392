package workload

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// listenLoopback opens a TCP listener on 127.0.0.1 at a port the kernel
// picks, with plain socket(2) (no MPTCP, as a C server would), and
// returns it with its port.
func listenLoopback(flags int) (int, int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|flags, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("bind: %w", err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("listen: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("getsockname: %w", err)
	}
	return fd, sa.(*unix.SockaddrInet4).Port, nil
}

// epollServer is an event loop on one thread: epoll_wait on the listener,
// accept every waiting connection, close it. epoll-lose removes the
// listener from the epoll set, which is what a lost wakeup looks like
// from outside: the loop sleeps in epoll_wait, in S, for ever, while
// connections pile up in the accept queue.
type epollServer struct {
	wk      *worker
	ln, ep  int
	port    int
	accepts atomic.Int64
}

func (w *workload) epollServerStart([]string) ([]any, error) {
	if w.epoll != nil {
		return nil, errors.New("an epoll server already runs")
	}
	ln, port, err := listenLoopback(unix.SOCK_NONBLOCK)
	if err != nil {
		return nil, err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		unix.Close(ln)
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, ln, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(ln)}); err != nil {
		unix.Close(ln)
		unix.Close(ep)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	s := &epollServer{ln: ln, ep: ep, port: port}
	// Signals blocked: the loop's thread sleeps in one epoll_wait.
	s.wk, err = startWorker(threadOpts{blockSignals: true}, s.loop)
	if err != nil {
		unix.Close(ln)
		unix.Close(ep)
		return nil, err
	}
	w.epoll = s
	return []any{"tid", s.wk.tid, "port", port, "fd", ln}, nil
}

func (s *epollServer) loop() (int, error) {
	evs := make([]unix.EpollEvent, 8)
	for {
		if _, err := unix.EpollWait(s.ep, evs, -1); err != nil && !errors.Is(err, unix.EINTR) {
			return 0, fmt.Errorf("epoll_wait: %w", err)
		}
		for {
			c, _, err := unix.Accept4(s.ln, unix.SOCK_CLOEXEC)
			if errors.Is(err, unix.EAGAIN) {
				break
			}
			if err != nil {
				return 0, fmt.Errorf("accept4: %w", err)
			}
			unix.Close(c)
			s.accepts.Add(1)
		}
	}
}

func (w *workload) epollLose([]string) ([]any, error) {
	s := w.epoll
	if s == nil {
		return nil, errors.New("no epoll server: send epoll-server first")
	}
	if err := unix.EpollCtl(s.ep, unix.EPOLL_CTL_DEL, s.ln, nil); err != nil {
		return nil, fmt.Errorf("epoll_ctl del: %w", err)
	}
	return []any{"accepted", s.accepts.Load()}, nil
}

// poolServer is a thread pool: each worker blocks in accept(2), then
// takes the pool's lock to account for the connection. pool-deadlock
// takes the lock and never gives it back (a lost unlock): each worker
// accepts one more connection and then sleeps in futex for good, and the
// connections after those wait in the accept queue.
type poolServer struct {
	workers []*worker
	ln      int
	port    int
	lock    uint32 // 0 free, 1 held: a futex word
	served  atomic.Int64
}

func (w *workload) poolServerStart(args []string) ([]any, error) {
	if w.pool != nil {
		return nil, errors.New("a pool server already runs")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 || n > 64 {
		return nil, fmt.Errorf("workers %q is not in 1..64", args[0])
	}
	ln, port, err := listenLoopback(0)
	if err != nil {
		return nil, err
	}
	p := &poolServer{ln: ln, port: port}
	var tids []int
	for range n {
		wk, err := startWorker(threadOpts{blockSignals: true}, p.serve)
		if err != nil {
			return nil, err // the workers started so far block in accept until exit
		}
		p.workers = append(p.workers, wk)
		tids = append(tids, wk.tid)
	}
	w.pool = p
	return []any{"port", port, "fd", ln, "tids", joinInts(tids)}, nil
}

func (p *poolServer) serve() (int, error) {
	for {
		c, _, err := unix.Accept4(p.ln, unix.SOCK_CLOEXEC)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("accept4: %w", err)
		}
		p.lockPool()
		p.served.Add(1)
		p.unlockPool()
		unix.Close(c)
	}
}

func (p *poolServer) lockPool() {
	for !atomic.CompareAndSwapUint32(&p.lock, 0, 1) {
		futex(&p.lock, poolFutexWait|futexPrivate, 1)
	}
}

func (p *poolServer) unlockPool() {
	atomic.StoreUint32(&p.lock, 0)
	futex(&p.lock, poolFutexWake|futexPrivate, 1)
}

// futex(2) operations (linux/futex.h); x/sys/unix does not name them.
const (
	poolFutexWait = 0
	poolFutexWake = 1
	futexPrivate  = 128
)

func futex(addr *uint32, op int, val uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), uintptr(op), uintptr(val), 0, 0, 0)
}

func (w *workload) poolDeadlock([]string) ([]any, error) {
	p := w.pool
	if p == nil {
		return nil, errors.New("no pool server: send pool-server first")
	}
	if !atomic.CompareAndSwapUint32(&p.lock, 0, 1) {
		return nil, errors.New("the pool's lock is held: try again")
	}
	return []any{"served", p.served.Load()}, nil
}

// serverCounts says how many connections each server took, for tests
// that check a busy server kept serving.
func (w *workload) serverCounts([]string) ([]any, error) {
	var out []any
	if w.epoll != nil {
		out = append(out, "epoll_accepted", w.epoll.accepts.Load())
	}
	if w.pool != nil {
		out = append(out, "pool_served", w.pool.served.Load())
	}
	if w.slow != nil {
		out = append(out, "slow_accepted", w.slow.accepts.Load())
	}
	if w.proxy != nil {
		out = append(out, "proxy_forwarded", w.proxy.forwarded.Load())
	}
	return out, nil
}
