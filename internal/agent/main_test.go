package agent

import (
	"os"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/testutil/workloadtest"
	"github.com/stallmon/stallmon/internal/tracker"
	"github.com/stallmon/stallmon/internal/workload"
)

func TestMain(m *testing.M) {
	workload.RunIfChild()
	os.Exit(m.Run())
}

// watchHang starts a workload that can hang in a userfaultfd read,
// attaches the tracker to it (closed at cleanup), and returns the built-in
// table, where the workload's waits on futexes and pipes are unbounded,
// with a default rule of budget b and killAfter k (0: never) for the rest,
// the hung read of a device included.
func watchHang(t *testing.T, b, k time.Duration) (*workload.Proc, *tracker.Tracker, *budget.Table) {
	t.Helper()
	privtest.Require(t)
	privtest.RequireUserfaultfd(t)
	w := workloadtest.Start(t)
	mon, err := tracker.Attach(tracker.Process(w.PID), nil, tracker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	table, err := budget.Default(nil)
	if err != nil {
		t.Fatal(err)
	}
	if table, err = table.WithDefaults(&b, &k); err != nil {
		t.Fatal(err)
	}
	return w, mon, table
}
