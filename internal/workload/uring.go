package workload

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// From <linux/io_uring.h>; golang.org/x/sys/unix carries only the syscall
// numbers.
const (
	ioringSetupSQPoll    = 1 << 1     // IORING_SETUP_SQPOLL
	ioringFeatSingleMmap = 1 << 0     // IORING_FEAT_SINGLE_MMAP
	ioringEnterGetEvents = 1 << 0     // IORING_ENTER_GETEVENTS
	ioringEnterSQWakeup  = 1 << 1     // IORING_ENTER_SQ_WAKEUP
	ioringOpNop          = 0          // IORING_OP_NOP
	ioringOpRead         = 22         // IORING_OP_READ
	iosqeAsync           = 1 << 4     // IOSQE_ASYNC
	ioringOffSQRing      = 0          // IORING_OFF_SQ_RING (the CQ ring too, with SINGLE_MMAP)
	ioringOffSQEs        = 0x10000000 // IORING_OFF_SQES
	sqeSize, cqeSize     = 64, 16
)

type ioSQRingOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

type ioCQRingOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, CQEs, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

// ioUringParams is struct io_uring_params (120 bytes).
type ioUringParams struct {
	SQEntries, CQEntries, Flags, SQThreadCPU, SQThreadIdle, Features, WQFd uint32
	Resv                                                                   [3]uint32
	SQOff                                                                  ioSQRingOffsets
	CQOff                                                                  ioCQRingOffsets
}

// ioUringSQE is struct io_uring_sqe, with the unions named for the fields
// used here.
type ioUringSQE struct {
	Opcode, Flags     uint8
	Ioprio            uint16
	Fd                int32
	Off, Addr         uint64
	Len, OpFlags      uint32
	UserData          uint64
	BufIndex, Persona uint16
	SpliceFdIn        int32
	Addr3, _          uint64
}

type ioUringCQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// uring is a ring set up by hand: no liburing, one SQE at a time.
type uring struct {
	fd    int
	p     ioUringParams
	rings []byte // SQ and CQ ring heads, tails and arrays: one mapping
	sqes  []byte
}

// newUring sets up a ring with the flags in p and maps it.
func newUring(entries uint32, p ioUringParams) (r *uring, err error) {
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup(flags %#x): %w", p.Flags, errno)
	}
	r = &uring{fd: int(fd), p: p}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	// Linux 5.4 and later map both rings at the SQ ring's offset; earlier
	// kernels are not worth a second mapping here.
	if p.Features&ioringFeatSingleMmap == 0 {
		return nil, errors.New("io_uring without IORING_FEAT_SINGLE_MMAP")
	}
	size := max(p.SQOff.Array+p.SQEntries*4, p.CQOff.CQEs+p.CQEntries*cqeSize)
	if r.rings, err = unix.Mmap(r.fd, ioringOffSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return nil, fmt.Errorf("mapping io_uring rings: %w", err)
	}
	if r.sqes, err = unix.Mmap(r.fd, ioringOffSQEs, int(p.SQEntries*sqeSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return nil, fmt.Errorf("mapping io_uring SQEs: %w", err)
	}
	return r, nil
}

// word points at a 32-bit field of the rings mapping; the kernel reads and
// writes them concurrently, so they are accessed atomically.
func (r *uring) word(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&r.rings[off])) }

// push queues sqe for the kernel. Only this process writes the SQ tail,
// and the atomic store orders the SQE before the tail that publishes it.
// The caller submits with enter, or lets the SQ thread find it.
func (r *uring) push(sqe ioUringSQE) error {
	tail := atomic.LoadUint32(r.word(r.p.SQOff.Tail))
	if tail-atomic.LoadUint32(r.word(r.p.SQOff.Head)) >= r.p.SQEntries {
		return errors.New("io_uring submission queue full")
	}
	idx := tail & atomic.LoadUint32(r.word(r.p.SQOff.RingMask))
	*(*ioUringSQE)(unsafe.Pointer(&r.sqes[idx*sqeSize])) = sqe
	// The array indirection (absent only with IORING_SETUP_NO_SQARRAY)
	// names which SQE the ring slot holds: the same index here.
	atomic.StoreUint32(r.word(r.p.SQOff.Array+idx*4), idx)
	atomic.StoreUint32(r.word(r.p.SQOff.Tail), tail+1)
	return nil
}

