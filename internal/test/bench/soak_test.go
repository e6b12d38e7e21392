package bench

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/workload"
)

// soakCase says what the soak runs, for the settings line and the goals.
func (c config) soakCase() string {
	rules := "stallmon attach's defaults"
	if c.soakBudget > 0 {
		rules = "--budget " + c.soakBudget.String()
	}
	return fmt.Sprintf("%s threads (%d busy) for %v under %s, then one read of a hung FUSE file",
		thousands(c.soakThreads), c.soakBusy, c.soakFor, rules)
}

// runSoak watches, with each tracker, a target of cfg.soakThreads threads
// of which cfg.soakBusy make getppid calls as fast as they can, for
// cfg.soakFor at stallmon's defaults; then one of its threads reads a file
// whose FUSE server never answers. It fills the rate of syscalls the
// target made, and the time from the hang to its stall event, and returns
// the stall events before the hang: all false.
func runSoak(t *testing.T, cfg config, tab *Table) (falseStalls int) {
	bin := ctarget.Build(t, "idlethreads")
	c := harness.NewCluster(t)
	for _, tr := range Trackers {
		rate := tab.Add(&Row{Key: SoakKey(tr.Name, SoakRate), Bench: "soak: target's syscalls", Unit: CallsPerSec,
			Case: fmt.Sprintf("stallmon (%s), %s", tr.Name, cfg.soakCase())})
		found := tab.Add(&Row{Key: SoakKey(tr.Name, SoakFound), Bench: "soak: hang to stall event", Unit: Millis,
			Case: fmt.Sprintf("stallmon (%s), the one hung read among %s threads", tr.Name, thousands(cfg.soakThreads))})
		falseStalls += soakOnce(t, cfg, tr, c, bin, rate, found)
	}
	return falseStalls
}

func soakOnce(t *testing.T, cfg config, tr Tracker, c *harness.Cluster, bin string, rate, found *Row) (falseStalls int) {
	target := startProtocol(t, bin)
	defer target.Stop()
	spawnThreads(t, target, cfg.soakThreads-cfg.soakBusy-1, cfg.soakBusy)
	fs := fusehang.Mount(t, fusehang.Options{})
	// Before the target stops: its reader cannot end while the read is
	// held.
	defer fs.Release()
	args := []string{"--pid", strconv.Itoa(target.PID), "--no-kill"}
	if cfg.soakBudget > 0 {
		args = append(args, "--budget", cfg.soakBudget.String())
	}
	a := startAgent(t, tr, c, fmt.Sprintf("bench-soak-%d", target.PID), args...)
	defer stopAgent(t, a)

	before := calls(t, target)
	start := time.Now()
	// The soak is a stretch of time by design: each second, check that
	// the agent reported nothing.
	for time.Since(start) < cfg.soakFor {
		for _, ev := range a.Events.Drain() {
			if ev["msg"] == event.Stall {
				falseStalls++
				t.Errorf("%s: false stall during the soak: %v", rate.Case, ev)
			}
		}
		time.Sleep(min(time.Second, cfg.soakFor-time.Since(start)+time.Millisecond))
	}
	made := calls(t, target) - before
	elapsed := time.Since(start)
	rate.Samples = append(rate.Samples, float64(made)/elapsed.Seconds())

	r, err := target.Do("read " + fs.File)
	if err != nil {
		t.Fatal(err)
	}
	hung := time.Now()
	tid, err := r.Int("tid")
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range a.Events.Drain() {
		if ev["msg"] == event.Stall {
			falseStalls++
			t.Errorf("%s: false stall during the soak: %v", rate.Case, ev)
		}
	}
	stall := a.Events.Next(event.Stall, time.Minute)
	if got, _ := stall["tid"].(float64); int(got) != tid {
		t.Fatalf("%s: stall on thread %v, want the reader %d: %v", found.Case, stall["tid"], tid, stall)
	}
	at := harness.EventTime(t, stall)
	found.Samples = append(found.Samples, ms(at.Sub(hung)))
	t.Logf("soak (%s): %.0f syscalls/s for %v, %d false stalls; the hung read found %v after it began",
		tr.Name, rate.Samples[0], elapsed.Round(time.Second), falseStalls, at.Sub(hung).Round(time.Millisecond))
	return falseStalls
}

// calls is how many getppid calls target's busy threads have made.
func calls(t *testing.T, target *workload.Proc) uint64 {
	t.Helper()
	r, err := target.Do("calls")
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.Int("calls")
	if err != nil {
		t.Fatal(err)
	}
	return uint64(n)
}
