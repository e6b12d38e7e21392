package tracker

import (
	"fmt"
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
	// make test's minimal pass: every test that attaches with the
	// default choice loads the minimal object, so the fallbacks run on a
	// kernel that has everything.
	if f := os.Getenv("STALLMON_TEST_BPF_FEATURES"); f != "" {
		choice, err := ParseBPFFeatures(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		defaultFeatures = choice
	} else if object, _, err := ObjectFor(ProbeKernel(Features()), ProbeFeatures, Tracepoint); err == nil && object == ObjectMinimal {
		// A kernel whose probes pick the minimal object (make vmtest's
		// 5.10): every attach would try the full one first, to fail
		// after seconds of emulated verifier; go to the minimal one as
		// the minimal pass does. stallmon's own attaches in the guest
		// suites keep the probe-chosen path.
		defaultFeatures = MinimalFeatures
	}
	os.Exit(m.Run())
}

// startWorkload starts a workload process that the test can make hang.
func startWorkload(t *testing.T) *workload.Proc { return workloadtest.Start(t) }

// attach attaches a tracker to pid for the duration of the test.
func attach(t *testing.T, pid int) *Tracker {
	t.Helper()
	return attachBy(t, Process(pid))
}

// attachBy attaches to s for the duration of the test.
func attachBy(tb testing.TB, s Scope) *Tracker {
	tb.Helper()
	privtest.Require(tb)
	m, err := Attach(s, nil, Options{})
	if err != nil {
		tb.Fatalf("attaching: %v", err)
	}
	tb.Cleanup(func() {
		if err := m.Close(); err != nil {
			tb.Errorf("closing tracker: %v", err)
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

func snapshot(t *testing.T, m *Tracker) Snapshot {
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