// enter calls io_uring_enter(2) and returns what it returned.
func (r *uring) enter(toSubmit, minComplete, flags uint32) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), 0, 0)
	if errno != 0 {
		return 0, fmt.Errorf("io_uring_enter(%d, %d, %#x): %w", toSubmit, minComplete, flags, errno)
	}
	return int(n), nil
}

// reap takes the oldest completion off the CQ ring, if there is one.
func (r *uring) reap() (ioUringCQE, bool) {
	head := atomic.LoadUint32(r.word(r.p.CQOff.Head))
	if head == atomic.LoadUint32(r.word(r.p.CQOff.Tail)) {
		return ioUringCQE{}, false
	}
	idx := head & atomic.LoadUint32(r.word(r.p.CQOff.RingMask))
	cqe := *(*ioUringCQE)(unsafe.Pointer(&r.rings[r.p.CQOff.CQEs+idx*cqeSize]))
	atomic.StoreUint32(r.word(r.p.CQOff.Head), head+1)
	return cqe, true
}

// close unmaps and closes the ring. The mappings hold the ring too, so
// both go before the kernel tears it down (and ends its SQ thread).
func (r *uring) close() {
	if r.sqes != nil {
		unix.Munmap(r.sqes)
	}
	if r.rings != nil {
		unix.Munmap(r.rings)
	}
	unix.Close(r.fd)
}

// uringIdle is a ring with a kernel SQ thread (iou-sqp-N) that finds
// nothing to submit, an io-wq worker (iou-wrk-N) that has no more work,
// and a thread waiting in io_uring_enter for a completion that only
// uring-stop provides: legitimate waiting, beside kernel-made threads
// that never pass sys_enter.
type uringIdle struct {
	ring   *uring
	wk     *worker
	sqpoll int
	worker int // the io-wq worker, idle
}

// sqThreadIdle is how long, in ms, the SQ thread polls before it sleeps.
const sqThreadIdle = 50

func (w *workload) uringIdle([]string) ([]any, error) {
	if w.idle != nil {
		return nil, fmt.Errorf("thread %d already waits on a ring: send uring-stop first", w.idle.wk.tid)
	}
	// Set up on the command loop's thread, which lives as long as the
	// process: the waiter thread only waits.
	ring, err := newUring(4, ioUringParams{Flags: ioringSetupSQPoll, SQThreadIdle: sqThreadIdle})
	if err != nil {
		return nil, err
	}
	u := &uringIdle{ring: ring}
	// The SQ thread exists once io_uring_setup returned, but names
	// itself only when it first runs.
	if u.sqpoll, err = waitTaskIn(nil, "iou-sqp-", ""); err != nil {
		ring.close()
		return nil, err
	}
	if u.worker, err = u.idleWorker(); err != nil {
		ring.close()
		return nil, err
	}
	u.wk, err = startWorker(threadOpts{blockSignals: true}, func() (int, error) {
		return ring.enter(0, 1, ioringEnterGetEvents)
	})
	if err != nil {
		ring.close()
		return nil, err
	}
	w.idle = u
	if err := waitAsleepIn(u.wk, unix.SYS_IO_URING_ENTER, ring.fd); err != nil {
		w.idle = nil
		if _, serr := u.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, err
	}
	return []any{"tid", u.wk.tid, "fd", ring.fd, "sqpoll_tid", u.sqpoll, "worker_tid", u.worker}, nil
}

