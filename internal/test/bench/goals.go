package bench

import (
	"fmt"
	"slices"
	"time"
)

// Goal bounds of issue 12.
const (
	goalOverFloorNs = 20 // ns per syscall over the empty-program floor
	goalPollMs      = 5  // ms per poll at goalThreads
	goalCPUPct      = 2  // % of a core at goalThreads
	goalRSSMB       = 40 // MB (10^6 bytes) at goalThreads
	goalThreads     = 10000
	// A small service on a busy host: goalHostThreads idle threads
	// elsewhere, and a poll of each scope within goalScopePollMs.
	goalHostThreads = 50000
	goalScopePollMs = 2
	// A cgroup of goalCgroupProcs processes sharing goalCgroupThreads
	// threads costs each thread what one process of goalThreads does,
	// give or take goalPerThreadSlack.
	goalCgroupThreads  = 20000
	goalCgroupProcs    = 200
	goalPerThreadSlack = 1.25
	goalSoakRate       = 1_000_000 // syscalls a second, across goalThreads
)

// GoalInput is what the goals need beyond the table.
type GoalInput struct {
	Trackers []Tracker
	// FalseStalls counts the stall events of the poll-cost runs, whose
	// targets never hang; PollSeconds is how long those agents ran.
	FalseStalls int
	PollSeconds float64
	// SoakStalls counts the stall events of the soak before its hang;
	// Soak says what it ran.
	SoakStalls int
	Soak       string
}

// Judge states each goal of issue 12 as met, or missed and by how much,
// from the table's rows. A goal whose rows are not in the table says so.
func Judge(t *Table, in GoalInput) []string {
	var out []string
	for _, tr := range in.Trackers {
		out = append(out, judgeWatched(t, tr), judgeOthers(t, tr))
	}
	for _, tr := range in.Trackers {
		for _, before := range []bool{false, true} {
			out = append(out, judgePoll(t, tr, PollCase{Threads: goalThreads, Before: before}))
		}
	}
	for _, tr := range in.Trackers {
		for _, scope := range []string{ScopePid, ScopeTree, ScopeCgroup} {
			out = append(out, judgeBusyHost(t, tr, PollCase{Threads: 100, Host: goalHostThreads, Scope: scope}))
		}
	}
	for _, tr := range in.Trackers {
		out = append(out, judgeManyProcesses(t, tr))
	}
	stalls := "met in this run: no stall event"
	if in.FalseStalls > 0 {
		stalls = fmt.Sprintf("missed: %d stall events", in.FalseStalls)
	}
	out = append(out, fmt.Sprintf("No false stall: %s in %.0f s of agents watching targets that never hang (the poll-cost rows).",
		stalls, in.PollSeconds))
	for _, tr := range in.Trackers {
		out = append(out, judgeSoak(t, tr, in))
	}
	for _, tr := range in.Trackers {
		out = append(out, judgeLatency(t, tr))
	}
	return out
}

func judgeWatched(t *Table, tr Tracker) string {
	self, base := t.Row(GetppidKey(tr.Name, ScopeSelf)), t.Row(tr.JudgedAgainst)
	what := fmt.Sprintf("stallmon (%s) on the watched process", tr.Name)
	if !measured(self, base) {
		return what + ": not measured in this run"
	}
	if tr.JudgedAgainst == KeyFloor {
		d := self.Figure() - base.Figure()
		verdict := "met"
		if d > goalOverFloorNs {
			verdict = fmt.Sprintf("missed by %s ns", Format(d-goalOverFloorNs))
		}
		return fmt.Sprintf("%s: %+.0f ns/call over the empty-program floor (goal: within %d ns): %s", what, d, goalOverFloorNs, verdict)
	}
	return what + ": " + indistinguishable(self, base)
}

func judgeOthers(t *Table, tr Tracker) string {
	other, base := t.Row(GetppidKey(tr.Name, ScopeOther)), t.Row(tr.JudgedAgainst)
	what := fmt.Sprintf("stallmon (%s), every other process", tr.Name)
	if !measured(other, base) {
		return what + ": not measured in this run"
	}
	return what + ": " + indistinguishable(other, base)
}

// indistinguishable judges x against base by a sign test over their
// paired rounds: x is told apart only if it was slower in every round
// (with 7 rounds, chance alone does that once in 128 runs). The spread of
// base's rounds says how large a difference the run's noise can hide.
func indistinguishable(x, base *Row) string {
	slower, rounds := slowerRounds(x.Samples, base.Samples)
	d := x.Figure() - base.Figure()
	spread := slices.Max(base.Samples) - slices.Min(base.Samples)
	verdict := fmt.Sprintf("met, not told apart (the baseline's own rounds spread over %s ns)", Format(spread))
	if slower == rounds {
		verdict = fmt.Sprintf("missed: slower in every round, by %s ns/call in the medians", Format(d))
	}
	return fmt.Sprintf("%+.0f ns/call against %s, slower in %d of %d interleaved rounds (goal: indistinguishable): %s",
		d, base.Case, slower, rounds, verdict)
}

