package main

import (
	"os"
	"strconv"
	"testing"

	"github.com/stallmon/stallmon/internal/e2e"
)

type cluster = e2e.Cluster

func newCluster(t *testing.T) *cluster { return e2e.NewCluster(t) }

// startStallmon runs a stallmon subcommand whose stdout is JSON until the
// test ends.
func startStallmon(t *testing.T, args ...string) *e2e.Proc {
	t.Helper()
	return e2e.Start(t, stallmonBin, withTracker(args)...)
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

// startStallmonLogging is startStallmon for a subcommand that logs JSON
// to stderr (listen --log-format json): its log comes on Events too.
func startStallmonLogging(t *testing.T, args ...string) *e2e.Proc {
	t.Helper()
	return e2e.StartLogging(t, stallmonBin, withTracker(args)...)
}