// idleWorker has the ring run a NOP on io-wq (IOSQE_ASYNC) and returns the
// io-wq worker that ran it once it sleeps, idle, waiting for more work:
// what a service that punted any request to io-wq keeps.
func (u *uringIdle) idleWorker() (int, error) {
	if err := u.ring.push(ioUringSQE{Opcode: ioringOpNop, Flags: iosqeAsync, Fd: -1, UserData: 2}); err != nil {
		return 0, err
	}
	if _, err := u.ring.enter(0, 0, ioringEnterSQWakeup); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(settleTimeout)
	for {
		if cqe, ok := u.ring.reap(); ok {
			if cqe.UserData != 2 || cqe.Res != 0 {
				return 0, fmt.Errorf("the NOP on io-wq completed as %+v", cqe)
			}
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the NOP on io-wq did not complete in %v", settleTimeout)
		}
		time.Sleep(pollInterval)
	}
	return waitTaskIn(nil, "iou-wrk-", "S")
}

func (w *workload) uringStop([]string) ([]any, error) {
	u := w.idle
	if u == nil {
		return nil, errors.New("no thread waits on a ring: send uring-idle first")
	}
	w.idle = nil
	res, err := u.stop()
	if err != nil {
		return nil, err
	}
	return []any{"tid", u.wk.tid, "res", res}, nil
}

// stop submits a NOP, whose completion ends the waiter's io_uring_enter,
// then closes the ring and waits for its SQ thread to be gone, so the
// process is back to the threads it had.
func (u *uringIdle) stop() (int, error) {
	if err := u.ring.push(ioUringSQE{Opcode: ioringOpNop, Fd: -1, UserData: 1}); err != nil {
		return 0, err
	}
	// With SQPOLL the SQ thread submits; enter only wakes it if it went
	// to sleep after sqThreadIdle (harmless when it is awake).
	if _, err := u.ring.enter(0, 0, ioringEnterSQWakeup); err != nil {
		return 0, err
	}
	if _, err := u.wk.await(); err != nil {
		return 0, fmt.Errorf("waiter thread %d: %w", u.wk.tid, err)
	}
	cqe, ok := u.ring.reap()
	u.ring.close()
	if !ok {
		return 0, fmt.Errorf("waiter thread %d returned with no completion on the ring", u.wk.tid)
	}
	return int(cqe.Res), waitGone([]task{{tid: u.sqpoll}, {tid: u.worker}})
}

// uringReader is a thread that owns a ring (no SQPOLL) and submitted one
// IORING_OP_READ, then waits in io_uring_enter for its completion. The read
// is flagged IOSQE_ASYNC, so the kernel punts it to an io-wq worker thread,
// iou-wrk-N, as it does by itself on kernels where the file cannot be read
// without blocking; the worker blocks in the read: in D on a page-cache
// FUSE file whose server holds the READ, in S on a direct-IO one. The
// thread submits and waits itself so that, once the read completes, it
// closes the ring and exits, and its io-wq workers with it.
type uringReader struct {
	wk   *worker
	path string
}

func (w *workload) uringRead(args []string) ([]any, error) {
	if r := w.ureader; r != nil {
		if _, _, done := r.wk.finished(); !done {
			return nil, fmt.Errorf("thread %d still reads %s through io_uring", r.wk.tid, r.path)
		}
		w.ureader = nil
	}
	path := args[0]
	// A page-cache FUSE read waits for its folio in D; a direct-IO one
	// waits for the server's answer in S.
	state := "D"
	if len(args) > 1 {
		state = args[1]
	}
	type setup struct {
		fd  int
		err error
	}
	ready := make(chan setup, 1)
	wk, err := startWorker(threadOpts{blockSignals: true}, func() (int, error) {
		queued := false
		res, err := uringReadOnce(path, func(fd int) {
			queued = true
			ready <- setup{fd: fd}
		})
		if !queued {
			ready <- setup{err: err}
		}
		return res, err
	})
	if err != nil {
		return nil, err
	}
	s := <-ready
	if s.err != nil {
		wk.await()
		return nil, s.err
	}
	w.ureader = &uringReader{wk: wk, path: path}
	// The worker that took the read, not an idle one beside it.
	worker, err := waitTask(wk, "iou-wrk", state, true)
	if err != nil {
		return nil, err
	}
	if err := waitAsleepIn(wk, unix.SYS_IO_URING_ENTER, s.fd); err != nil {
		return nil, err
	}
	return []any{"worker_tid", worker, "fd", s.fd, "tid", wk.tid}, nil
}

