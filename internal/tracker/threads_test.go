package tracker

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// threadWalkKernel reports whether the running kernel has what the thread
// walk needs (Linux 6.8: 6.7's open-coded task iterator, 6.8's trusted
// arguments of BPF functions). A test may read the release; the tracker
// finds out by loading (threads.go).
func threadWalkKernel(t testing.TB) bool {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil {
		t.Fatalf("kernel release %q: %v", u.Release, err)
	}
	return major > 6 || major == 6 && minor >= 8
}

// threadWalkHere reports whether this test run can have the thread
// walk: a kernel that has it, and the full object (the tracker's tests
// run once more with the minimal one, which has none).
func threadWalkHere(t testing.TB) bool {
	t.Helper()
	return threadWalkKernel(t) && defaultFeatures != MinimalFeatures
}

// skipWithoutThreadWalk skips a test of the thread walk alone where this
// run cannot have it.
func skipWithoutThreadWalk(t *testing.T) {
	t.Helper()
	if !threadWalkHere(t) {
		t.Skip("no thread walk in this run (Linux < 6.8, or the minimal object): every walk is per visit")
	}
}

// requireWalk fails the test unless m walks as opts, the kernel and the
// object say.
func requireWalk(t *testing.T, m *Tracker, opts Options) {
	t.Helper()
	want := !opts.NoThreadWalk && threadWalkHere(t)
	if m.threadWalk != want {
		t.Fatalf("thread walk in use: %v, want %v (NoThreadWalk %v, kernel >= 6.8: %v, object %s)",
			m.threadWalk, want, opts.NoThreadWalk, threadWalkKernel(t), m.Object())
	}
}

// pipeQuiet leaves out threads asleep in read(2) on a pipe.
func pipeQuiet(syscall string, kinds ...fdkind.Kind) bool {
	return syscall == "read" && len(kinds) == 1 && kinds[0] == fdkind.Pipe
}

// readers parks n threads of this process in read(2) on a pipe (quiet) or
// a socket (listed), until the test ends.
func readers(t *testing.T, n int, socket bool) []int {
	t.Helper()
	var fds [2]int
	var err error
	if socket {
		fds, err = unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	} else {
		err = unix.Pipe2(fds[:], unix.O_CLOEXEC)
	}
	if err != nil {
		t.Fatal(err)
	}
	var threads []parked
	t.Cleanup(func() {
		if socket {
			unix.Shutdown(fds[1], unix.SHUT_RDWR)
		}
		unix.Close(fds[1])
		for _, p := range threads {
			<-p.done
		}
		unix.Close(fds[0])
	})
	var tids []int
	for range n {
		p := park(t, unix.SYS_READ, fds[0], func() {
			var b [1]byte
			unix.Read(fds[0], b[:])
		})
		threads = append(threads, p)
		tids = append(tids, p.tid)
	}
	return tids
}

// quietReads is how many threads s counted asleep in read.
func quietReads(s Snapshot) int {
	i := slices.IndexFunc(s.QuietInFlight, func(q QuietSyscall) bool { return q.Syscall == "read" })
	if i < 0 {
		return 0
	}
	return s.QuietInFlight[i].Threads
}

// Where the kernel has it, a process is walked in one visit of its
// leader: each of its threads visited once, the quiet ones counted, the
// others listed, as the per-visit walk does.
func TestThreadWalkSeesEveryThreadOnce(t *testing.T) {
	privtest.Require(t)
	const quiet, loud = 300, 20
	readers(t, quiet, false)
	listed := readers(t, loud, true)
	for _, w := range walks {
		t.Run(w.name, func(t *testing.T) {
			opts := w.opts
			opts.Quiet = pipeQuiet
			m := attachWith(t, os.Getpid(), opts)
			requireWalk(t, m, opts)
			s, n := visits(t, m)
			for _, tid := range listed {
				mustThread(t, s, tid)
			}
			if got := quietReads(s); got != quiet {
				t.Errorf("%d threads counted quiet in read, want %d", got, quiet)
			}
			own := threadsOf(t, os.Getpid())
			most := own + 8
			if !m.walkers.filter {
				// No task iterator limited to one process (before
				// 6.1): each poll walks every task of the host.
				most = hostTasks(t) + 8
			}
			if n < uint64(own-8) || n > uint64(most) {
				t.Errorf("one poll visited %d tasks; this process has %d threads, at most %d expected", n, own, most)
			}
			c, err := m.Counters()
			if err != nil {
				t.Fatal(err)
			}
			if c.WalkOverflows != 0 {
				t.Errorf("%d thread walks overflowed with %d threads listed", c.WalkOverflows, len(s.Threads))
			}
			t.Logf("%s: %d tasks visited, %d listed, %d quiet", w.name, n, len(s.Threads), s.Quiet)
		})
	}
}

