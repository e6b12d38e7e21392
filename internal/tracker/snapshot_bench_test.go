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
// pass, with each thread's registers and fd kinds read in the kernel, and
// the decoding. It reports ns per snapshot and per thread, for threads
// that entered their read after the tracker attached (tracked) and before
// (known only from their registers). `make bench` measures whole polls of
// the agent instead (internal/test/bench/); this isolates the snapshot:
//
//	go test -run '^$' -bench Snapshot -benchtime 2000x ./internal/tracker/
func BenchmarkSnapshot(b *testing.B) {
	privtest.Require(b)
	b.Run("tracked", func(b *testing.B) { benchSnapshot(b, true) })
	b.Run("before-attach", func(b *testing.B) { benchSnapshot(b, false) })
}

func benchSnapshot(b *testing.B, attachFirst bool) {
	var m *Tracker
	if attachFirst {
		m = benchAttach(b)
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
		m = benchAttach(b)
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
// lists none. It is the kernel side's cost per idle thread (ns/thread):
//
//	go test -run '^$' -bench QuietSnapshot -benchtime 200x ./internal/tracker/
func BenchmarkQuietSnapshot(b *testing.B) {
	privtest.Require(b)
	const sleepers = 10000
	p := workloadtest.Start(b)
	if _, err := p.DoTimeout(fmt.Sprintf("sleepers %d", sleepers), 2*time.Minute); err != nil {
		b.Fatal(err)
	}
	waitsByDesign := func(string, ...fdkind.Kind) bool { return true }
	m, err := Attach(Process(p.PID), nil, Options{Quiet: waitsByDesign})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	var s Snapshot
	for b.Loop() {
		if s, err = m.Snapshot(); err != nil {
			b.Fatal(err)
		}
	}
	if s.Quiet < sleepers {
		b.Fatalf("snapshot counted %d quiet threads, want at least %d (listed %d)", s.Quiet, sleepers, len(s.Threads))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(s.Seen()), "ns/thread")
}

func benchAttach(b *testing.B) *Tracker {
	m, err := Attach(Process(os.Getpid()), nil, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}
