package tracker

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/workload"
)

// futexSleeper parks a thread of this process in futex(2) on word until
// word is set and woken, then in read(2) on fd until the test ends.
func futexSleeper(t *testing.T, word *uint32, fd int) parked {
	t.Helper()
	addr := uintptr(unsafe.Pointer(word))
	return park(t, unix.SYS_FUTEX, int(addr), func() {
		for atomic.LoadUint32(word) == 0 {
			unix.Syscall6(unix.SYS_FUTEX, addr, futexWaitPrivate, 0, 0, 0, 0)
		}
		if fd >= 0 {
			var b [1]byte
			unix.Read(fd, b[:])
		}
	})
}

// wake sets word and wakes every thread asleep on it.
func wake(word *uint32) {
	atomic.StoreUint32(word, 1)
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word)), futexWakePrivate, 1<<30, 0, 0, 0)
}

// The thread walk leaves a quiet thread out on the copy of its saved
// registers that an earlier pass made while it slept, as long as it has
// not run since (bpf/regsseen.h): the idle threads of a large process
// then cost no read of their kernel stacks. A thread that ran since, and
// sleeps in a syscall the quiet set does not cover, is read afresh and
// listed: a copy never outlives a run of its thread.
func TestRegsCopyLeavesOutOnlyThreadsThatDidNotRun(t *testing.T) {
	privtest.Require(t)
	skipWithoutThreadWalk(t)
	const idle = 50
	var idleWord, moverWord uint32
	socks, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var threads []parked
	t.Cleanup(func() {
		wake(&idleWord)
		wake(&moverWord)
		unix.Shutdown(socks[1], unix.SHUT_RDWR)
		unix.Close(socks[1])
		for _, p := range threads {
			<-p.done
		}
		unix.Close(socks[0])
	})
	for range idle {
		threads = append(threads, futexSleeper(t, &idleWord, -1))
	}
	for _, kind := range []Kind{Tracepoint, Sampled} {
		t.Run(string(kind), func(t *testing.T) {
			moverWord = 0
			mover := futexSleeper(t, &moverWord, socks[0])
			threads = append(threads, mover)
			opts := Options{Kind: kind, Quiet: churnQuiet}
			m := attachWith(t, os.Getpid(), opts)
			requireWalk(t, m, opts)
			// The first pass makes the copies; the next ones use them.
			snapshot(t, m)
			before := counters(t, m).RegsReused
			s := snapshot(t, m)
			if reused := counters(t, m).RegsReused - before; reused < idle {
				t.Errorf("a pass left %d threads out on a copy of their registers; %d idle threads had not run since the last", reused, idle)
			}
			if th, ok := s.Thread(mover.tid); ok {
				t.Fatalf("thread %d asleep in futex listed: %+v", mover.tid, th)
			}

			wake(&moverWord)
			path := fmt.Sprintf("/proc/self/task/%d/syscall", mover.tid)
			for deadline := time.Now().Add(10 * time.Second); ; {
				b, _ := os.ReadFile(path)
				if workload.SleepsIn(string(b), unix.SYS_READ, socks[0]) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("thread %d not asleep in read(%d): %q", mover.tid, socks[0], b)
				}
				time.Sleep(time.Millisecond)
			}
			th := mustThread(t, snapshot(t, m), mover.tid)
			if !th.InSyscall || th.Nr != unix.SYS_READ {
				t.Errorf("thread %d asleep in read listed in syscall %d (in a syscall: %v), want %d", mover.tid, th.Nr, th.InSyscall, unix.SYS_READ)
			}
		})
	}
}

// counters reads m's counters.
func counters(t *testing.T, m *Tracker) Counters {
	t.Helper()
	c, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