// A process with more threads to list than one read of the kernel's
// buffer holds (about 97 records) cannot be walked in one visit: the read
// fails whole, and the pass is taken again with that process walked per
// visit, so nothing is listed twice or counted quiet twice, and it stays
// walked per visit for overflowHold passes.
func TestThreadWalkOverflowWalksPerVisit(t *testing.T) {
	privtest.Require(t)
	skipWithoutThreadWalk(t)
	const quiet, loud = 200, 150
	readers(t, quiet, false)
	listed := readers(t, loud, true)
	m := attachWith(t, os.Getpid(), Options{Quiet: pipeQuiet})
	requireWalk(t, m, Options{})
	for i := range 3 {
		s := snapshot(t, m)
		seen := map[int]int{}
		for _, th := range s.Threads {
			seen[th.TID]++
		}
		for _, tid := range listed {
			if seen[tid] != 1 {
				t.Errorf("snapshot %d lists socket reader %d %d times, want once", i, tid, seen[tid])
			}
		}
		if got := quietReads(s); got != quiet {
			t.Errorf("snapshot %d counted %d threads quiet in read, want %d", i, got, quiet)
		}
		c, err := m.Counters()
		if err != nil {
			t.Fatal(err)
		}
		if c.WalkOverflows != 1 {
			t.Errorf("after snapshot %d: %d thread walks overflowed, want 1 (then walked per visit)", i, c.WalkOverflows)
		}
	}
}

// The thread walk reads the whole thread list under RCU in one program
// run: nothing can cut it short but an overflow, which fails the read
// whole (E2BIG). So a thread walk that returned must never be judged cut
// short and taken again. The walk-end check (bpf/walk.h), made for the
// per-visit walk, still judges it by the last thread noted: when the tail
// thread exits under the walk (bpf_task_acquire fails, it is skipped) or
// a thread is cloned just after the tail's visit began, the pass is
// counted partial and taken again: a whole pass of cost each time, and,
// four in a row, ErrPartialWalk, a blind poll on a healthy process. This
// test fails while that is so.
func TestThreadWalkNeverJudgedCutShort(t *testing.T) {
	privtest.Require(t)
	skipWithoutThreadWalk(t)
	opts := Options{Quiet: churnQuiet}
	m, reader, end := startChurn(t, opts)
	requireWalk(t, m, opts)
	var snaps, failed int
	for time.Now().Before(end) {
		s, err := m.Snapshot()
		if err != nil {
			failed++
			continue
		}
		snaps++
		mustThread(t, s, reader)
	}
	c, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.WalkOverflows != 0 {
		t.Fatalf("%d thread walks overflowed: the case is not made", c.WalkOverflows)
	}
	if c.PartialWalks != 0 || failed != 0 {
		t.Errorf("%d snapshots (%d failed): %d thread walks judged cut short and taken again, though a thread walk cannot be cut short", snaps, failed, c.PartialWalks)
	}
}

// hostTasks counts every task of the host, as /proc lists them.
func hostTasks(t *testing.T) int {
	t.Helper()
	tasks, err := filepath.Glob("/proc/[0-9]*/task/[0-9]*")
	if err != nil {
		t.Fatal(err)
	}
	return len(tasks)
}