// uringReadOnce reads the first 4 KiB of path through a ring of its own
// and returns what the read returned; submitted tells the ring's fd once
// the read is queued.
func uringReadOnce(path string, submitted func(fd int)) (int, error) {
	file, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("opening %s: %w", path, err)
	}
	defer unix.Close(file)
	ring, err := newUring(4, ioUringParams{})
	if err != nil {
		return 0, err
	}
	defer ring.close()
	// Not Go memory: the kernel writes into it from another thread,
	// after this function might have let go of a Go buffer.
	buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return 0, fmt.Errorf("mapping the read buffer: %w", err)
	}
	defer unix.Munmap(buf)
	// IOSQE_ASYNC sends the read to io-wq on every kernel: since 6.x a
	// direct-IO FUSE read may otherwise run inline, in the submitting
	// thread's io_uring_enter, and no worker would wait.
	sqe := ioUringSQE{Opcode: ioringOpRead, Flags: iosqeAsync, Fd: int32(file), Addr: uint64(uintptr(unsafe.Pointer(&buf[0]))), Len: uint32(len(buf)), UserData: 1}
	if err := ring.push(sqe); err != nil {
		return 0, err
	}
	submitted(ring.fd)
	// Submit and wait in one call; the completion is on the ring when it
	// returns.
	if _, err := ring.enter(1, 1, ioringEnterGetEvents); err != nil {
		return 0, err
	}
	cqe, ok := ring.reap()
	if !ok {
		return 0, errors.New("io_uring_enter returned with no completion")
	}
	if cqe.Res < 0 {
		return 0, fmt.Errorf("io_uring read of %s: %w", path, unix.Errno(-cqe.Res))
	}
	return int(cqe.Res), nil
}

// taskStat returns a thread's command name and state letter from
// /proc/self/task/TID/stat.
func taskStat(tid int) (comm, state string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		return "", "", err
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	rest := strings.Fields(s[end+1:])
	if open < 0 || end < open || len(rest) == 0 {
		return "", "", fmt.Errorf("malformed stat of thread %d: %q", tid, s)
	}
	return s[open+1 : end], rest[0], nil
}

// matchTask returns a thread of this process whose name starts with prefix
// and, unless state is empty, in that state, and not idle in io-wq's loop
// when busy is set; 0 if none is.
func matchTask(prefix, state string, busy bool) (int, error) {
	tids, err := listTasks()
	if err != nil {
		return 0, err
	}
	for _, tid := range tids {
		comm, st, err := taskStat(tid)
		if err != nil {
			continue // gone meanwhile
		}
		if !strings.HasPrefix(comm, prefix) || (state != "" && st != state) {
			continue
		}
		if busy {
			// An idle worker sleeps in S too, in the worker loop:
			// io_wq_worker, io_wqe_worker before 6.3.
			wchan, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/wchan", tid))
			if err != nil || strings.HasPrefix(string(wchan), "io_wq") {
				continue
			}
		}
		return tid, nil
	}
	return 0, nil
}

// waitTaskIn returns a thread named prefix* in state (any state if empty)
// once there is one, or fails if th (unless nil) finished first. Threads
// the kernel makes, names and puts to sleep send no notification; this
// polls /proc, bounded.
func waitTaskIn(th thread, prefix, state string) (int, error) {
	return waitTask(th, prefix, state, false)
}

// waitTask is waitTaskIn, for a thread not idle in io-wq's loop if busy.
func waitTask(th thread, prefix, state string, busy bool) (int, error) {
	deadline := time.Now().Add(settleTimeout)
	for {
		tid, err := matchTask(prefix, state, busy)
		if err != nil {
			return 0, err
		}
		if tid != 0 {
			return tid, nil
		}
		if th != nil {
			if ret, err, ok := th.finished(); ok {
				return 0, fmt.Errorf("thread %d returned before any %s* thread was in state %s: ret=%d err=%v", th.id(), prefix, state, ret, err)
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no %s* thread in state %s after %v", prefix, state, settleTimeout)
		}
		time.Sleep(pollInterval)
	}
}
