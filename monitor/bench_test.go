package monitor

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/privtest"
)

// BenchmarkSyscallCost measures what the tracker adds to a getppid loop:
// with no tracker, with the tracker watching another process (every task on
// the machine pays for the attached tracepoints), watching this process,
// and watching it with the latency histogram on (self+hist).
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

	cases := []struct {
		name string
		pid  int // 0: no tracker
		opts Options
	}{
		{"none", 0, Options{}},
		{"other", other.Process.Pid, Options{}},
		{"self", os.Getpid(), Options{}},
		{"self+hist", os.Getpid(), Options{LatencyHistogram: true}},
	}
	const rounds = 7
	perCall := make([][]float64, len(cases))
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		for i, c := range cases {
			ns, err := timeGetppid(b.N, c.pid, c.opts)
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
	b.Logf("getppid ns/call medians over %d rounds of %d calls: none=%.1f other=%.1f self=%.1f self+hist=%.1f (histogram adds %.1f)",
		rounds, b.N, base, median(perCall[1]), median(perCall[2]), median(perCall[3]), median(perCall[3])-median(perCall[2]))
}

// timeGetppid returns the mean ns per getppid over n calls, with the
// tracker attached to pid (none if pid is 0) for the duration.
func timeGetppid(n, pid int, opts Options) (float64, error) {
	if pid != 0 {
		m, err := AttachWith(pid, nil, opts)
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
