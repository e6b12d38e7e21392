package tracker

import (
	"fmt"
	"os"
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

// buildIA32 builds a C target static for ia32 and skips the test where
// the kernel runs no 32-bit programs.
func buildIA32(t *testing.T, name string) string {
	t.Helper()
	bin := ctarget.Build(t, name, "-m32", "-static")
	ctarget.RequireIA32(t, bin)
	return bin
}

// A 32-bit process ends its threads through the ia32 exit (1, write on
// amd64) and exit_group (252, ioprio_get): a worker thread that returns,
// then main's exit. Neither is a death; taken for native numbers, both
// were, and the agent killed a healthy process as died_in_syscall.
func TestIA32ThreadExitsAreNotDeaths(t *testing.T) {
	bin := buildIA32(t, "threadexit")
	for _, kind := range trackerKinds {
		t.Run(string(kind), func(t *testing.T) {
			p := ctarget.Start(t, bin, "wait")
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
}

// The other ordinary ends of a 32-bit process: exit_group while two
// threads sleep in ia32 syscalls (they leave theirs through sys_exit),
// and SIGKILL while they do.
func TestIA32ProcessEndsAreNotDeaths(t *testing.T) {
	bin := buildIA32(t, "ia32wait")
	for _, kind := range trackerKinds {
		t.Run(string(kind)+"/exit_group", func(t *testing.T) {
			p := ctarget.Start(t, bin)
			m := attachKind(t, p.Cmd.Process.Pid, kind)
			if err := p.Stdin.Close(); err != nil {
				t.Fatal(err)
			}
			p.Wait(t, 10*time.Second)
			waitDone(t, m)
			requireNoDeaths(t, m)
		})
		t.Run(string(kind)+"/SIGKILL", func(t *testing.T) {
			p := ctarget.Start(t, bin)
			m := attachKind(t, p.Cmd.Process.Pid, kind)
			if err := m.Kill(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitDone(t, m)
			requireNoDeaths(t, m)
		})
	}
}

// A 32-bit thread that the kernel ends inside a syscall is still a
// death, named from its own table: the exit hook runs on the thread
// while it is inside its ia32 bpf(2) (357; BPF_PROG_TEST_RUN of the hook
// itself), as it does on a thread an oops kills there. The real oops of
// a 32-bit thread is in internal/test/vm/guest (TestOops).
func TestIA32DeathInsideSyscallIsRecorded(t *testing.T) {
	bin := buildIA32(t, "hookrun")
	for _, kind := range trackerKinds {
		t.Run(string(kind), func(t *testing.T) {
			p := ctarget.Start(t, bin)
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
				t.Fatalf("after one death inside an ia32 bpf(2): total %d, records %+v", s.DeathsTotal, s.Deaths)
			}
			d := s.Deaths[0]
			const ia32BPF = 357
			if fmt.Sprint(d.TID) != ran["tid"] || d.PID != pid || d.Syscall != "bpf" || d.Nr != ia32BPF || d.ABI != ABICompat || d.FD != -1 {
				t.Fatalf("death = %+v, want tid %s of %d in bpf (ia32 %d, no fd)", d, ran["tid"], pid, ia32BPF)
			}
		})
	}
}

// A 32-bit process's calls are measured under the native call they are:
// the latency histogram, indexed by native number, left every ia32 call
// out, so a 32-bit service's histogram stayed empty.
func TestIA32CallsInLatencyHistogram(t *testing.T) {
	bin := buildIA32(t, "threadexit")
	p := ctarget.Start(t, bin, "wait")
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
	// The worker's gettid (ia32 224), the write of "done" (4) and the
	// mmap2 (192) of the worker's stack, which is judged as mmap.
	for _, name := range []string{"gettid", "write", "mmap"} {
		if counts[name] == 0 {
			t.Errorf("no %s in the histogram of a 32-bit process: %v", name, counts)
		}
	}
}

// Quiet threads of a 32-bit process are counted by the native call they
// sleep in, as those of a 64-bit one are: left out of the per-syscall
// counts, they vanished from stallmon_syscalls_in_flight.
func TestIA32QuietThreadsCountedBySyscall(t *testing.T) {
	bin := buildIA32(t, "ia32wait")
	p := ctarget.Start(t, bin)
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
		t.Errorf("quiet threads by syscall %v, want 2 in read and 1 in nanosleep", got)
	}
}
