package bench

import (
	"fmt"
	"io"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/tracker"
)

// runMinimal is the minimal part: the fallback set (the minimal BPF
// object, which old kernels load) beside the full object, each pair
// measured in the same run against baselines of its own, so that
// `make bench BENCH_PARTS=minimal` alone gives the comparison. getppid
// on the watched process and on another one, interleaved with no
// tracker and the empty-program floor; then the poll cost of
// cfg.fallbackPollCases, the full object's and the minimal one's in
// turn on targets made alike.
func runMinimal(t *testing.T, cfg config, tab *Table) {
	loop := startProtocol(t, ctarget.Build(t, "getppidloop"))
	other := startProtocol(t, ctarget.Build(t, "idlethreads"))
	const bench = "getppid, fallback set"
	none := tab.Add(&Row{Key: FallbackKey(KeyNoTracker), Bench: bench, Case: "no tracker", Unit: NsPerCall})
	cases := []syscallCase{
		{row: none, calls: cfg.calls},
		{row: tab.Add(&Row{Key: FallbackKey(KeyFloor), Bench: bench, Unit: NsPerCall, Base: none,
			Case: "empty programs on raw tracepoints sys_enter + sys_exit (the floor)"}), calls: cfg.calls, attach: attachFloor},
	}
	for _, tr := range Trackers {
		if !tr.Minimal {
			continue
		}
		for _, scope := range []string{ScopeOther, ScopeSelf} {
			pid := other.PID
			if scope == ScopeSelf {
				pid = loop.PID
			}
			opts := tr.MonitorOptions(tracker.Options{})
			full := tab.Add(&Row{Key: FallbackKey(GetppidKey(tr.Name, scope)), Bench: bench, Unit: NsPerCall, Base: none,
				Case: fmt.Sprintf("stallmon (%s), full object, on %s", tr.Name, scopeLabel(scope))})
			minimal := tab.Add(&Row{Key: MinimalGetppidKey(tr.Name, scope), Bench: bench, Unit: NsPerCall, Base: full,
				Case: fmt.Sprintf("stallmon (%s), minimal object (--bpf-features=minimal), on %s", tr.Name, scopeLabel(scope))})
			cases = append(cases,
				syscallCase{row: full, calls: cfg.calls, attach: attachObject(pid, opts, tracker.ObjectFull)},
				syscallCase{row: minimal, calls: cfg.calls, attach: attachObject(pid, withMinimal(opts), tracker.ObjectMinimal)})
		}
	}
	for round := range cfg.rounds {
		for _, c := range cases {
			ns, err := timeGetppid(loop, c)
			if err != nil {
				t.Fatalf("round %d, %s: %v", round+1, c.row.Case, err)
			}
			c.row.Samples = append(c.row.Samples, ns)
		}
		t.Logf("fallback set: getppid round %d of %d done", round+1, cfg.rounds)
	}

	bin := ctarget.Build(t, "idlethreads")
	c := harness.NewCluster(t)
	cg := cgrouptest.New(t)
	for _, tr := range Trackers {
		if !tr.Minimal {
			continue
		}
		for i, pc := range cfg.fallbackPollCases {
			full, minimal := pc, pc
			full.Minimal, minimal.Minimal = false, true
			var fullRows, minimalRows [3]*Row
			for k, m := range pollMeasures {
				b := m.Bench + ", fallback set"
				fullRows[k] = tab.Add(&Row{Key: FallbackKey(PollKey(tr.Name, m.Measure, full)), Bench: b, Unit: m.Unit,
					Case: fmt.Sprintf("stallmon (%s), %s", tr.Name, full)})
				minimalRows[k] = tab.Add(&Row{Key: FallbackKey(PollKey(tr.Name, m.Measure, minimal)), Bench: b, Unit: m.Unit,
					Base: fullRows[k], Case: fmt.Sprintf("stallmon (%s), %s", tr.Name, minimal)})
			}
			runs := []struct {
				pc   PollCase
				rows [3]*Row
			}{{full, fullRows}, {minimal, minimalRows}}
			// Neither object always goes first: whatever the one before
			// leaves behind falls on each in turn.
			if i%2 == 1 {
				runs[0], runs[1] = runs[1], runs[0]
			}
			for _, r := range runs {
				measurePolls(t, cfg, tr, c, cg.Path, bin, stallmonBin, r.pc, r.rows)
				t.Logf("fallback set: poll cost, %s: %s ms/poll, %s%% CPU, %s MB", r.rows[0].Case,
					Format(r.rows[0].Figure()), Format(r.rows[1].Figure()), Format(r.rows[2].Figure()))
			}
		}
	}
}

func withMinimal(o tracker.Options) tracker.Options {
	o.BPFFeatures = tracker.MinimalFeatures
	return o
}

// attachObject attaches the tracker to pid and fails unless it loaded
// object: a row of one object must never measure the other.
func attachObject(pid int, opts tracker.Options, object string) func() (io.Closer, error) {
	return func() (io.Closer, error) {
		tr, err := tracker.Attach(tracker.Process(pid), nil, opts)
		if err != nil {
			return nil, err
		}
		if got := tr.Object(); got != object {
			tr.Close()
			return nil, fmt.Errorf("the tracker loaded the %s BPF object, want the %s one", got, object)
		}
		return tr, nil
	}
}
