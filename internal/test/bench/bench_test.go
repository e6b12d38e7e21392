package bench

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/workload"
)

// Environment of a full run, set by `make bench`.
const (
	fullEnv = "STALLMON_BENCH"     // 1: run TestBenchmarks
	outEnv  = "STALLMON_BENCH_OUT" // where it writes the table (markdown)
)

// stallmonBin is the stallmon binary, built once, that the rows run as
// `stallmon attach`.
var stallmonBin string

func TestMain(m *testing.M) {
	workload.RunIfChild()
	os.Exit(harness.RunTests(m, &stallmonBin))
}

// config sizes one run.
type config struct {
	name string
	// rounds of the getppid and service rows, interleaved.
	rounds int
	// getppid calls per round; tools far dearer than a tracker get fewer
	// so that a round stays short (the figure is per call).
	calls, straceCalls, bpftraceCalls int
	// Requests of each service's client per case and round: redis's per
	// command (SET, GET), redis AOF's SETs, nginx's GETs.
	redisRequests, aofRequests, nginxRequests int

	pollCases []PollCase
	// fallbackPollCases are the minimal part's poll-cost cases, each run
	// with the full object and the minimal one.
	fallbackPollCases []PollCase
	// snapshotCases, each snapshots times per round (rounds), with and
	// without wait sites.
	snapshotCases []SnapshotCase
	snapshots     int
	// listenerCases are numbers of listening sockets in the scanned
	// process; each is scanned snapshots times per round (rounds).
	listenerCases []int
	// pollWindows of pollWindow each per poll-cost case: medians of them.
	pollWindows int
	pollWindow  time.Duration
	// latencyTrials hangs under `stallmon attach --budget budget`, with
	// these poll and heartbeat intervals.
	latencyTrials                           int
	budget, pollInterval, heartbeatInterval time.Duration
	// soak: soakThreads threads (soakBusy of them busy) watched for
	// soakFor, then one hang among them; soakBudget overrides the
	// default rule's budget (0: stallmon's defaults).
	soakThreads, soakBusy int
	soakFor, soakBudget   time.Duration
	// needTools: a missing strace or bpftrace fails the run instead of
	// leaving its row without a figure.
	needTools bool
	// selfBaseline: without $STALLMON_BENCH_BASELINE, the poll-cost rows
	// take this build for the baseline build too (see baselineBuild).
	selfBaseline bool
	// parts names the parts that ran when not all did.
	parts string
}

// full is `make bench`: about 8 to 12 minutes on a 2-CPU machine (see
// docs/benchmarks.md).
var full = config{
	name:   "full",
	rounds: 7, calls: 2_000_000, straceCalls: 20_000, bpftraceCalls: 500_000,
	redisRequests: 50_000, aofRequests: 50_000, nginxRequests: 50_000,
	pollCases: []PollCase{
		{Threads: 100}, {Threads: 100, Before: true},
		{Threads: 1000}, {Threads: 1000, Before: true},
		{Threads: 10000}, {Threads: 10000, Before: true},
		{Threads: 100, Host: goalHostThreads}, {Threads: 100, Host: goalHostThreads, Scope: ScopeTree},
		{Threads: 100, Host: goalHostThreads, Scope: ScopeCgroup},
		{Threads: goalCgroupThreads, Procs: goalCgroupProcs, Scope: ScopeCgroup},
		{Threads: 100, Bounded: true}, {Threads: 1000, Bounded: true}, {Threads: 10000, Bounded: true},
	},
	snapshotCases: []SnapshotCase{{100, false}, {100, true}, {10000, false}, {10000, true}},
	snapshots:     200,
	listenerCases: []int{100, 10000},
	pollWindows:   3, pollWindow: 3500 * time.Millisecond,
	// stallmon attach's defaults for the intervals.
	latencyTrials: 30, budget: time.Second, pollInterval: 100 * time.Millisecond, heartbeatInterval: 500 * time.Millisecond,
	soakThreads: 10000, soakBusy: 20, soakFor: time.Minute,
	needTools: true,
	// The figure: a poll at 1,000 threads, with each object.
	fallbackPollCases: []PollCase{{Threads: 1000}, {Threads: 1000, Before: true}},
}

// smoke runs every kind of row with tiny counts, for make test.
var smoke = config{
	name:   "smoke",
	rounds: 2, calls: 20_000, straceCalls: 200, bpftraceCalls: 5_000,
	redisRequests: 500, aofRequests: 500, nginxRequests: 500,
	pollCases: []PollCase{{Threads: 100}, {Threads: 100, Before: true}, {Threads: 100, Host: 200},
		{Threads: 100, Host: 200, Scope: ScopeTree}, {Threads: 100, Host: 200, Scope: ScopeCgroup},
		{Threads: 200, Procs: 4, Scope: ScopeCgroup}, {Threads: 100, Bounded: true}},
	snapshotCases: []SnapshotCase{{100, false}, {100, true}},
	snapshots:     5,
	listenerCases: []int{100},
	pollWindows:   1, pollWindow: 300 * time.Millisecond,
	latencyTrials: 3, budget: 300 * time.Millisecond, pollInterval: 50 * time.Millisecond, heartbeatInterval: 100 * time.Millisecond,
	soakThreads: 200, soakBusy: 2, soakFor: time.Second, soakBudget: 300 * time.Millisecond,
	selfBaseline: true,
	// One case, the smallest: the smoke run's cost stays a few seconds.
	fallbackPollCases: []PollCase{{Threads: 100}},
}

