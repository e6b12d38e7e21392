package tracker

import (
	"errors"
	"testing"
	"time"

	"github.com/cilium/ebpf/asm"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// The kernel histogram places a syscall that hung for a known time in the
// right bucket, and counts every call of a fast loop.
func TestLatencyHistogram(t *testing.T) {
	privtest.RequireUserfaultfd(t)
	p := startWorkload(t)
	privtest.Require(t)
	m, err := Attach(Process(p.PID), nil, Options{LatencyHistogram: true})
	if err != nil {
		t.Fatalf("attaching: %v", err)
	}
	t.Cleanup(func() { m.Close() })

	// The hung read lasts at least held (the kernel said so). The slowest
	// read must also fit the window from the first command to the last
	// reply: the workload's own command reads are reads too, and on a slow
	// machine (a TCG guest, with the busy loop hogging a CPU) the one that
	// waits for "uffd-hang" outlasts the hung read. Any read that ended
	// started after the attach, so within that window; the read waiting
	// for "busy" began before the attach and is not recorded.
	first := time.Now()
	do(t, p, "busy")
	tid := fieldInt(t, do(t, p, "uffd-hang"), "tid")
	const held = 30 * time.Millisecond
	for mustThread(t, snapshot(t, m), tid).Elapsed < held {
	}
	do(t, p, "uffd-release")
	n := fieldInt(t, do(t, p, "busy-stop"), "count")
	atMost := time.Since(first)

	hist, err := m.LatencyHistogram()
	if err != nil {
		t.Fatal(err)
	}
	bounds := LatencyBounds()
	byName := map[string]SyscallLatency{}
	for _, h := range hist {
		byName[h.Syscall] = h
		var sum uint64
		for _, c := range h.Counts {
			sum += c
		}
		if sum != h.Count || len(h.Counts) != len(bounds)+1 {
			t.Errorf("%s: %d buckets summing to %d, count %d", h.Syscall, len(h.Counts), sum, h.Count)
		}
	}
	if g := byName["getppid"]; g.Count < uint64(n) || n == 0 {
		t.Errorf("getppid observed %d times, the loop made %d", g.Count, n)
	}
	read := byName["read"]
	if read.Sum < held {
		t.Fatalf("read latency sum %v, but one read was held for %v", read.Sum, held)
	}
	slowest := -1
	for i, c := range read.Counts {
		if c > 0 {
			slowest = i
		}
	}
	if slowest >= len(bounds) || bounds[slowest] < held || (slowest > 0 && bounds[slowest-1] > atMost) {
		t.Errorf("slowest read in bucket %d (bounds %v), want one that holds a latency in [%v, %v]",
			slowest, bounds[max(slowest-1, 0):min(slowest+1, len(bounds))], held, atMost)
	}
}

func TestLatencyHistogramOff(t *testing.T) {
	p := startWorkload(t)
	m := attach(t, p.PID)
	if h, err := m.LatencyHistogram(); h != nil || err != nil || m.LatencyHistogramEnabled() {
		t.Fatalf("histogram off: got %v, %v", h, err)
	}
}

// Reads from a scrape goroutine may race with Close: they fail cleanly.
func TestReadsAfterClose(t *testing.T) {
	p := startWorkload(t)
	privtest.Require(t)
	m, err := Attach(Process(p.PID), nil, Options{LatencyHistogram: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.ProgramStats(); err != nil {
		t.Fatalf("program stats: %v", err)
	}
	m.Close()
	if _, err := m.Counters(); !errors.Is(err, ErrClosed) {
		t.Errorf("Counters after Close: %v, want ErrClosed", err)
	}
	if _, err := m.LatencyHistogram(); !errors.Is(err, ErrClosed) {
		t.Errorf("LatencyHistogram after Close: %v, want ErrClosed", err)
	}
	if _, err := m.ProgramStats(); !errors.Is(err, ErrClosed) {
		t.Errorf("ProgramStats after Close: %v, want ErrClosed", err)
	}
}

// With statistics on, the programs' run counts grow with the target's
// syscalls (and everyone else's, which they filter out).
func TestProgramStats(t *testing.T) {
	p := startWorkload(t)
	m := attach(t, p.PID)
	stats, err := EnableBPFStats()
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	before, err := m.ProgramStats()
	if err != nil {
		t.Fatal(err)
	}
	do(t, p, "busy")
	n := fieldInt(t, do(t, p, "busy-stop"), "count")
	after, err := m.ProgramStats()
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range after {
		if a.Program != "sys_enter" && a.Program != "sys_exit" {
			continue
		}
		if runs := a.RunCount - before[i].RunCount; runs < uint64(n) || a.Runtime <= before[i].Runtime {
			t.Errorf("%s: %d runs (%v -> %v) for a loop of %d syscalls", a.Program, runs, before[i].Runtime, a.Runtime, n)
		}
	}
}

// With the histogram off, the verifier removes its code from sys_exit (the
// switch is a load-time constant): the program the kernel runs has none
// of its clock read and atomic adds, only the load of the switch.
func TestLatencyHistogramOffRemovesCode(t *testing.T) {
	p := startWorkload(t)
	atomics := func(hist bool) (atomic, total int) {
		t.Helper()
		privtest.Require(t)
		m, err := Attach(Process(p.PID), nil, Options{LatencyHistogram: hist})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		info, err := m.objs.SysExit.Info()
		if err != nil {
			t.Fatal(err)
		}
		insns, err := info.Instructions()
		if err != nil {
			t.Fatalf("reading translated sys_exit: %v", err)
		}
		for _, ins := range insns {
			if ins.OpCode.Class() == asm.StXClass && ins.OpCode.Mode() == asm.AtomicMode {
				atomic++
			}
		}
		return atomic, len(insns)
	}
	offAtomics, offLen := atomics(false)
	onAtomics, onLen := atomics(true)
	if offAtomics != 0 || onAtomics != 2 || offLen >= onLen {
		t.Fatalf("sys_exit: %d atomic adds in %d instructions with the histogram off, %d in %d with it on; want 0 and 2",
			offAtomics, offLen, onAtomics, onLen)
	}
	t.Logf("sys_exit is %d instructions with the histogram off, %d with it on", offLen, onLen)
}
