//go:build linux && amd64

package workload

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawReader is a thread made by one clone(2) of our own, outside the Go
// runtime, that reads one byte from a pipe and exits. It exists for
// spawn-wait: a parent steers the next tid with ns_last_pid, and only a
// clone made right now takes it. A goroutine cannot promise that: the
// runtime starts threads of its own around every goroutine start (measured
// here: the steered tid went to a runtime thread in 19 of 20 tries) and
// may run the goroutine on a thread it already had.
type rawReader struct {
	tid  int
	mem  []byte  // page holding the words below; never the child's stack in use
	word *uint32 // kernel sets it to tid at clone and zeroes it at exit
	ret  *int64  // what the child's read returned
	res  *result // that, copied out once the thread is gone and mem unmapped
}

const rawCloneFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
	unix.CLONE_THREAD | unix.CLONE_SYSVSEM | unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID

//go:noescape
func cloneReader(flags, stackTop, tidAddr, fd, buf, result uintptr) (ret int64)

// startRawReader clones the thread, which blocks reading fd.
func startRawReader(fd int) (*rawReader, error) {
	return rawClone(func(base, stackTop uintptr) int64 {
		return cloneReader(rawCloneFlags, stackTop, base, uintptr(fd), base+16, base+8)
	})
}

//go:noescape
func cloneSpinner(flags, stackTop, tidAddr, stop, count uintptr) (ret int64)

// rawSpinner is a thread made by a clone(2) of our own that spins in user
// space, with no syscall at all, until stopped: a Go goroutine cannot,
// since the runtime's preemption signals make it enter the kernel.
type rawSpinner struct {
	*rawReader
	stopWord *uint32 // the child exits once it is not zero
}

// startRawSpinner clones the spinning thread; its round count ends up
// where a reader's read result would.
func startRawSpinner() (*rawSpinner, error) {
	r, err := rawClone(func(base, stackTop uintptr) int64 {
		return cloneSpinner(rawCloneFlags, stackTop, base, base+16, base+8)
	})
	if err != nil {
		return nil, err
	}
	return &rawSpinner{rawReader: r, stopWord: (*uint32)(unsafe.Pointer(&r.mem[16]))}, nil
}

// stop tells the spinner to exit; await then waits for it.
func (s *rawSpinner) stop() { atomic.StoreUint32(s.stopWord, 1) }

//go:noescape
func cloneToucher(flags, stackTop, tidAddr, addr, pages, stride, result uintptr) (ret int64)

// startRawToucher clones a thread that makes one getppid(2) and then loads
// one byte from each of pages pages at addr, with no syscall: each page
// that must be fetched puts the thread to sleep in a page fault. A Go
// thread could not: the runtime's signals and its stop-the-world would
// wait on a thread that cannot reach a safe point. await returns the sum
// of the bytes it loaded.
func startRawToucher(addr uintptr, pages int) (*rawReader, error) {
	if pages < 1 {
		return nil, fmt.Errorf("a toucher needs at least one page, not %d", pages)
	}
	return rawClone(func(base, stackTop uintptr) int64 {
		return cloneToucher(rawCloneFlags, stackTop, base, addr, uintptr(pages), uintptr(unix.Getpagesize()), base+8)
	})
}

// rawClone maps the page a raw thread uses (its tid word at 0, its result
// at 8, from 16 on what clone passes it) and runs clone(base, stackTop)
// with every signal blocked.
func rawClone(clone func(base, stackTop uintptr) int64) (*rawReader, error) {
	mem, err := unix.Mmap(-1, 0, unix.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("mapping raw thread memory: %w", err)
	}
	base := uintptr(unsafe.Pointer(&mem[0]))
	r := &rawReader{
		mem:  mem,
		word: (*uint32)(unsafe.Pointer(&mem[0])),
		ret:  (*int64)(unsafe.Pointer(&mem[8])),
	}
	// The child needs no stack, but the kernel wants a valid pointer.
	stackTop := base + uintptr(len(mem))

	// The child inherits this thread's signal mask. With every signal
	// blocked it can never run the Go signal handler, which expects a Go
	// thread, and no process-directed signal picks it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all, old unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^uint64(0)
	}
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &all, &old); err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("blocking signals for clone: %w", err)
	}
	tid := clone(base, stackTop)
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil); err != nil {
		// The clone is done; a thread stuck with all signals blocked would
		// break the runtime, so this is fatal.
		panic(fmt.Sprintf("restoring signal mask after clone: %v", err))
	}
	if tid < 0 {
		unix.Munmap(mem)
		return nil, fmt.Errorf("clone: %w", unix.Errno(-tid))
	}
	r.tid = int(tid)
	return r, nil
}

func (r *rawReader) id() int { return r.tid }

// finished reports whether the thread is gone; the kernel zeroes the word
// only after the thread stopped using user memory.
func (r *rawReader) finished() (int, error, bool) {
	if r.res == nil && atomic.LoadUint32(r.word) != 0 {
		return 0, nil, false
	}
	ret, err := r.await()
	return ret, err, true
}

// await waits, on the futex the kernel wakes at thread exit, for the thread
// to be gone and returns what its read returned.
func (r *rawReader) await() (int, error) {
	deadline := time.Now().Add(settleTimeout)
	for r.res == nil {
		v := atomic.LoadUint32(r.word)
		if v == 0 {
			r.res = &result{ret: int(*r.ret)}
			if *r.ret < 0 {
				r.res = &result{err: unix.Errno(-*r.ret)}
			}
			unix.Munmap(r.mem)
			break
		}
		left := time.Until(deadline)
		if left <= 0 {
			// Leave the memory mapped: the thread may still write to it.
			return 0, fmt.Errorf("raw thread %d still running after %v", r.tid, settleTimeout)
		}
		ts := unix.NsecToTimespec(left.Nanoseconds())
		// Not FUTEX_PRIVATE_FLAG: the kernel's wake at thread exit is a
		// shared-key wake, and the keys must match.
		_, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(r.word)), futexWait, uintptr(v), uintptr(unsafe.Pointer(&ts)), 0, 0)
		if errno != 0 && errno != unix.EAGAIN && errno != unix.EINTR && errno != unix.ETIMEDOUT {
			return 0, fmt.Errorf("waiting for raw thread %d: %w", r.tid, errno)
		}
	}
	return r.res.ret, r.res.err
}

const futexWait = 0 // FUTEX_WAIT
