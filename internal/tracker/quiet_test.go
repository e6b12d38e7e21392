package tracker

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/workload"
)

// parked is a thread of this test process blocked in a syscall until the
// test ends.
type parked struct {
	tid  int
	done chan struct{}
}

// park runs block on a locked OS thread and returns once the thread is
// asleep in syscall nr on fd.
func park(t *testing.T, nr, fd int, block func()) parked {
	t.Helper()
	tids := make(chan int, 1)
	p := parked{done: make(chan struct{})}
	go func() {
		// Never unlocked: the thread ends with the goroutine.
		runtime.LockOSThread()
		tids <- unix.Gettid()
		block()
		close(p.done)
	}()
	p.tid = <-tids
	path := fmt.Sprintf("/proc/self/task/%d/syscall", p.tid)
	for deadline := time.Now().Add(10 * time.Second); ; {
		b, _ := os.ReadFile(path)
		if workload.SleepsIn(string(b), nr, fd) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d not asleep in syscall %d on fd %d: %q", p.tid, nr, fd, b)
		}
		time.Sleep(time.Millisecond)
	}
}

// The quiet set leaves threads out of snapshots by syscall and fd kind,
// as the kernel classifies them, and counts them instead; SnapshotAll
// still lists every thread.
func TestQuietThreadsAreCountedNotListed(t *testing.T) {
	privtest.Require(t)
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	sock, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var threads []parked
	t.Cleanup(func() {
		unix.Close(pipe[1])
		unix.Shutdown(sock[1], unix.SHUT_RDWR)
		for _, p := range threads {
			<-p.done
		}
		unix.Close(pipe[0])
		unix.Close(sock[0])
		unix.Close(sock[1])
	})
	readOn := func(fd int) func() {
		return func() {
			var b [1]byte
			unix.Read(fd, b[:])
		}
	}
	const pipeReaders, sockReaders = 20, 3
	var quietTIDs, loudTIDs []int
	for range pipeReaders {
		p := park(t, unix.SYS_READ, pipe[0], readOn(pipe[0]))
		threads = append(threads, p)
		quietTIDs = append(quietTIDs, p.tid)
	}
	for range sockReaders {
		p := park(t, unix.SYS_READ, sock[0], readOn(sock[0]))
		threads = append(threads, p)
		loudTIDs = append(loudTIDs, p.tid)
	}

	// Reads wait by design on pipes only: the socket readers stay listed.
	var m *Tracker
	quiet := func(syscall string, kinds ...fdkind.Kind) bool {
		return syscall == "read" && len(kinds) == 1 && kinds[0] == fdkind.Pipe
	}
	m, err = Attach(Process(os.Getpid()), nil, Options{Quiet: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	s := snapshot(t, m)
	for _, tid := range quietTIDs {
		if th, ok := s.Thread(tid); ok {
			t.Errorf("quiet pipe reader listed: %+v", th)
		}
	}
	for _, tid := range loudTIDs {
		if th := mustThread(t, s, tid); th.Syscall != "read" || th.FDs[0].Kind != fdkind.Socket {
			t.Errorf("socket reader %d seen as %s on %+v", tid, th.Syscall, th.FDs)
		}
	}
	if s.Quiet < pipeReaders {
		t.Errorf("snapshot counted %d quiet threads, want at least %d", s.Quiet, pipeReaders)
	}
	i := slices.IndexFunc(s.QuietInFlight, func(q QuietSyscall) bool { return q.Syscall == "read" })
	if i < 0 || s.QuietInFlight[i].Threads != pipeReaders {
		t.Errorf("quiet syscalls %+v, want %d in read", s.QuietInFlight, pipeReaders)
	}

	all, err := m.SnapshotAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range append(quietTIDs, loudTIDs...) {
		mustThread(t, all, tid)
	}
	if all.Quiet != 0 || len(all.QuietInFlight) != 0 {
		t.Errorf("SnapshotAll left out %d threads (%+v)", all.Quiet, all.QuietInFlight)
	}
	t.Logf("quiet pass: %d listed, %d quiet; full pass: %d listed", len(s.Threads), s.Quiet, len(all.Threads))
}

// Without a quiet set nothing is left out.
func TestNoQuietSetListsEveryThread(t *testing.T) {
	w := startWorkload(t)
	do(t, w, "sleepers 5")
	m := attach(t, w.PID)
	s := snapshot(t, m)
	if s.Quiet != 0 || len(s.QuietInFlight) != 0 {
		t.Errorf("no quiet set, yet %d threads left out (%+v)", s.Quiet, s.QuietInFlight)
	}
	n := 0
	for _, th := range s.Threads {
		if th.Syscall == "read" {
			n++
		}
	}
	if n < 5 {
		t.Errorf("%d threads listed in read, want the 5 sleepers: %+v", n, s.Threads)
	}
}
