package e2e

import (
	"os"
	"strconv"
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
	return harness.Start(t, stallmonBin, withTracker(args)...)
}

// TrackerEnv names the tracker the detection tests run attach and run
// with (make test runs them once more with sampled); unset, the default.
const TrackerEnv = "STALLMON_TEST_TRACKER"

func withTracker(args []string) []string {
	tr := os.Getenv(TrackerEnv)
	if tr == "" || len(args) == 0 || (args[0] != "attach" && args[0] != "run") {
		return args
	}
	return append([]string{args[0], "--tracker", tr}, args[1:]...)
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
