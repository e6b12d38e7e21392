package tracker

import (
	"bufio"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// BenchmarkSnapshotIdleThreads measures one poll's snapshot of a process
// of 10,000 threads idle in futex(2), with a quiet set as the agent has
// one: the kernel's pass over every thread, each only counted. Compare
// two builds by running it from each, in turns, on one machine:
//
//	go test -run '^$' -bench SnapshotIdleThreads -benchtime 300x ./internal/tracker/
func BenchmarkSnapshotIdleThreads(b *testing.B) {
	privtest.Require(b)
	const idle = 10000
	cmd := exec.Command(ctarget.Build(b, "idlethreads"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close() // EOF ends it
		cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "ready ") {
		b.Fatalf("idlethreads: %q, want its ready line", lines.Text())
	}
	fmt.Fprintf(stdin, "spawn %d 0\n", idle)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "ok ") {
		b.Fatalf("idlethreads spawn: %q", lines.Text())
	}
	quiet := func(syscall string, _ ...fdkind.Kind) bool { return syscall == "futex" }
	m, err := Attach(Process(cmd.Process.Pid), nil, Options{Quiet: quiet})
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
	if s.Seen() < idle {
		b.Fatalf("snapshot saw %d threads, want at least %d", s.Seen(), idle)
	}
	b.ReportMetric(float64(s.Seen()), "threads")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(s.Seen()), "ns/thread")
}
