package monitor

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/cgrouptest"
	"github.com/stallmon/stallmon/internal/privtest"
)

// BenchmarkSyscallCost measures what the tracker adds to a getppid loop:
// with no tracker, with the tracker watching another process (every task on
// the machine pays for the attached tracepoints), another process's tree
// (a map lookup per syscall) or cgroup (an ancestor-cgroup helper per
// syscall), watching this process, and watching it with the latency
// histogram on (self+hist).
// The three cases run interleaved in rounds within one run, so machine
// noise hits them alike; medians and ratios to the baseline are reported.
//
//	make bench   (go test -run '^$' -bench SyscallCost -benchtime 2000000x ./monitor/)
func BenchmarkSyscallCost(b *testing.B) {
	privtest.Require(b)
	other := exec.Command("sleep", "3600")
	if err := other.Start(); err != nil {
		b.Fatalf("starting idle process: %v", err)
	}
	b.Cleanup(func() { other.Process.Kill(); other.Wait() })

	// The idle process in a cgroup of its own, for the cgroup mode.
	cg := cgrouptest.New(b)
	if err := cg.Add(other.Process.Pid); err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name   string
		attach func() (*Monitor, error) // nil: no tracker
	}{
		{"none", nil},
		{"other", func() (*Monitor, error) { return AttachWith(other.Process.Pid, nil, Options{}) }},
		{"other-tree", func() (*Monitor, error) { return AttachTree(other.Process.Pid, nil, Options{}) }},
		{"other-cgroup", func() (*Monitor, error) { return AttachCgroup(cg.Path, nil, Options{}) }},
		{"self", func() (*Monitor, error) { return AttachWith(os.Getpid(), nil, Options{}) }},
		{"self+hist", func() (*Monitor, error) { return AttachWith(os.Getpid(), nil, Options{LatencyHistogram: true}) }},
	}
	const rounds = 7
	perCall := make([][]float64, len(cases))
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		for i, c := range cases {
			ns, err := timeGetppid(b.N, c.attach)
			if err != nil {
				b.Fatalf("%s: %v", c.name, err)
			}
			perCall[i] = append(perCall[i], ns)
		}
	}
	b.StopTimer()
	base := median(perCall[0])
	for i, c := range cases {
		m := median(perCall[i])
		b.ReportMetric(m, "ns/call-"+c.name)
		if i > 0 {
			b.ReportMetric(m-base, "ns-added-"+c.name)
			b.ReportMetric(m/base, "x-"+c.name)
		}
	}
	b.ReportMetric(0, "ns/op") // the per-case metrics above are the result
	var line []string
	for i, c := range cases {
		line = append(line, fmt.Sprintf("%s=%.1f", c.name, median(perCall[i])))
	}
	b.Logf("getppid ns/call medians over %d rounds of %d calls: %s", rounds, b.N, strings.Join(line, " "))
}

// timeGetppid returns the mean ns per getppid over n calls, with the
// tracker attach makes (none if nil) attached for the duration.
func timeGetppid(n int, attach func() (*Monitor, error)) (float64, error) {
	if attach != nil {
		m, err := attach()
		if err != nil {
			return 0, fmt.Errorf("attaching: %w", err)
		}
		defer m.Close()
	}
	start := time.Now()
	for range n {
		unix.Getppid()
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n), nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
