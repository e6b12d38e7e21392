package tracker

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// kinds are the trackers the tests of threads asleep outside a recorded
// syscall run with: both must see them.
var kinds = []Kind{Tracepoint, Sampled}

// attachWith attaches a tracker with opts to pid for the duration of the
// test.
func attachWith(t *testing.T, pid int, opts Options) *Tracker {
	t.Helper()
	privtest.Require(t)
	m, err := Attach(Process(pid), nil, opts)
	if err != nil {
		t.Fatalf("attaching: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("closing tracker: %v", err)
		}
	})
	return m
}

// quietBut makes every syscall wait by design but those named: whatever
// the quiet set leaves listed, it does not owe to the syscall tables.
func quietBut(loud ...string) QuietFunc {
	return func(syscall string, _ ...fdkind.Kind) bool {
		for _, l := range loud {
			if syscall == l {
				return false
			}
		}
		return true
	}
}

// listed takes snapshots until thread tid is listed and ok holds for it,
// or fails the test after 10s; a thread the quiet set left out fails it
// at once.
func listed(t *testing.T, m *Tracker, tid int, what string, ok func(Thread) bool) Thread {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := snapshot(t, m)
		th, found := s.Thread(tid)
		if !found {
			t.Fatalf("thread %d left out of the snapshot (quiet: %d threads, in syscalls %+v)", tid, s.Quiet, s.QuietInFlight)
		}
		if ok(th) {
			return th
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d never %s: %+v", tid, what, th)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A thread asleep in a page fault (a userfaultfd nobody answers, a FUSE
// mmap whose server withholds the read) is in the kernel, outside any
// syscall: never quiet, even when every syscall is, and shown in its
// sleep, outside any syscall, with both trackers.
func TestPageFaultAsleepIsListed(t *testing.T) {
	for _, kind := range kinds {
		for _, c := range []struct {
			name, cmd string
			fuse      bool
		}{
			{"userfaultfd", "touch-uffd", false},
			{"fuse mmap", "touch-file", true},
		} {
			t.Run(fmt.Sprintf("%s/%s", kind, c.name), func(t *testing.T) {
				if kind == Sampled {
					requireSampled(t)
				}
				if c.fuse {
					fusehang.Require(t)
				} else {
					privtest.RequireUserfaultfd(t)
				}
				p := startWorkload(t)
				cmd := c.cmd
				var fs *fusehang.FS
				if c.fuse {
					fs = fusehang.Mount(t, fusehang.Options{})
					cmd += " " + fs.File
				}
				m := attachWith(t, p.PID, Options{Kind: kind, Quiet: quietBut()})
				tid := fieldInt(t, do(t, p, cmd), "tid")
				for range 5 {
					th := listed(t, m, tid, "asleep", func(Thread) bool { return true })
					if th.InSyscall || th.Kernel || th.State != StateInterruptible || th.Zombie || th.Frozen || th.Exiting {
						t.Fatalf("thread in a page fault: %+v, want interruptible outside any syscall", th)
					}
				}
				if c.fuse {
					fs.Release()
				} else {
					do(t, p, "touch-uffd-release")
				}
			})
		}
	}
}

// A syscall a seccomp user-notification supervisor holds was never
// recorded (seccomp runs before sys_enter), yet the thread's registers
// show it in flight: it is shown in that syscall, with its ABI, aged from
// the first snapshot that saw it, until the supervisor answers. Native
// and ia32, with both trackers.
func TestSeccompHeldSyscall(t *testing.T) {
	privtest.Require(t)
	for _, abi := range []struct {
		name   string
		cflags []string
		abi    ABI
		nr     int
	}{
		{"native", []string{"-static"}, ABINative, unix.SYS_MKDIRAT},
		{"ia32", []string{"-m32", "-static"}, ABICompat, 296},
	} {
		bin := ctarget.Build(t, "seccompwait", abi.cflags...)
		if abi.abi == ABICompat {
			ctarget.RequireIA32(t, bin)
		}
		for _, kind := range kinds {
			t.Run(fmt.Sprintf("%s/%s", kind, abi.name), func(t *testing.T) {
				if kind == Sampled {
					requireSampled(t)
				}
				p := ctarget.Start(t, bin)
				pid := p.Int(t, "pid")
				sup := ctarget.TakeListener(t, pid, p.Int(t, "listener"))
				m := attachWith(t, pid, Options{Kind: kind, Quiet: quietBut("mkdirat")})
				if _, err := fmt.Fprintf(p.Stdin, "mkdir %s/held\n", t.TempDir()); err != nil {
					t.Fatal(err)
				}
				n, err := sup.Recv(10 * time.Second)
				if err != nil {
					t.Fatal(err)
				}
				inMkdirat := func(th Thread) bool { return th.InSyscall && th.Syscall == "mkdirat" }
				// The notification is queued before the caller sleeps;
				// until it sleeps it runs, which is never held (nor
				// listed, being quiet).
				var first Thread
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
					th, found := snapshot(t, m).Thread(pid)
					if found && inMkdirat(th) && th.State.Asleep() {
						first = th
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("held thread never shown asleep in mkdirat (listed %v): %+v", found, th)
					}
				}
				if first.Nr != abi.nr || first.ABI != abi.abi || first.State != StateInterruptible {
					t.Errorf("held thread %+v, want %s mkdirat (%d), interruptible", first, abi.abi, abi.nr)
				}
				if kind == Tracepoint && (!first.Tracked || !first.HeldBeforeEntry || first.SinceAttach) {
					t.Errorf("held thread %+v, want tracked (its getppid seen) and held before entry", first)
				}
				later := listed(t, m, pid, "aged", func(th Thread) bool { return !inMkdirat(th) || th.Elapsed > first.Elapsed })
				if !inMkdirat(later) || later.Entered != first.Entered {
					t.Fatalf("held mkdirat changed identity: %+v then %+v", first, later)
				}
				if err := sup.Answer(n, 0, 0); err != nil {
					t.Fatal(err)
				}
				// Back in read(2) of its stdin, which the quiet set may
				// leave out.
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
					th, found := snapshot(t, m).Thread(pid)
					if !found || !inMkdirat(th) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("answered thread still shown in mkdirat: %+v", th)
					}
				}
			})
		}
	}
}
