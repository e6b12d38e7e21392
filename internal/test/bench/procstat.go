package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cgroupCPU is the CPU time, user and system, that the processes of a
// cgroup v2 directory used while in it, exited threads included, to the
// microsecond (cpu.stat, which needs no controller).
func cgroupCPU(dir string) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return 0, fmt.Errorf("reading CPU time: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "usage_usec "); ok {
			us, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("reading CPU time of %s: %w", dir, err)
			}
			return time.Duration(us) * time.Microsecond, nil
		}
	}
	return 0, fmt.Errorf("reading CPU time of %s: no usage_usec in cpu.stat", dir)
}

// statusField returns a field of /proc/PID/status ("VmRSS", "Threads",
// "TracerPid") as its first number: kB for sizes.
func statusField(pid int, name string) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", name, err)
	}
	for line := range strings.Lines(string(b)) {
		v, ok := strings.CutPrefix(line, name+":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			break
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("reading %s of %d: %w", name, pid, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("reading %s of %d: not in /proc/%d/status", name, pid, pid)
}

// rssMB is pid's resident set size in MB (10^6 bytes); /proc's "kB" are
// KiB.
func rssMB(pid int) (float64, error) {
	kib, err := statusField(pid, "VmRSS")
	return float64(kib) * 1024 / 1e6, err
}
