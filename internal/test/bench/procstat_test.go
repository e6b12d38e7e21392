package bench

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/cgroup"
)

func TestStatusField(t *testing.T) {
	threads, err := statusField(os.Getpid(), "Threads")
	if err != nil || threads < 1 {
		t.Errorf("Threads of this process: %d, %v", threads, err)
	}
	rss, err := rssMB(os.Getpid())
	if err != nil || rss <= 0 {
		t.Errorf("RSS of this process: %v MB, %v", rss, err)
	}
	if _, err := statusField(os.Getpid(), "NoSuchField"); err == nil {
		t.Error("statusField found a field /proc does not have")
	}
}

// The CPU a cgroup counts grows by at least what this process burns in it
// (others in the same cgroup only add to it).
func TestCgroupCPU(t *testing.T) {
	own, err := cgroup.Own()
	if err != nil {
		t.Skipf("no cgroup v2 here: %v", err)
	}
	before, err := cgroupCPU(own.Path)
	if err != nil {
		t.Fatal(err)
	}
	const burn = 50 * time.Millisecond
	spin(burn)
	after, err := cgroupCPU(own.Path)
	if err != nil {
		t.Fatal(err)
	}
	if after-before < burn*9/10 {
		t.Errorf("cpu.stat grew by %v while this process burned %v", after-before, burn)
	}
	if _, err := cgroupCPU(t.TempDir()); err == nil {
		t.Error("cgroupCPU read a directory that is no cgroup")
	}
}

// spin burns d of this process's CPU time.
func spin(d time.Duration) {
	start := processCPU()
	for processCPU()-start < d {
	}
}

func processCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts); err != nil {
		panic(err)
	}
	return time.Duration(ts.Nano())
}
