package e2e

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/workload"
)

type cluster = harness.Cluster

func newCluster(t *testing.T) *cluster { return harness.NewCluster(t) }

// startStallmon runs a stallmon subcommand whose stdout is JSON until the
// test ends.
func startStallmon(t *testing.T, args ...string) *harness.Proc {
	t.Helper()
	return startAgent(t, stallmonBin, args...)
}

// startAgent runs bin's attach or run with the flags of the pass the
// suite runs in (TrackerEnv, BPFFeaturesEnv). In the minimal object's
// pass every attached event must name the minimal object, and the agent
// must log one: a pass that ran the full object would prove nothing.
func startAgent(t *testing.T, bin string, args ...string) *harness.Proc {
	t.Helper()
	args = withPassFlags(args)
	if !minimalPass() || !isAgent(args) {
		return harness.Start(t, bin, args...)
	}
	var attached atomic.Bool
	// Registered before Start's cleanup, so it runs after the agent exited.
	t.Cleanup(func() {
		if !attached.Load() && !t.Failed() {
			t.Errorf("stallmon %s logged no attached event: this pass cannot tell which BPF object it loaded", args[0])
		}
	})
	return harness.StartChecked(t, minimalObjectCheck(&attached), bin, args...)
}

// minimalObjectCheck fails an attached event that names another object
// than the minimal one, and notes in attached that one was seen.
func minimalObjectCheck(attached *atomic.Bool) func(ev map[string]any) error {
	return func(ev map[string]any) error {
		if ev["msg"] != "attached" {
			return nil
		}
		attached.Store(true)
		if ev["bpf_object"] != "minimal" {
			return fmt.Errorf("bpf_object %v, want minimal (%s=minimal)", ev["bpf_object"], BPFFeaturesEnv)
		}
		return nil
	}
}

// TrackerEnv names the tracker the detection tests run attach and run
// with (make test runs them once more with sampled); unset, the default.
const TrackerEnv = "STALLMON_TEST_TRACKER"

// BPFFeaturesEnv is the --bpf-features the detection tests run attach and
// run with (make test runs them once more with minimal, the object Linux
// 5.10-5.14 get); unset, the default.
const BPFFeaturesEnv = "STALLMON_TEST_BPF_FEATURES"

func minimalPass() bool { return os.Getenv(BPFFeaturesEnv) == "minimal" }

func isAgent(args []string) bool { return len(args) > 0 && (args[0] == "attach" || args[0] == "run") }

func withPassFlags(args []string) []string {
	if !isAgent(args) {
		return args
	}
	var flags []string
	if tr := os.Getenv(TrackerEnv); tr != "" {
		flags = append(flags, "--tracker", tr)
	}
	if f := os.Getenv(BPFFeaturesEnv); f != "" {
		flags = append(flags, "--bpf-features", f)
	}
	return append(append([]string{args[0]}, flags...), args[1:]...)
}

func itoa(i int) string { return strconv.Itoa(i) }

// readHung has w read path, a file on a hung file system, and returns the
// reading thread and when the read was asked for.
func readHung(t *testing.T, w *workload.Proc, path string) (tid int, issued time.Time) {
	t.Helper()
	r, err := w.Do("read-file " + path)
	if err != nil {
		t.Fatal(err)
	}
	issued = time.Now()
	if tid, err = r.Int("tid"); err != nil {
		t.Fatal(err)
	}
	return tid, issued
}
