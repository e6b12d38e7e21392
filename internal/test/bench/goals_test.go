package bench

import (
	"strings"
	"testing"
)

// goalFigures are the figures a test gives the rows the goals read.
type goalFigures struct {
	floor, self, other    []float64 // ns/call, per round
	poll, cpu, rss        float64   // at 10,000 threads, both cases
	busyHostPoll          float64   // ms, each scope on a busy host; 0: no rows
	manyProcsPoll         float64   // ms, the cgroup of many processes; 0: no row
	lastAliveP99, boundMs float64
	soakRate, soakFoundMs float64 // 0: no soak rows
}

// goalTable is a table with every row the goals read, for one tracker.
func goalTable(tr Tracker, f goalFigures) *Table {
	tab := &Table{}
	none := tab.Add(&Row{Key: KeyNoTracker, Case: "no tracker", Samples: []float64{100, 100, 100}})
	tab.Add(&Row{Key: KeyFloor, Case: "the floor", Samples: f.floor, Base: none})
	tab.Add(&Row{Key: GetppidKey(tr.Name, ScopeSelf), Samples: f.self, Base: none})
	tab.Add(&Row{Key: GetppidKey(tr.Name, ScopeOther), Samples: f.other, Base: none})
	for _, before := range []bool{false, true} {
		c := PollCase{Threads: goalThreads, Before: before}
		tab.Add(&Row{Key: PollKey(tr.Name, PollTime, c), Samples: []float64{f.poll}})
		tab.Add(&Row{Key: PollKey(tr.Name, PollCPU, c), Samples: []float64{f.cpu}})
		tab.Add(&Row{Key: PollKey(tr.Name, PollRSS, c), Samples: []float64{f.rss}})
	}
	if f.busyHostPoll > 0 {
		for _, scope := range []string{ScopePid, ScopeTree, ScopeCgroup} {
			c := PollCase{Threads: 100, Host: goalHostThreads, Scope: scope}
			tab.Add(&Row{Key: PollKey(tr.Name, PollTime, c), Samples: []float64{f.busyHostPoll}})
		}
	}
	if f.manyProcsPoll > 0 {
		c := PollCase{Threads: goalCgroupThreads, Procs: goalCgroupProcs, Scope: ScopeCgroup}
		tab.Add(&Row{Key: PollKey(tr.Name, PollTime, c), Samples: []float64{f.manyProcsPoll}})
	}
	goal := tab.Add(&Row{Key: LatencyKey(tr.Name, LatencyGoal, 99), Case: "budget + poll + heartbeat", Samples: []float64{f.boundMs}, Setting: true})
	tab.Add(&Row{Key: LatencyKey(tr.Name, LatencyLastAlive, 99), Samples: []float64{f.lastAliveP99 - 100, f.lastAliveP99}, Pct: 99, Base: goal})
	if f.soakRate > 0 {
		tab.Add(&Row{Key: SoakKey(tr.Name, SoakRate), Samples: []float64{f.soakRate}})
		tab.Add(&Row{Key: SoakKey(tr.Name, SoakFound), Samples: []float64{f.soakFoundMs}})
	}
	return tab
}