func judgePoll(t *Table, tr Tracker, c PollCase) string {
	what := fmt.Sprintf("stallmon (%s), %s", tr.Name, c)
	poll, cpu, rss := t.Row(PollKey(tr.Name, PollTime, c)), t.Row(PollKey(tr.Name, PollCPU, c)), t.Row(PollKey(tr.Name, PollRSS, c))
	if !measured(poll, cpu, rss) {
		return what + ": not measured in this run"
	}
	return fmt.Sprintf("%s: poll %s ms (goal < %d): %s; agent %s%% of a core (goal < %d): %s; RSS %s MB (goal < %d): %s",
		what, Format(poll.Figure()), goalPollMs, under(poll.Figure(), goalPollMs),
		Format(cpu.Figure()), goalCPUPct, under(cpu.Figure(), goalCPUPct),
		Format(rss.Figure()), goalRSSMB, under(rss.Figure(), goalRSSMB))
}

// judgeBusyHost judges a small service's poll while the host runs many
// threads elsewhere: a poll that walked the host would take tens of ms,
// and go late at the default interval.
func judgeBusyHost(t *Table, tr Tracker, c PollCase) string {
	what := fmt.Sprintf("stallmon (%s), %s", tr.Name, c)
	poll := t.Row(PollKey(tr.Name, PollTime, c))
	if !measured(poll) {
		return what + ": not measured in this run"
	}
	return fmt.Sprintf("%s: poll %s ms (goal < %d): %s", what, Format(poll.Figure()), goalScopePollMs, under(poll.Figure(), goalScopePollMs))
}

// judgeManyProcesses compares a poll's cost per thread of a cgroup of
// many processes with one process's: each process walked alone adds its
// own iterator's open, read and close to the threads' cost.
func judgeManyProcesses(t *Table, tr Tracker) string {
	many := PollCase{Threads: goalCgroupThreads, Procs: goalCgroupProcs, Scope: ScopeCgroup}
	one := PollCase{Threads: goalThreads}
	what := fmt.Sprintf("stallmon (%s), %s", tr.Name, many)
	m, o := t.Row(PollKey(tr.Name, PollTime, many)), t.Row(PollKey(tr.Name, PollTime, one))
	if !measured(m, o) {
		return what + ": not measured in this run"
	}
	perMany := m.Figure() * 1000 / float64(many.Threads)
	perOne := o.Figure() * 1000 / float64(one.Threads)
	verdict := "met"
	if perMany > perOne*goalPerThreadSlack {
		verdict = fmt.Sprintf("missed, %.2fx", perMany/perOne)
	}
	return fmt.Sprintf("%s: %s us a thread a poll, against %s us in one process of %s threads (goal: within %.2fx): %s",
		what, Format(perMany), Format(perOne), thousands(one.Threads), goalPerThreadSlack, verdict)
}

func judgeLatency(t *Table, tr Tracker) string {
	what := fmt.Sprintf("stallmon (%s), hang to the last ALIVE", tr.Name)
	p99, bound := t.Row(LatencyKey(tr.Name, LatencyLastAlive, 99)), t.Row(LatencyKey(tr.Name, LatencyGoal, 99))
	if !measured(p99, bound) {
		return what + ": not measured in this run"
	}
	verdict := "met"
	if d := p99.Figure() - bound.Figure(); d > 0 {
		verdict = fmt.Sprintf("missed by %s ms", Format(d))
	}
	return fmt.Sprintf("%s: p99 %s ms over %d trials (goal: at most %s, %s): %s", what, Format(p99.Figure()),
		len(p99.Samples), bound.Case, (time.Duration(bound.Figure()) * time.Millisecond).String(), verdict)
}

func judgeSoak(t *Table, tr Tracker, in GoalInput) string {
	what := fmt.Sprintf("stallmon (%s), soak (%s)", tr.Name, in.Soak)
	rate, found := t.Row(SoakKey(tr.Name, SoakRate)), t.Row(SoakKey(tr.Name, SoakFound))
	if !measured(rate, found) {
		return what + ": not measured in this run"
	}
	verdict := "met: no false stall, and the hang found"
	if in.SoakStalls > 0 {
		verdict = fmt.Sprintf("missed: %d false stalls (both trackers)", in.SoakStalls)
	}
	if rate.Figure() < goalSoakRate {
		verdict += fmt.Sprintf(", but at fewer syscalls a second than the goal's %s", thousands(goalSoakRate))
	}
	return fmt.Sprintf("%s: %s syscalls/s, hang to stall %s ms: %s", what, Format(rate.Figure()), Format(found.Figure()), verdict)
}

func under(v, goal float64) string {
	if v < goal {
		return "met"
	}
	return fmt.Sprintf("missed, %.1fx the goal", v/goal)
}

func measured(rows ...*Row) bool {
	for _, r := range rows {
		if r == nil || !r.Measured() {
			return false
		}
	}
	return true
}