func (c config) settings(baseline *Build) string {
	against := ""
	if baseline != nil {
		against = fmt.Sprintf(", and as many with stallmon@%s on a target made alike, the two builds in turn (which goes first alternates from case to case)",
			baseline.Label)
	}
	name := c.name + " run"
	if c.parts != "" {
		name += ", parts: " + c.parts
	}
	return fmt.Sprintf("Settings (%s): %d interleaved rounds of %s getppid calls (strace %s, bpftrace %s) and of each service's requests "+
		"(redis: %s SETs + %s GETs; nginx: %s GETs; redis AOF: %s SETs); "+
		"poll cost: %d windows of %v per case at the default poll interval (100ms)%s; snapshot cost: %d rounds of %d snapshots per case; "+
		"detection latency: %d trials, budget %v, poll %v, heartbeat %v; soak: %s.",
		name, c.rounds, thousands(c.calls), thousands(c.straceCalls), thousands(c.bpftraceCalls), thousands(c.redisRequests),
		thousands(c.redisRequests), thousands(c.nginxRequests), thousands(c.aofRequests),
		c.pollWindows, c.pollWindow, against, c.rounds, c.snapshots, c.latencyTrials, c.budget,
		c.pollInterval, c.heartbeatInterval, c.soakCase())
}

// runAll runs every row of cfg and returns the table with its goals.
func runAll(t *testing.T, cfg config) *Table {
	privtest.Require(t)
	fusehang.Require(t)
	started := time.Now()
	baseline := baselineBuild(t, cfg)
	tab := &Table{}
	var falseStalls int
	var pollSeconds float64
	// A run of some parts (go test -run 'TestBenchmarks$/services', make
	// bench BENCH_PARTS=services) says which in its settings, so that
	// its table is never taken for a full run's.
	var parts, ran []string
	part := func(name string, f func(t *testing.T)) {
		parts = append(parts, name)
		t.Run(name, func(t *testing.T) { ran = append(ran, name); f(t) })
	}
	part("getppid", func(t *testing.T) { runGetppid(t, cfg, tab) })
	var layout *Layout
	part("services", func(t *testing.T) { l := runServices(t, cfg, tab); layout = &l })
	part("sendto", func(t *testing.T) { runSendto(t, cfg, tab) })
	part("poll", func(t *testing.T) { falseStalls, pollSeconds = runPollCost(t, cfg, tab, baseline) })
	part("snapshot", func(t *testing.T) { runSnapshotCost(t, cfg, tab) })
	part("listeners", func(t *testing.T) { runListenerScan(t, cfg, tab) })
	part("latency", func(t *testing.T) { runLatency(t, cfg, tab) })
	var soakStalls int
	part("soak", func(t *testing.T) { soakStalls = runSoak(t, cfg, tab) })
	part("minimal", func(t *testing.T) { runMinimal(t, cfg, tab) })
	if len(ran) < len(parts) {
		cfg.parts = strings.Join(ran, ", ")
	}
	tab.Header = []string{
		"Machine: " + Machine() + ".",
		fmt.Sprintf("Run: %s, stallmon %s, %v.", started.UTC().Format("2006-01-02 15:04 MST"), revision(),
			time.Since(started).Round(time.Second)),
		cfg.settings(baseline),
		"Figures are medians of the rounds (p50/p99: nearest rank over the trials); each is compared with a row of the same run.",
	}
	if layout != nil {
		tab.Header = append(tab.Header, "Service rows: "+layout.String()+
			"; a difference from no tracker that the spread of no tracker's own rounds covers is marked within noise.")
	}
	tab.Goals = append(Judge(tab, GoalInput{Trackers: Trackers, FalseStalls: falseStalls, PollSeconds: pollSeconds,
		SoakStalls: soakStalls, Soak: cfg.soakCase()}), JudgeServices(tab, Trackers)...)
	tab.Goals = append(tab.Goals, CompareFallback(tab, Trackers, cfg.fallbackPollCases)...)
	return tab
}

// revision names the source the run measured.
func revision() string {
	out, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		return "(unknown revision)"
	}
	return strings.TrimSpace(string(out))
}

// TestBenchmarks is `make bench`: every row at full size, the table written
// to $STALLMON_BENCH_OUT.
func TestBenchmarks(t *testing.T) {
	if os.Getenv(fullEnv) != "1" {
		t.Skipf("the full benchmark runs for minutes: run `make bench` (or set %s=1)", fullEnv)
	}
	tab := runAll(t, full)
	if t.Failed() {
		return
	}
	if missing := tab.MissingRows(); len(missing) > 0 {
		t.Fatalf("rows without a figure:\n%s", strings.Join(missing, "\n"))
	}
	md := tab.Markdown()
	out := os.Getenv(outEnv)
	if out == "" {
		t.Logf("\n%s", md)
		return
	}
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
}
