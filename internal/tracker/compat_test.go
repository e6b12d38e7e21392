package tracker

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// Both trackers judge a thread's end by its in-flight syscall, the
// tracepoint one from the word sys_enter wrote, the sampled one from the
// registers: each must read the exit numbers of the thread's own ABI.
var trackerKinds = []Kind{Tracepoint, Sampled}

func attachKind(t *testing.T, pid int, kind Kind) *Tracker {
	t.Helper()
	privtest.Require(t)
	m, err := Attach(Process(pid), nil, Options{Kind: kind})
	if err != nil {
		t.Fatalf("attaching the %s tracker: %v", kind, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// abi32 is a 32-bit ABI of amd64 that C targets are built for.
type abi32 struct {
	name, flag string
	abi        ABI
	// bpf is the number of bpf(2) in its table, as the word holds it.
	bpf int
}

// abis32 are amd64's. The host's kernel runs ia32 programs only; make
// vmtest's guests run both (internal/test/vm).
var abis32 = []abi32{{"ia32", "-m32", ABICompat, 357}, {"x32", "-mx32", ABIX32, 321}}

// build builds a C target static for the ABI and skips the test where
// the kernel does not run the ABI's programs.
func (a abi32) build(t *testing.T, name string) string {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skipf("%s is an ABI of amd64", a.name)
	}
	bin := ctarget.Build(t, name, a.flag, "-static")
	if a.abi == ABIX32 {
		ctarget.RequireX32(t, ctarget.Build(t, "threadexit", a.flag, "-static"))
	} else {
		ctarget.RequireIA32(t, bin)
	}
	return bin
}

// each runs f for every 32-bit ABI and tracker kind.
func each32(t *testing.T, f func(t *testing.T, a abi32, kind Kind)) {
	for _, a := range abis32 {
		for _, kind := range trackerKinds {
			t.Run(a.name+"/"+string(kind), func(t *testing.T) {
				if kind == Sampled {
					requireSampled(t)
				}
				f(t, a, kind)
			})
		}
	}
}

// A 32-bit process ends its threads through its ABI's exit and
// exit_group: ia32's are 1 (write on amd64) and 252 (ioprio_get), x32's
// amd64's with bit 30 set. A worker thread that returns, then main's exit:
// neither is a death. Taken for native numbers, the ia32 ones were, and
// the agent killed a healthy process as died_in_syscall.
func Test32BitThreadExitsAreNotDeaths(t *testing.T) {
	each32(t, func(t *testing.T, a abi32, kind Kind) {
		p := ctarget.Start(t, a.build(t, "threadexit"), "wait")
		m := attachKind(t, p.Cmd.Process.Pid, kind)
		if _, err := fmt.Fprintln(p.Stdin, "go"); err != nil {
			t.Fatal(err)
		}
		done := p.Next(t, 10*time.Second)
		if done[""] != "done" || done["tid"] == "" {
			t.Fatalf("threadexit said %v, want done tid=T", done)
		}
		p.Wait(t, 10*time.Second)
		waitDone(t, m)
		requireNoDeaths(t, m)
	})
}

// The other ordinary ends of a 32-bit process: exit_group while two
// threads sleep in 32-bit syscalls (they leave theirs through sys_exit),
// and SIGKILL while they do.
func Test32BitProcessEndsAreNotDeaths(t *testing.T) {
	each32(t, func(t *testing.T, a abi32, kind Kind) {
		bin := a.build(t, "ia32wait")
		t.Run("exit_group", func(t *testing.T) {
			p := ctarget.Start(t, bin)
			m := attachKind(t, p.Cmd.Process.Pid, kind)
			if err := p.Stdin.Close(); err != nil {
				t.Fatal(err)
			}
			p.Wait(t, 10*time.Second)
			waitDone(t, m)
			requireNoDeaths(t, m)
		})
		t.Run("SIGKILL", func(t *testing.T) {
			p := ctarget.Start(t, bin)
			m := attachKind(t, p.Cmd.Process.Pid, kind)
			if err := m.Kill(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitDone(t, m)
			requireNoDeaths(t, m)
		})
	})
}

// A 32-bit thread that the kernel ends inside a syscall is still a
// death, named from its own table: the exit hook runs on the thread
// while it is inside its 32-bit bpf(2) (BPF_PROG_TEST_RUN of the hook
// itself), as it does on a thread an oops kills there. The real oops of
// a 32-bit thread is in internal/test/vm/guest (TestOops).
func Test32BitDeathInsideSyscallIsRecorded(t *testing.T) {
	each32(t, func(t *testing.T, a abi32, kind Kind) {
		p := ctarget.Start(t, a.build(t, "hookrun"))
		pid := p.Cmd.Process.Pid
		m := attachKind(t, pid, kind)
		if _, err := fmt.Fprintf(p.Stdin, "%d %d\n", os.Getpid(), m.objs.ThreadExit.FD()); err != nil {
			t.Fatal(err)
		}
		ran := p.Next(t, 10*time.Second)
		if ran[""] != "ran" {
			t.Fatalf("hookrun said %v, want ran tid=T", ran)
		}
		s := snapshot(t, m)
		if s.DeathsTotal != 1 || len(s.Deaths) != 1 {
			t.Fatalf("after one death inside a %s bpf(2): total %d, records %+v", a.name, s.DeathsTotal, s.Deaths)
		}
		d := s.Deaths[0]
		if fmt.Sprint(d.TID) != ran["tid"] || d.PID != pid || d.Syscall != "bpf" || d.Nr != a.bpf || d.ABI != a.abi || d.FD != -1 {
			t.Fatalf("death = %+v, want tid %s of %d in bpf (%s %d, no fd)", d, ran["tid"], pid, a.name, a.bpf)
		}
	})
}

// A 32-bit process's calls are measured under the native call they are:
// the latency histogram, indexed by native number, left every ia32 and
// x32 call out, so a 32-bit service's histogram stayed empty.
func Test32BitCallsInLatencyHistogram(t *testing.T) {
	for _, a := range abis32 {
		t.Run(a.name, func(t *testing.T) { callsInLatencyHistogram(t, a) })
	}
}

func callsInLatencyHistogram(t *testing.T, a abi32) {
	p := ctarget.Start(t, a.build(t, "threadexit"), "wait")
	privtest.Require(t)
	m, err := Attach(Process(p.Cmd.Process.Pid), nil, Options{LatencyHistogram: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if _, err := fmt.Fprintln(p.Stdin, "go"); err != nil {
		t.Fatal(err)
	}
	p.Next(t, 10*time.Second)
	p.Wait(t, 10*time.Second)
	hist, err := m.LatencyHistogram()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, h := range hist {
		counts[h.Syscall] = h.Count
	}
	// The worker's gettid (ia32 224), the write of "done" (ia32 4) and the
	// mmap of the worker's stack (ia32's mmap2, 192, judged as mmap).
	for _, name := range []string{"gettid", "write", "mmap"} {
		if counts[name] == 0 {
			t.Errorf("no %s in the histogram of an %s process: %v", name, a.name, counts)
		}
	}
}

// Quiet threads of a 32-bit process are counted by the native call they
// sleep in, as those of a 64-bit one are: left out of the per-syscall
// counts, they vanished from stallmon_syscalls_in_flight.
func Test32BitQuietThreadsCountedBySyscall(t *testing.T) {
	for _, a := range abis32 {
		t.Run(a.name, func(t *testing.T) { quietThreadsCountedBySyscall(t, a) })
	}
}

func quietThreadsCountedBySyscall(t *testing.T, a abi32) {
	p := ctarget.Start(t, a.build(t, "ia32wait"))
	quiet := func(syscall string, kinds ...fdkind.Kind) bool {
		return syscall == "nanosleep" || syscall == "read" && len(kinds) == 1 && kinds[0] == fdkind.Pipe
	}
	privtest.Require(t)
	m, err := Attach(Process(p.Cmd.Process.Pid), nil, Options{Quiet: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	// The reader and the sleeper slept before the ready line; main's read
	// of stdin (a pipe) follows it.
	var s Snapshot
	for deadline := time.Now().Add(10 * time.Second); ; {
		if s = snapshot(t, m); s.Quiet == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d quiet threads, want 3: listed %+v", s.Quiet, s.Threads)
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := map[string]int{}
	for _, q := range s.QuietInFlight {
		got[q.Syscall] = q.Threads
	}
	if got["read"] != 2 || got["nanosleep"] != 1 || len(got) != 2 {
		t.Errorf("quiet threads of an %s process by syscall %v, want 2 in read and 1 in nanosleep", a.name, got)
	}
}

// A thread that a signal ends is not inside a syscall, whatever its
// registers say: signals are acted on only on the way back to user
// space. Right after a syscall that failed with ENOSYS, the registers
// still look like a syscall in progress (ax is -ENOSYS), and the sampled
// tracker, which reads deaths from them, took every thread a group exit
// or SIGKILL caught there for a death (30 trials of 30 here): a false
// died_in_syscall for a service that merely exited. Native and ia32.
func TestSignalledThreadsAreNotDeaths(t *testing.T) {
	builds := map[string]func(t *testing.T) string{
		"native": func(t *testing.T) string { return ctarget.Build(t, "enosysloop", "-static") },
		"ia32":   func(t *testing.T) string { return abis32[0].build(t, "enosysloop") },
	}
	for _, abi := range []string{"native", "ia32"} {
		for _, kind := range trackerKinds {
			t.Run(abi+"/"+string(kind), func(t *testing.T) {
				if kind == Sampled {
					requireSampled(t)
				}
				bin := builds[abi](t)
				// The window is narrow but the loops hit it nearly every
				// time; each trial costs seconds in make vmtest's guests.
				const trials = 2
				for i := range trials {
					p := ctarget.Start(t, bin)
					m := attachKind(t, p.Cmd.Process.Pid, kind)
					if i%2 == 0 {
						// main's exit_group: SIGKILL to the looping threads.
						p.Stdin.Close()
					} else if err := m.Kill(syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
					waitDone(t, m)
					requireNoDeaths(t, m)
				}
			})
		}
	}
}
