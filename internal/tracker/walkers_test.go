package tracker

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// hostSleepers is the size of the process outside every scope below: a
// walk that visits the host visits at least that many tasks more.
const hostSleepers = 500

// visits takes one snapshot of m and returns it with the number of tasks
// the iterator visited for it.
func visits(t *testing.T, m *Tracker) (Snapshot, uint64) {
	t.Helper()
	c0, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	s := snapshot(t, m)
	c1, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return s, c1.TasksVisited - c0.TasksVisited
}

func threadsOf(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// A poll of a process, a tree or a cgroup walks the thread lists of the
// scope's processes alone (Linux 6.1+): a process of hostSleepers threads
// elsewhere on the host adds not one task to what the iterator visits,
// where walking the host visited them all at every poll.
func TestWalkVisitsOnlyTheScope(t *testing.T) {
	host := startWorkload(t)
	do(t, host, fmt.Sprintf("sleepers %d", hostSleepers))
	p := startWorkload(t)
	cg := cgrouptest.New(t)
	if err := cg.Add(p.PID); err != nil {
		t.Fatal(err)
	}
	for _, sc := range []struct {
		name  string
		scope Scope
	}{{"process", Process(p.PID)}, {"tree", Tree(p.PID)}, {"cgroup", Cgroup(cg.Path)}} {
		t.Run(sc.name, func(t *testing.T) {
			m := attachBy(t, sc.scope)
			if !m.walkers.filter {
				t.Skipf("the kernel lacks %s (Linux 6.1+, probed): each poll walks every task of the host, by design", FeatureIterFilter)
			}
			s, n := visits(t, m)
			own := threadsOf(t, p.PID)
			if len(s.Threads) != own {
				t.Errorf("the snapshot holds %d threads, the target has %d", len(s.Threads), own)
			}
			// The target's threads, give or take a few the Go runtime
			// makes or ends between the two reads.
			if n > uint64(own+8) {
				t.Errorf("one poll visited %d tasks; the target has %d threads (and %d sleep in another process)", n, own, hostSleepers)
			}
			t.Logf("one poll visited %d tasks for %d threads of the target", n, own)
		})
	}
}

// A cgroup's walk follows its members: a process moved in while asleep in
// a syscall is walked from the next poll on, and one moved out is let go,
// its iterator with it.
func TestCgroupWalkFollowsItsProcesses(t *testing.T) {
	cg := cgrouptest.New(t)
	a := startWorkload(t)
	if err := cg.Add(a.PID); err != nil {
		t.Fatal(err)
	}
	m := attachBy(t, Cgroup(cg.Path))
	b := startWorkload(t)
	tid := fieldInt(t, do(t, b, "pipe-wait"), "tid")
	t.Cleanup(func() { b.Do("pipe-release") })
	if _, ok := snapshot(t, m).Thread(tid); ok {
		t.Fatalf("thread %d of a process outside the cgroup is in its snapshot", tid)
	}
	if err := cg.Add(b.PID); err != nil {
		t.Fatal(err)
	}
	th, ok := snapshot(t, m).Thread(tid)
	if !ok || !th.InSyscall || th.Syscall != "read" {
		t.Fatalf("thread %d, moved in asleep in read(2): in the snapshot %v, as %+v", tid, ok, th)
	}
	// Without task iterators limited to one process (before 6.1) the
	// host's walk finds the members: no iterator of their own to follow.
	filter := m.walkers.filter
	if got := len(m.walkers.byPID); filter && got != 2 {
		t.Errorf("%d processes walked one by one, want 2", got)
	}
	root, err := cgroup.Root()
	if err != nil {
		t.Fatal(err)
	}
	if err := (cgroup.Dir{Path: root}).Add(b.PID); err != nil {
		t.Fatal(err)
	}
	if _, ok := snapshot(t, m).Thread(tid); ok {
		t.Errorf("thread %d is in the snapshot after its process left the cgroup", tid)
	}
	// That walk found nothing of the scope in it: the next lets it go.
	snapshot(t, m)
	if _, ok := m.walkers.byPID[b.PID]; filter && (ok || len(m.walkers.byPID) != 1) {
		t.Errorf("after %d left, the walk keeps iterators for %v", b.PID, m.walkers.byPID)
	}
}

// A process in a child cgroup is the subtree's too; a thread in a
// threaded cgroup, which cgroup.procs does not list, is still found: that
// cgroup's poll walks the host.
func TestCgroupWalkReachesDescendantsAndThreaded(t *testing.T) {
	cg := cgrouptest.New(t)
	child, err := cgroup.Mkdir(cg.Path, "child")
	if err != nil {
		t.Fatal(err)
	}
	p := startWorkload(t)
	if err := child.Add(p.PID); err != nil {
		t.Fatal(err)
	}
	tid := fieldInt(t, do(t, p, "pipe-wait"), "tid")
	t.Cleanup(func() { p.Do("pipe-release") })
	m := attachBy(t, Cgroup(cg.Path))
	if _, ok := snapshot(t, m).Thread(tid); !ok {
		t.Fatalf("thread %d of a process in %s is missing from the subtree's snapshot", tid, child.Path)
	}

	// child becomes the domain of a threaded cgroup holding one thread.
	threaded, err := cgroup.Mkdir(child.Path, "threaded")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(threaded.Path, "cgroup.type"), []byte("threaded"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(threaded.Path, "cgroup.threads"), []byte(fmt.Sprint(tid)), 0); err != nil {
		t.Fatal(err)
	}
	// The subtree lists the process at its threaded domain.
	if _, ok := snapshot(t, m).Thread(tid); !ok {
		t.Errorf("thread %d in threaded %s is missing from the subtree's snapshot", tid, threaded.Path)
	}
	mt := attachBy(t, Cgroup(threaded.Path))
	s, n := visits(t, mt)
	if len(s.Threads) != 1 || s.Threads[0].TID != tid {
		t.Fatalf("the threaded cgroup's snapshot holds %+v, want thread %d alone", s.Threads, tid)
	}
	if mt.walkers.host == nil {
		t.Errorf("a threaded cgroup, which lists no process, was walked one process at a time (%d tasks visited)", n)
	}
}

// A process whose last thread hangs in its own exit, closing a file whose
// flush the FUSE server holds, is listed by no cgroup.procs once its
// leader is gone: its walk goes on, whether it hung before the attach
// (found by the attach's walk of the host) or after.
func TestCgroupWalkKeepsProcessHungInExit(t *testing.T) {
	bin := ctarget.Build(t, "exitflush")
	for _, when := range []string{"after attach", "before attach"} {
		t.Run(when, func(t *testing.T) {
			// A server holds flushes until Release, once.
			fs := fusehang.Mount(t, fusehang.Options{Loopback: t.TempDir(), HonourInterrupts: true})
			path := filepath.Join(fs.Dir, "data")
			if err := os.WriteFile(path, []byte("flush me\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			cg := cgrouptest.New(t)
			other := startWorkload(t)
			if err := cg.Add(other.PID); err != nil {
				t.Fatal(err)
			}
			p := ctarget.Start(t, bin, path)
			pid, tid := p.Int(t, "pid"), p.Int(t, "tid")
			if err := cg.Add(pid); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(fs.Release)
			var m *Tracker
			if when == "after attach" {
				m = attachBy(t, Cgroup(cg.Path))
				mustThread(t, snapshot(t, m), tid)
			}
			fs.HoldFlushes()
			if _, err := fmt.Fprintln(p.Stdin); err != nil {
				t.Fatal(err)
			}
			if _, err := fs.WaitFor("the exit's held flush", 10*time.Second, func(s fusehang.Stats) bool { return s.PendingFlushes == 1 }); err != nil {
				t.Fatal(err)
			}
			procs, err := cg.Procs()
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(procs, pid) {
				t.Fatalf("cgroup.procs %v still lists %d: the case is not made", procs, pid)
			}
			if m == nil {
				m = attachBy(t, Cgroup(cg.Path))
			}
			for range 3 {
				th := mustThread(t, snapshot(t, m), tid)
				if !th.Exiting {
					t.Fatalf("thread %d hung in its exit shows as %+v", tid, th)
				}
			}
		})
	}
}

// A process whose leader has exited is in no cgroup.procs, though its
// other threads live on: moved into the cgroup after the attach, it is
// walked from the next poll on all the same (the kernel side notes the
// move).
func TestCgroupWalkFindsProcessWithoutLeader(t *testing.T) {
	cg := cgrouptest.New(t)
	other := startWorkload(t)
	if err := cg.Add(other.PID); err != nil {
		t.Fatal(err)
	}
	m := attachBy(t, Cgroup(cg.Path))
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := ctarget.Start(t, ctarget.Build(t, "exitflush"), file)
	pid, tid := p.Int(t, "pid"), p.Int(t, "tid")
	if err := cg.Add(pid); err != nil {
		t.Fatal(err)
	}
	procs, err := cg.Procs()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(procs, pid) {
		t.Fatalf("cgroup.procs %v lists %d: the case is not made", procs, pid)
	}
	for range 3 {
		th := mustThread(t, snapshot(t, m), tid)
		if th.PID != pid {
			t.Fatalf("thread %d shows in process %d, want %d", tid, th.PID, pid)
		}
	}
}

// A pass over several processes counts the quiet threads of all of them:
// its quiet counts sum over the processes, as the agent's figures need.
func TestCgroupQuietCountsSumOverProcesses(t *testing.T) {
	cg := cgrouptest.New(t)
	const perProcess = 20
	for range 2 {
		p := startWorkload(t)
		do(t, p, fmt.Sprintf("sleepers %d", perProcess))
		if err := cg.Add(p.PID); err != nil {
			t.Fatal(err)
		}
	}
	quiet := func(syscall string, kinds ...fdkind.Kind) bool {
		return syscall == "read" && len(kinds) == 1 && kinds[0] == fdkind.Pipe
	}
	privtest.Require(t)
	m, err := Attach(Cgroup(cg.Path), nil, Options{Quiet: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	all, err := m.SnapshotAll()
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, th := range all.Threads {
		if th.Syscall == "read" && len(th.FDs) == 1 && th.FDs[0].Kind == fdkind.Pipe {
			want++
		}
	}
	if want < 2*perProcess {
		t.Fatalf("%d threads read a pipe, want at least %d", want, 2*perProcess)
	}
	s := snapshot(t, m)
	i := slices.IndexFunc(s.QuietInFlight, func(q QuietSyscall) bool { return q.Syscall == "read" })
	if s.Quiet != want || i < 0 || s.QuietInFlight[i].Threads != want {
		t.Errorf("the pass counted %d quiet threads (%+v), want %d, all in read", s.Quiet, s.QuietInFlight, want)
	}
	if len(s.Threads)+s.Quiet != len(all.Threads) {
		t.Errorf("%d listed + %d quiet, want the %d threads of the cgroup", len(s.Threads), s.Quiet, len(all.Threads))
	}
}
