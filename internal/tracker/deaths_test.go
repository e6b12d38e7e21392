package tracker

import (
	"os"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// The exit hook's judgement, run in the kernel with BPF_PROG_TEST_RUN: the
// calling thread is inside bpf(2) when the hook runs on it, exactly like a
// thread that the kernel kills mid-syscall. The hook must record it with
// its tid and syscall. (The real oops is in internal/test/vm/guest.)
func TestExitHookRecordsDeathInsideSyscall(t *testing.T) {
	deathInsideSyscall(t, attach(t, os.Getpid()))
}

// The sampled tracker never saw the thread enter bpf(2): the hook reads
// the syscall from the thread's registers (x86 only, see
// record_death_regs).
func TestSampledExitHookRecordsDeathInsideSyscall(t *testing.T) {
	privtest.Require(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("deaths of threads the tracker never saw enter are read from x86's registers only")
	}
	requireSampled(t)
	m, err := Attach(Process(os.Getpid()), nil, Options{Kind: Sampled})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	deathInsideSyscall(t, m)
}

func deathInsideSyscall(t *testing.T, m *Tracker) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()

	before := snapshot(t, m)
	if before.DeathsTotal != 0 {
		t.Fatalf("deaths before the test: %+v", before.Deaths)
	}
	// A raw tracepoint's test context is its u64 arguments; the hook reads
	// none of them.
	if _, err := m.objs.ThreadExit.Run(&ebpf.RunOptions{Context: make([]byte, 16)}); err != nil {
		t.Fatalf("running the exit hook: %v", err)
	}
	after := snapshot(t, m)
	if after.DeathsTotal != 1 || len(after.Deaths) != 1 {
		t.Fatalf("after one death inside bpf(2): total %d, records %+v", after.DeathsTotal, after.Deaths)
	}
	d := after.Deaths[0]
	if d.TID != tid || d.Syscall != "bpf" || d.Nr != unix.SYS_BPF || d.Seq != 1 {
		t.Fatalf("death = %+v, want tid %d in bpf (%d), seq 1", d, tid, unix.SYS_BPF)
	}
	if d.Ago < 0 || d.Ago > time.Minute {
		t.Fatalf("death %v ago, want a moment ago", d.Ago)
	}
}

// More deaths than the ring holds: the count stays exact and the latest
// records are kept, oldest first.
func TestDeathRingKeepsLatest(t *testing.T) {
	m := attach(t, os.Getpid())
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ring := int(m.objs.Deaths.MaxEntries())
	n := ring + 5
	for range n {
		if _, err := m.objs.ThreadExit.Run(&ebpf.RunOptions{Context: make([]byte, 16)}); err != nil {
			t.Fatalf("running the exit hook: %v", err)
		}
	}
	s := snapshot(t, m)
	if s.DeathsTotal != uint64(n) || len(s.Deaths) != ring {
		t.Fatalf("total %d with %d records, want %d with %d", s.DeathsTotal, len(s.Deaths), n, ring)
	}
	for i, d := range s.Deaths {
		if want := uint64(n - ring + 1 + i); d.Seq != want {
			t.Fatalf("record %d has seq %d, want %d", i, d.Seq, want)
		}
	}
}

// Threads that end in exit or exit_group, and a process killed by SIGKILL
// while its threads block in syscalls, are ordinary ends: no death. A
// false death here would kill healthy services.
func TestOrdinaryExitsAreNotDeaths(t *testing.T) {
	t.Run("thread churn", func(t *testing.T) {
		p := startWorkload(t)
		m := attach(t, p.PID)
		do(t, p, "churn 3 50")
		if s := snapshot(t, m); s.DeathsTotal != 0 {
			t.Fatalf("150 threads exiting through exit(2) counted as %d deaths: %+v", s.DeathsTotal, s.Deaths)
		}
	})
	t.Run("exit_group", func(t *testing.T) {
		p := startWorkload(t)
		m := attach(t, p.PID)
		do(t, p, "pipe-wait") // a thread blocked in read when the process exits
		if err := p.Send("exit 3"); err != nil {
			t.Fatal(err)
		}
		waitDone(t, m)
		requireNoDeaths(t, m)
	})
	t.Run("SIGKILL while blocked", func(t *testing.T) {
		p := startWorkload(t)
		m := attach(t, p.PID)
		do(t, p, "pipe-wait")
		do(t, p, "busy")
		if err := m.Kill(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitDone(t, m)
		requireNoDeaths(t, m)
	})
}

func waitDone(t *testing.T, m *Tracker) {
	t.Helper()
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("target did not exit")
	}
}

// requireNoDeaths reads the kernel's count directly: the task iterator
// has nothing left to walk once the target is gone.
func requireNoDeaths(t *testing.T, m *Tracker) {
	t.Helper()
	list, total, err := m.deaths(0)
	if err != nil {
		t.Fatal(err)
	}
	if total != 0 {
		t.Fatalf("%d deaths recorded: %+v", total, list)
	}
}

// A death record names the syscall from its own ABI's table and carries
// the ABI; its fd is the first argument only where that argument is one:
// i386's socketcall(SYS_RECV) is judged as recvfrom, but its first
// argument is the call number (10), its fd in user memory.
func TestDeathNamedByItsABI(t *testing.T) {
	word := func(abi ABI, nr int) uint64 { return uint64(1)<<tsBitsOff | uint64(abi)<<abiShift | uint64(nr) }
	socketcall := slices.Index(gen.CompatSyscallNames[:], "socketcall")
	for _, c := range []struct {
		what    string
		abi     ABI
		nr      int
		arg0    uint64
		syscall string
		fd      int
	}{
		{"native read", ABINative, unix.SYS_READ, 7, "read", 7},
		{"ia32 read", ABICompat, slices.Index(gen.CompatSyscallNames[:], "read"), 7, "read", 7},
		{"ia32 exit", ABICompat, slices.Index(gen.CompatSyscallNames[:], "exit"), 0, "exit", -1},
		{"ia32 socketcall(SYS_RECV)", ABICompat, socketcall, 10, "recvfrom", -1},
	} {
		if c.nr < 0 {
			t.Fatalf("%s: no such syscall in the %s table", c.what, c.abi)
		}
		d := decodeDeath(gen.StallmonDeath{Seq: 1, Word: word(c.abi, c.nr), Arg0: c.arg0}, 0)
		if d.Nr != c.nr || d.ABI != c.abi || d.Syscall != c.syscall || d.FD != c.fd {
			t.Errorf("%s: death %+v, want %s number %d named %s, fd %d", c.what, d, c.abi, c.nr, c.syscall, c.fd)
		}
	}
}
