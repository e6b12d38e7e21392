package tracker

import (
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A thread that reads big buffers in a loop spends all but a few
// nanoseconds of each call in the kernel: the tick that samples user time
// almost never lands in user space, so user time alone would take its
// reads for one call that never returns, and age it past a budget.
// The sampled tracker must start each read anew, told apart by the
// thread's count of read and write calls.
func TestSampledTellsApartBigReadsWithoutUserTime(t *testing.T) {
	requireSampled(t)
	zero, err := os.Open("/dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	defer zero.Close()
	fd := int(zero.Fd())
	var stop atomic.Bool
	done := make(chan struct{})
	tids := make(chan int, 1)
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		buf := make([]byte, 16<<20)
		tids <- unix.Gettid()
		for !stop.Load() {
			unix.Read(fd, buf)
		}
	}()
	tid := <-tids
	defer func() { stop.Store(true); <-done }()

	m, err := Attach(Process(os.Getpid()), nil, Options{Kind: Sampled})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	const poll = 50 * time.Millisecond
	var oldest time.Duration
	seen := 0
	for start := time.Now(); time.Since(start) < 2*time.Second; time.Sleep(poll) {
		th, ok := snapshot(t, m).Thread(tid)
		if ok && th.InSyscall && th.Syscall == "read" {
			seen++
			oldest = max(oldest, th.Elapsed)
		}
	}
	if seen < 5 {
		t.Fatalf("the read loop was seen in read %d times in 2s of polls: too few to judge", seen)
	}
	if oldest > 3*poll {
		t.Errorf("a thread reading 16 MiB at a time in a loop was aged %v (seen in read %d times): its reads were merged", oldest, seen)
	}
	t.Logf("read loop seen in read %d times, oldest %v", seen, oldest)
}
