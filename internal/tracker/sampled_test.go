package tracker

import (
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// The sampled tracker attaches nothing to syscalls, yet ages a call that
// never returns, and starts anew a call made again and again: one that
// sleeps each time (nanosleep in a loop, the same arguments each time) or
// one that never sleeps (getppid in a loop, through user space between).
func TestSampledAgesOnlyCallsThatNeverReturn(t *testing.T) {
	privtest.Require(t)
	requireSampled(t)
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var threads []parked
	t.Cleanup(func() {
		stop.Store(true)
		unix.Close(pipe[1])
		for _, p := range threads {
			<-p.done
		}
		unix.Close(pipe[0])
	})
	hung := park(t, unix.SYS_READ, pipe[0], func() {
		var b [1]byte
		unix.Read(pipe[0], b[:])
	})
	threads = append(threads, hung)
	loop := func(body func()) parked {
		tids := make(chan int, 1)
		p := parked{done: make(chan struct{})}
		go func() {
			runtime.LockOSThread()
			tids <- unix.Gettid()
			for !stop.Load() {
				body()
			}
			close(p.done)
		}()
		p.tid = <-tids
		return p
	}
	ts := unix.Timespec{Nsec: int64(time.Millisecond)}
	sleeper := loop(func() { unix.Nanosleep(&ts, nil) })
	spinner := loop(func() { unix.Syscall(unix.SYS_GETPPID, 0, 0, 0) })
	threads = append(threads, sleeper, spinner)

	m, err := Attach(Process(os.Getpid()), nil, Options{Kind: Sampled})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	const poll = 50 * time.Millisecond
	start := time.Now()
	var oldest = map[int]time.Duration{}
	seen := map[int]int{}
	var last Snapshot
	for time.Since(start) < time.Second {
		last = snapshot(t, m)
		for _, tid := range []int{sleeper.tid, spinner.tid} {
			if th, ok := last.Thread(tid); ok && th.InSyscall {
				seen[tid]++
				oldest[tid] = max(oldest[tid], th.Elapsed)
			}
		}
		time.Sleep(poll)
	}
	th := mustThread(t, last, hung.tid)
	if !th.InSyscall || th.Syscall != "read" || !th.SinceAttach || th.Elapsed < 800*time.Millisecond {
		t.Errorf("the read that never returns, after 1s of polls: %s in %q for %v (since attach %v)", th.State, th.Syscall, th.Elapsed, th.SinceAttach)
	}
	for _, tid := range []int{sleeper.tid, spinner.tid} {
		if oldest[tid] > 3*poll {
			t.Errorf("thread %d repeating a call was aged %v (seen in a syscall %d times): its calls were merged", tid, oldest[tid], seen[tid])
		}
	}
	if seen[sleeper.tid] == 0 {
		t.Errorf("the nanosleep loop was never seen in nanosleep")
	}
	c, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.Enter != 0 {
		t.Errorf("sampled tracker counted %d sys_enters: a syscall program is attached", c.Enter)
	}
	t.Logf("hung read aged %v; nanosleep loop seen %d times, oldest %v; getppid loop seen %d times, oldest %v",
		th.Elapsed.Round(time.Millisecond), seen[sleeper.tid], oldest[sleeper.tid], seen[spinner.tid], oldest[spinner.tid])
}

// The histogram needs sys_exit, which the sampled tracker does not attach.
func TestSampledRefusesLatencyHistogram(t *testing.T) {
	privtest.Require(t)
	if m, err := Attach(Process(os.Getpid()), nil, Options{Kind: Sampled, LatencyHistogram: true}); err == nil {
		m.Close()
		t.Fatal("sampled tracker attached with a latency histogram")
	}
}
