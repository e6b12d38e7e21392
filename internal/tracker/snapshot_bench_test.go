package tracker

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/testutil/workloadtest"
)

// BenchmarkSnapshot measures one poll's snapshot of a process with 100
// threads asleep in read(2) on a pipe (this test process): the iterator
// pass, with each thread's registers, fd kinds and kernel stack read in
// the kernel, and the decoding. It reports ns per snapshot and per
// thread, for threads that entered their read after the tracker attached
// (tracked) and before (known only from their registers), and tracked
// without the stacks (no-wait-sites). `make bench` measures whole polls
// of the agent instead (internal/test/bench/); this isolates the snapshot:
//
//	go test -run '^$' -bench Snapshot -benchtime 2000x ./internal/tracker/
func BenchmarkSnapshot(b *testing.B) {
	privtest.Require(b)
	b.Run("tracked", func(b *testing.B) { benchSnapshot(b, true, Options{}) })
	b.Run("before-attach", func(b *testing.B) { benchSnapshot(b, false, Options{}) })
	b.Run("no-wait-sites", func(b *testing.B) { benchSnapshot(b, true, Options{NoWaitSites: true}) })
}

func benchSnapshot(b *testing.B, attachFirst bool, opts Options) {
	var m *Tracker
	if attachFirst {
		m = benchAttach(b, opts)
	}
	const sleepers = 100
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{}, sleepers)
	for range sleepers {
		go func() {
			// Locked and never unlocked: the thread ends with the read.
			runtime.LockOSThread()
			var buf [1]byte
			unix.Read(fds[0], buf[:])
			done <- struct{}{}
		}()
	}
	b.Cleanup(func() {
		unix.Write(fds[1], make([]byte, sleepers))
		for range sleepers {
			<-done
		}
		unix.Close(fds[0])
		unix.Close(fds[1])
	})
	if !attachFirst {
		m = benchAttach(b, opts)
	}
	threads := 0
	b.ResetTimer()
	for b.Loop() {
		s, err := m.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		threads = len(s.Threads)
	}
	b.StopTimer()
	// The sleepers are started before the loop but may not all be asleep
	// yet at its first snapshots: that only makes the figure lower.
	if threads < sleepers {
		b.Fatalf("snapshot saw %d threads, want at least %d", threads, sleepers)
	}
	perSnap := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(float64(threads), "threads")
	b.ReportMetric(perSnap/float64(threads), "ns/thread")
}

// BenchmarkQuietSnapshot measures the pass the agent makes over a large
// idle service: 10,000 threads of a workload asleep in read(2) on a pipe,
// every one of them quiet, so the iterator counts them in the kernel and
// lists none. It is the cost per idle thread of a whole pass (ns/thread)
// and of the iterator program's run alone, as the kernel's BPF statistics
// count it (prog-ns/thread): the latter is what two builds differ in, and
// scheduling on a busy machine moves it least.
//
//	go test -run '^$' -bench QuietSnapshot -benchtime 200x ./internal/tracker/
func BenchmarkQuietSnapshot(b *testing.B) {
	privtest.Require(b)
	const sleepers = 10000
	p := workloadtest.Start(b)
	if _, err := p.DoTimeout(fmt.Sprintf("sleepers %d", sleepers), 2*time.Minute); err != nil {
		b.Fatal(err)
	}
	for _, kind := range []Kind{Tracepoint, Sampled} {
		b.Run(string(kind), func(b *testing.B) { benchQuietSnapshot(b, p.PID, kind, sleepers) })
	}
}

func benchQuietSnapshot(b *testing.B, pid int, kind Kind, sleepers int) {
	waitsByDesign := func(string, ...fdkind.Kind) bool { return true }
	m, err := Attach(Process(pid), nil, Options{Quiet: waitsByDesign, Kind: kind})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	stats, err := EnableBPFStats()
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()
	iterRun := func() ProgramStats {
		all, err := m.ProgramStats()
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range all {
			if p.Program == "task_iter" {
				return p
			}
		}
		b.Fatal("no task_iter program stats")
		return ProgramStats{}
	}
	before := iterRun()
	var s Snapshot
	for b.Loop() {
		if s, err = m.Snapshot(); err != nil {
			b.Fatal(err)
		}
	}
	after := iterRun()
	if s.Quiet < sleepers {
		b.Fatalf("snapshot counted %d quiet threads, want at least %d (listed %d)", s.Quiet, sleepers, len(s.Threads))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(s.Seen()), "ns/thread")
	if runs := after.RunCount - before.RunCount; runs > 0 {
		b.ReportMetric(float64((after.Runtime-before.Runtime).Nanoseconds())/float64(runs), "prog-ns/thread")
	}
}

func benchAttach(b *testing.B, opts Options) *Tracker {
	m, err := Attach(Process(os.Getpid()), nil, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}