func TestJudge(t *testing.T) {
	tracepoint := Tracker{Name: "tracepoint", JudgedAgainst: KeyFloor}
	sampled := Tracker{Name: "sampled", JudgedAgainst: KeyNoTracker}
	for _, c := range []struct {
		name string
		f    goalFigures
		in   GoalInput
		n    int // goals
		want []string
	}{{
		name: "met",
		f: goalFigures{floor: []float64{200, 210, 190}, self: []float64{220, 230, 205}, other: []float64{199, 215, 195},
			poll: 4.9, cpu: 1.9, rss: 39, busyHostPoll: 1.9, manyProcsPoll: 12.2, lastAliveP99: 1600, boundMs: 1600, soakRate: 1.2e6, soakFoundMs: 5100},
		in: GoalInput{Trackers: []Tracker{tracepoint}, PollSeconds: 60, Soak: "the soak"},
		n:  11,
		want: []string{
			"on the watched process: +20 ns/call over the empty-program floor (goal: within 20 ns): met",
			"every other process: -1 ns/call against the floor, slower in 2 of 3 interleaved rounds (goal: indistinguishable): met, not told apart (the baseline's own rounds spread over 20.0 ns)",
			"10,000 threads (10 busy), made after attach: poll 4.90 ms (goal < 5): met; agent 1.90% of a core (goal < 2): met; RSS 39.0 MB (goal < 40): met",
			"made before attach: poll 4.90 ms",
			"+50,000 idle threads on the host, watched with --cgroup: poll 1.90 ms (goal < 2): met",
			"+50,000 idle threads on the host, watched with --tree: poll 1.90 ms (goal < 2): met",
			"20,000 threads (20 busy) in 200 processes, made after attach, watched with --cgroup: 0.610 us a thread a poll, against 0.490 us in one process of 10,000 threads (goal: within 1.25x): met",
			"No false stall: met in this run: no stall event in 60 s",
			"stallmon (tracepoint), soak (the soak): 1200000 syscalls/s, hang to stall 5100 ms: met: no false stall, and the hang found",
			"p99 1600 ms over 2 trials (goal: at most budget + poll + heartbeat, 1.6s): met",
		},
	}, {
		name: "missed",
		f: goalFigures{floor: []float64{200, 210, 190}, self: []float64{300, 290, 260}, other: []float64{201, 211, 191},
			poll: 124, cpu: 69.3, rss: 49.1, busyHostPoll: 72, manyProcsPoll: 12.5, lastAliveP99: 1700, boundMs: 1600, soakRate: 600000, soakFoundMs: 5100},
		in: GoalInput{Trackers: []Tracker{tracepoint}, FalseStalls: 2, PollSeconds: 60, SoakStalls: 1, Soak: "the soak"},
		n:  11,
		want: []string{
			"+90 ns/call over the empty-program floor (goal: within 20 ns): missed by 70.0 ns",
			"slower in 3 of 3 interleaved rounds (goal: indistinguishable): missed: slower in every round, by 1.00 ns/call",
			"poll 124 ms (goal < 5): missed, 24.8x the goal; agent 69.3% of a core (goal < 2): missed, 34.6x the goal; RSS 49.1 MB (goal < 40): missed, 1.2x the goal",
			"+50,000 idle threads on the host, watched with --cgroup: poll 72.0 ms (goal < 2): missed, 36.0x the goal",
			"0.625 us a thread a poll, against 12.4 us in one process of 10,000 threads (goal: within 1.25x): met",
			"No false stall: missed: 2 stall events",
			"missed: 1 false stalls (both trackers), but at fewer syscalls a second than the goal's 1,000,000",
			"p99 1700 ms over 2 trials (goal: at most budget + poll + heartbeat, 1.6s): missed by 100 ms",
		},
	}, {
		// A tracker with no per-syscall program is judged against no
		// tracker at all; one whose rows are absent says so.
		name: "other trackers",
		f: goalFigures{floor: []float64{200, 210, 190}, self: []float64{101, 99, 100}, other: []float64{100, 101, 100},
			poll: 1, cpu: 1, rss: 1, lastAliveP99: 1000, boundMs: 1600},
		in: GoalInput{Trackers: []Tracker{sampled, {Name: "absent", JudgedAgainst: KeyFloor}}},
		n:  21,
		want: []string{
			"stallmon (absent), soak (): not measured in this run",
			"stallmon (sampled) on the watched process: +0 ns/call against no tracker, slower in 1 of 3 interleaved rounds (goal: indistinguishable): met",
			"stallmon (absent) on the watched process: not measured in this run",
			"stallmon (absent), 10,000 threads (10 busy), made before attach: not measured in this run",
			"stallmon (absent), hang to the last ALIVE: not measured in this run",
			"stallmon (absent), 100 threads (1 busy), made after attach, +50,000 idle threads on the host, watched with --tree: not measured in this run",
		},
	}} {
		t.Run(c.name, func(t *testing.T) {
			goals := Judge(goalTable(c.in.Trackers[0], c.f), c.in)
			checkGoals(t, goals, c.n, c.want)
		})
	}
}

func checkGoals(t *testing.T, goals []string, n int, want []string) {
	t.Helper()
	if len(goals) != n {
		t.Errorf("%d goals, want %d", len(goals), n)
	}
	all := strings.Join(goals, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("no goal says %q; goals:\n%s", w, all)
		}
	}
}
