package tracker

import (
	"io"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
)

// A thread waiting for its posix_spawn child shows the child: the one
// whose file action opens a FIFO asleep in openat, the one whose exec
// reads a program from a file system that hangs in execve, asleep in S
// (direct I/O) or in killable D (page cache).
func TestVforkChildSeen(t *testing.T) {
	bin := ctarget.Build(t, "spawnwait")
	t.Run("fifo", func(t *testing.T) {
		p := ctarget.Start(t, bin, "posix_spawn", "30")
		// The child shares the parent's stdout: it must be let go
		// before the parent is waited for. Opening its FIFO for writing
		// completes its open; it execs /bin/true and exits.
		t.Cleanup(func() {
			fd, err := unix.Open(p.Ready["fifo"], unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Errorf("letting the spawned child go: %v", err)
				return
			}
			unix.Close(fd)
		})
		waitVforkChild(t, attach(t, p.Cmd.Process.Pid), p.Cmd.Process.Pid, "openat", StateInterruptible)
	})
	for _, c := range []struct {
		name  string
		opts  fusehang.Options
		state TaskState
	}{
		{"exec-S", fusehang.Options{Executable: true}, StateInterruptible},
		{"exec-D", fusehang.Options{Executable: true, PageCache: true}, StateKillable},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := fusehang.Mount(t, c.opts)
			p := ctarget.Start(t, bin, "exec", fs.File)
			// Cleanups run last first: the exec is answered (and fails)
			// before the parent is killed and waited for.
			t.Cleanup(fs.Release)
			m := attach(t, p.Cmd.Process.Pid)
			if _, err := io.WriteString(p.Stdin, "spawn\n"); err != nil {
				t.Fatal(err)
			}
			waitVforkChild(t, m, p.Cmd.Process.Pid, "execve", c.state)
		})
	}
}

// waitVforkChild waits until the thread tid of m's target waits in D for
// a vfork child in syscall, in state st (an exec passes through other
// states on its way to the read that hangs).
func waitVforkChild(t *testing.T, m *Tracker, tid int, syscall string, st TaskState) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		th := mustThread(t, snapshot(t, m), tid)
		if c := th.VforkChild; c != nil && c.Syscall == syscall && c.State == st {
			if th.Syscall != "clone3" || !th.State.Asleep() {
				t.Errorf("parent %+v, want asleep in clone3", th)
			}
			if c.TID <= 0 || c.TID == tid {
				t.Errorf("child tid %d", c.TID)
			}
			t.Logf("parent %d in %s (%v), child %+v", tid, th.Syscall, th.State, *c)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d = %+v, child %+v; want a vfork child %v in %s", tid, th, th.VforkChild, st, syscall)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
