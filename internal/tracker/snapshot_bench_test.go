package tracker

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
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

func benchAttach(b *testing.B, opts Options) *Tracker {
	m, err := Attach(Process(os.Getpid()), nil, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}
