package tracker

import (
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
)

// waitThread takes snapshots until ok holds for thread tid, or fails the
// test after 10s.
func waitThread(t *testing.T, m *Tracker, tid int, what string, ok func(Thread) bool) Thread {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		th := mustThread(t, snapshot(t, m), tid)
		if ok(th) {
			return th
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d never %s: %+v", tid, what, th)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func inD(th Thread) bool {
	return th.State == StateKillable || th.State == StateUninterruptible
}

// sendfile(2) from a hung page-cache FUSE file into a socket: both fds are
// classified (the socket, then the file on fuse), and the thread waits in
// D on the file's page.
func TestSendfileFDsAndState(t *testing.T) {
	p := startWorkload(t)
	fs := fusehang.Mount(t, fusehang.Options{PageCache: true})
	m := attach(t, p.PID)
	r := do(t, p, "sendfile "+fs.File)
	tid, sock, file := fieldInt(t, r, "tid"), fieldInt(t, r, "fd"), fieldInt(t, r, "in_fd")
	th := waitThread(t, m, tid, "in D", inD)
	if !th.InSyscall || th.Syscall != "sendfile" || len(th.FDs) != 2 {
		t.Fatalf("sendfile thread %+v, want sendfile on two fds", th)
	}
	if got := th.FDs[0]; got.Num != sock || got.Kind != fdkind.Socket {
		t.Errorf("first fd %+v, want the socket %d", got, sock)
	}
	if got := th.FDs[1]; got.Num != file || got.Kind != fdkind.Regular || got.FS() != "fuse" {
		t.Errorf("second fd %+v, want the FUSE file %d", got, file)
	}
	fs.Release()
}

// An io-wq worker, made by the kernel inside the process, reading a hung
// page-cache file sits in D: marked a kernel worker, in no syscall of its
// own.
func TestKernelWorkerInD(t *testing.T) {
	p := startWorkload(t)
	fs := fusehang.Mount(t, fusehang.Options{PageCache: true})
	m := attach(t, p.PID)
	worker := fieldInt(t, do(t, p, "uring-read "+fs.File), "worker_tid")
	th := waitThread(t, m, worker, "in D", inD)
	if !th.Kernel || th.InSyscall {
		t.Fatalf("io-wq worker %+v, want a kernel worker outside any syscall", th)
	}
	fs.Release()
}

// SIGSTOP and the cgroup v2 freezer show in every thread's state.
func TestStoppedAndFrozen(t *testing.T) {
	p := startWorkload(t)
	m := attach(t, p.PID)
	if err := syscall.Kill(p.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitThread(t, m, p.PID, "stopped", func(th Thread) bool { return th.State == StateStopped })
	if err := syscall.Kill(p.PID, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitThread(t, m, p.PID, "running again", func(th Thread) bool { return th.State != StateStopped })

	cg := cgrouptest.New(t)
	if err := cg.Add(p.PID); err != nil {
		t.Fatal(err)
	}
	if err := cg.Freeze(true); err != nil {
		t.Fatal(err)
	}
	waitThread(t, m, p.PID, "frozen", func(th Thread) bool { return th.Frozen })
	if err := cg.Freeze(false); err != nil {
		t.Fatal(err)
	}
	waitThread(t, m, p.PID, "thawed", func(th Thread) bool { return !th.Frozen })
}
