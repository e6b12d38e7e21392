package tracker

import (
	"fmt"
	"log/slog"
	"os"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/testutil/workloadtest"
	"github.com/stallmon/stallmon/internal/workload"
)

func TestMain(m *testing.M) {
	// The workload is this test binary re-executed: it runs the command
	// protocol instead of the tests.
	workload.RunIfChild()
	os.Exit(m.Run())
}

// startWorkload starts a workload process that the test can make hang.
func startWorkload(t *testing.T) *workload.Proc { return workloadtest.Start(t) }

// attach attaches a tracker to pid for the duration of the test.
func attach(t *testing.T, pid int) *Monitor {
	t.Helper()
	return attachBy(t, AttachWith, pid)
}

// attachBy attaches to pid with attach for the duration of the test.
func attachBy(tb testing.TB, attach func(int, *slog.Logger, Options) (*Monitor, error), pid int) *Monitor {
	tb.Helper()
	privtest.Require(tb)
	m, err := attach(pid, nil, Options{})
	if err != nil {
		tb.Fatalf("attaching to %d: %v", pid, err)
	}
	tb.Cleanup(func() {
		if err := m.Close(); err != nil {
			tb.Errorf("closing monitor: %v", err)
		}
	})
	return m
}

func do(t *testing.T, p *workload.Proc, cmd string) workload.Reply {
	t.Helper()
	f, err := p.Do(cmd)
	if err != nil {
		t.Fatalf("workload %q: %v", cmd, err)
	}
	return f
}

func fieldInt(t *testing.T, f workload.Reply, key string) int {
	t.Helper()
	v, err := f.Int(key)
	if err != nil {
		t.Fatalf("reply field %s: %v", key, err)
	}
	return v
}

func snapshot(t *testing.T, m *Monitor) Snapshot {
	t.Helper()
	s, err := m.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return s
}

func mustThread(t *testing.T, s Snapshot, tid int) Thread {
	t.Helper()
	th, ok := s.Thread(tid)
	if !ok {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", s.PID))
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", s.PID, tid))
		t.Fatalf("thread %d missing from snapshot %+v; /proc has %v; stat %s", tid, s.Threads, ents, stat)
	}
	return th
}
