package bench

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/tracker"
	"github.com/stallmon/stallmon/internal/workload"
)

// syscallCase is one column of the getppid rounds: what is attached while
// the loop runs.
type syscallCase struct {
	row   *Row
	calls int
	// attach sets the case up and returns what tears it down; nil for
	// nothing attached.
	attach func() (io.Closer, error)
}

// runGetppid times the getppid loop under each case, interleaved: round 1
// runs every case once, then round 2, so that drift on the machine hits
// every case alike.
func runGetppid(t *testing.T, cfg config, tab *Table) {
	loop := startProtocol(t, ctarget.Build(t, "getppidloop"))
	other := startProtocol(t, ctarget.Build(t, "idlethreads"))
	cg := cgrouptest.New(t)
	if err := cg.Add(other.PID); err != nil {
		t.Fatal(err)
	}
	none := tab.Add(&Row{Key: KeyNoTracker, Bench: "getppid", Case: "no tracker", Unit: NsPerCall})
	row := func(key, label string) *Row {
		return tab.Add(&Row{Key: key, Bench: "getppid", Case: label, Unit: NsPerCall, Base: none})
	}
	cases := []syscallCase{
		{row: none, calls: cfg.calls},
		{row: row(KeyFloor, "empty programs on raw tracepoints sys_enter + sys_exit (the floor)"), calls: cfg.calls, attach: attachFloor},
	}
	for _, tr := range Trackers {
		attach := func(scope string, start func() (*tracker.Tracker, error)) {
			label := fmt.Sprintf("stallmon (%s) on %s", tr.Name, scopeLabel(scope))
			cases = append(cases, syscallCase{row: row(GetppidKey(tr.Name, scope), label), calls: cfg.calls,
				attach: func() (io.Closer, error) { return start() }})
		}
		opts := tr.MonitorOptions(tracker.Options{})
		attach(ScopeOther, func() (*tracker.Tracker, error) { return tracker.Attach(tracker.Process(other.PID), nil, opts) })
		attach(ScopeOtherTree, func() (*tracker.Tracker, error) { return tracker.Attach(tracker.Tree(other.PID), nil, opts) })
		attach(ScopeOtherCgroup, func() (*tracker.Tracker, error) { return tracker.Attach(tracker.Cgroup(cg.Path), nil, opts) })
		attach(ScopeSelf, func() (*tracker.Tracker, error) { return tracker.Attach(tracker.Process(loop.PID), nil, opts) })
		if tr.Histogram {
			hist := opts
			hist.LatencyHistogram = true
			attach(ScopeSelfHist, func() (*tracker.Tracker, error) { return tracker.Attach(tracker.Process(loop.PID), nil, hist) })
		}
	}
	strace := syscallCase{row: row(KeyStrace, "strace -f -o /dev/null on this process"), calls: cfg.straceCalls}
	if path, ok := tool(t, cfg, strace.row, "strace"); ok {
		strace.attach = func() (io.Closer, error) { return startStrace(path, loop.PID) }
	}
	bpftrace := syscallCase{row: row(KeyBpftrace, "bpftrace, per-thread in-flight map, on this process"), calls: cfg.bpftraceCalls}
	if path, ok := tool(t, cfg, bpftrace.row, "bpftrace"); ok {
		ensureTracefs(t)
		bpftrace.attach = func() (io.Closer, error) { return startBpftrace(path, loop.PID) }
	}
	cases = append(cases, strace, bpftrace)

	for round := range cfg.rounds {
		for _, c := range cases {
			if c.row.Missing != "" {
				continue
			}
			ns, err := timeGetppid(loop, c)
			if err != nil {
				t.Fatalf("round %d, %s: %v", round+1, c.row.Case, err)
			}
			c.row.Samples = append(c.row.Samples, ns)
		}
		t.Logf("getppid round %d of %d done", round+1, cfg.rounds)
	}
}

// timeGetppid runs c's calls in the loop process with c attached, and
// returns the mean ns per call.
func timeGetppid(loop *workload.Proc, c syscallCase) (_ float64, err error) {
	if c.attach != nil {
		// aerr: an err declared here would shadow the result that the
		// deferred Close reports into.
		closer, aerr := c.attach()
		if aerr != nil {
			return 0, fmt.Errorf("attaching: %w", aerr)
		}
		defer func() {
			if cerr := closer.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("detaching: %w", cerr)
			}
		}()
	}
	// strace stops the loop at every syscall: a generous bound.
	r, err := loop.DoTimeout("run "+strconv.Itoa(c.calls), 5*time.Minute)
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseFloat(r.Fields["ns_per_call"], 64)
	if err != nil || ns <= 0 {
		return 0, fmt.Errorf("loop replied ns_per_call=%q", r.Fields["ns_per_call"])
	}
	return ns, nil
}

// startProtocol runs a program that speaks the workload line protocol
// (one of internal/testutil/ctarget's), stopped when the test ends.
func startProtocol(t testing.TB, path string) *workload.Proc {
	t.Helper()
	p, err := workload.Start(context.Background(), path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	return p
}

// tool returns the path of a tool that a full run needs and a smoke run
// may lack (make test does not install it): then the row says so.
func tool(t *testing.T, cfg config, r *Row, name string) (string, bool) {
	path, err := exec.LookPath(name)
	if err == nil {
		return path, true
	}
	if cfg.needTools {
		t.Fatalf("%s is not installed (make bench installs it): %v", name, err)
	}
	r.Missing = name + " not installed"
	t.Logf("%s: no figure: %v", r.Case, err)
	return "", false
}

// waitFor polls cond every 10 ms until it holds, it fails, or timeout.
// The kernel has no notification for the conditions this waits on (a
// tracer attached, a thread gone).
func waitFor(what string, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s within %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
