package bench

import (
	"fmt"
	"strconv"
)

// Row keys: how the goals and the tests find a row, whatever its label.
const (
	KeyNoTracker = "getppid/none"
	KeyFloor     = "getppid/floor"
	KeyStrace    = "getppid/strace"
	KeyBpftrace  = "getppid/bpftrace"
)

// Scopes of a tracker in the getppid rows.
const (
	ScopeOther       = "other"        // another process
	ScopeOtherTree   = "other-tree"   // another process's tree (attach --tree)
	ScopeOtherCgroup = "other-cgroup" // another process's cgroup (attach --cgroup)
	ScopeSelf        = "self"         // the looping process
	ScopeSelfHist    = "self-hist"    // the looping process, latency histogram on
)

// GetppidKey names a getppid row of a tracker in a scope.
func GetppidKey(tracker, scope string) string { return "getppid/" + tracker + "/" + scope }

// scopeLabel says a getppid scope in a row's case.
func scopeLabel(scope string) string {
	switch scope {
	case ScopeOther:
		return "another process"
	case ScopeOtherTree:
		return "another process's tree (--tree)"
	case ScopeOtherCgroup:
		return "another process's cgroup (--cgroup)"
	case ScopeSelf:
		return "this process"
	case ScopeSelfHist:
		return "this process, --latency-histogram"
	}
	return scope
}

// FallbackKey names a row of the minimal part (the fallback set beside
// the full object, with baselines of its own) after the row of the other
// parts that it repeats: both can be in one table.
func FallbackKey(key string) string { return "fallback/" + key }

// MinimalGetppidKey names the minimal part's getppid row of a tracker
// with the minimal BPF object, in a scope.
func MinimalGetppidKey(tracker, scope string) string {
	return FallbackKey(GetppidKey(tracker+"/minimal", scope))
}

// Service-row measures.
const (
	ServiceCPU  = "cpu"  // the server's CPU time per request
	ServiceRate = "rate" // requests a second, the parties pinned
)

// Scopes of a tracker in the service rows: attached to the server's
// cgroup, or to another service's.
const (
	ServiceSelf  = "self"
	ServiceOther = "other"
)

// ServiceKey names a service row: a tracker in a scope, or, with tracker
// "", the baseline without one.
func ServiceKey(service, measure, tracker, scope string) string {
	if tracker == "" {
		return "service/" + service + "/" + measure + "/none"
	}
	return "service/" + service + "/" + measure + "/" + tracker + "/" + scope
}

// ServiceSpreadKey names the row that states the spread of a service
// baseline's rounds.
func ServiceSpreadKey(service, measure string) string {
	return "service/" + service + "/" + measure + "/spread"
}

// Poll-cost measures.
const (
	PollTime = "poll"
	PollCPU  = "cpu"
	PollRSS  = "rss"
)

// PollCase is one target of the poll-cost rows.
type PollCase struct {
	Threads int  // idle threads of the target (plus its busy ones)
	Before  bool // made before stallmon attached
	Host    int  // idle threads in other processes (hostPerProcess each)
	// Scope is how the agent watches the target: ScopePid (--pid, the
	// zero value), ScopeTree (--pid --tree) or ScopeCgroup (--cgroup,
	// the target alone in a cgroup of its own).
	Scope string
	// Procs is how many processes share the target's threads (0: one);
	// more than one only for ScopeCgroup.
	Procs int
	// Bounded: the idle threads wait in openat(2) of a FIFO nobody
	// writes, which the table bounds, rather than in futex(2), which it
	// does not: the iterator writes a record for each of them at every
	// pass instead of leaving it out as quiet (what a per-record cost,
	// such as a kernel stack, shows in). The agent runs with
	// BoundedBudget so that none of them is over budget.
	Bounded bool
	// Minimal: the agent loads the minimal BPF object
	// (--bpf-features=minimal), the fallback set of old kernels.
	Minimal bool
}

// Processes is how many processes the target's threads are shared by.
func (c PollCase) Processes() int { return max(1, c.Procs) }

// The default rule of a Bounded case: longer than any run, so that its
// waits are judged at every poll and never stall.
const (
	BoundedBudget    = "1h"
	boundedKillAfter = "2h"
)

// Scopes of a poll-cost case.
const (
	ScopePid    = ""
	ScopeTree   = "tree"
	ScopeCgroup = "cgroup"
)

// AgentArgs are the flags a case adds to `stallmon attach`.
func (c PollCase) AgentArgs() []string {
	var args []string
	if c.Bounded {
		args = append(args, "--budget", BoundedBudget, "--kill-after", boundedKillAfter)
	}
	if c.Minimal {
		args = append(args, "--bpf-features=minimal")
	}
	return args
}

// Busy is how many of the target's threads make syscalls: one in a
// thousand, at least one.
func (c PollCase) Busy() int { return max(1, c.Threads/1000) }

func (c PollCase) String() string {
	when := "after attach"
	if c.Before {
		when = "before attach"
	}
	s := fmt.Sprintf("%s threads (%d busy), made %s", thousands(c.Threads), c.Busy(), when)
	if c.Processes() > 1 {
		s = fmt.Sprintf("%s threads (%d busy) in %s processes, made %s", thousands(c.Threads), c.Busy(), thousands(c.Processes()), when)
	}
	if c.Bounded {
		s = fmt.Sprintf("%s threads (%d busy) asleep in openat of a FIFO (bounded: --budget %s), made %s",
			thousands(c.Threads), c.Busy(), BoundedBudget, when)
	}
	if c.Host > 0 {
		s += fmt.Sprintf(", +%s idle threads on the host", thousands(c.Host))
	}
	switch c.Scope {
	case ScopeTree:
		s += ", watched with --tree"
	case ScopeCgroup:
		s += ", watched with --cgroup"
	}
	if c.Minimal {
		s += ", minimal BPF object"
	}
	return s
}

// thousands writes n with comma separators: 10,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// PollKey names a poll-cost row.
func PollKey(tracker, measure string, c PollCase) string {
	k := fmt.Sprintf("poll/%s/%s/%d/%t/%d", tracker, measure, c.Threads, c.Before, c.Host)
	if c.Bounded {
		k += "/bounded"
	}
	if c.Scope != ScopePid {
		k += "/" + c.Scope
	}
	if c.Processes() > 1 {
		k += fmt.Sprintf("/procs%d", c.Processes())
	}
	if c.Minimal {
		k += "/minimal"
	}
	return k
}

// PollBaselineKey names a poll-cost row of the baseline build
// (BENCH_BASELINE), measured beside PollKey's.
func PollBaselineKey(tracker, measure string, c PollCase) string {
	return "baseline/" + PollKey(tracker, measure, c)
}

// Detection-latency measures.
const (
	LatencyStall     = "stall"      // hang to the stall event
	LatencyLastAlive = "last-alive" // hang to the last ALIVE a receiver saw
	LatencyGoal      = "goal"       // the bound the goal sets
)

// LatencyKey names a detection-latency row; pct is 50 or 99.
func LatencyKey(tracker, measure string, pct int) string {
	return fmt.Sprintf("latency/%s/%s/p%d", tracker, measure, pct)
}

// Soak measures.
const (
	SoakRate  = "rate"  // the target's syscalls a second during the soak
	SoakFound = "found" // the one real hang to its stall event
)

// SoakKey names a soak row.
func SoakKey(tracker, measure string) string { return "soak/" + tracker + "/" + measure }

// SnapshotCase is one target of the snapshot-cost rows: Threads threads,
// idle in futex (quiet: only counted) or, Bounded, asleep in openat of a
// FIFO (listed at every pass, their kernel stacks taken).
type SnapshotCase struct {
	Threads int
	Bounded bool
}

func (c SnapshotCase) String() string {
	if c.Bounded {
		return fmt.Sprintf("%s threads asleep in openat of a FIFO", thousands(c.Threads))
	}
	return fmt.Sprintf("%s threads idle in futex", thousands(c.Threads))
}

// ListenerScanKey names the row of one work_waiting listener scan of a
// process holding n listening sockets.
func ListenerScanKey(n int) string { return fmt.Sprintf("listeners/%d", n) }

// ConnectedScanKey names the row of one work_waiting scan under
// by_socket: all of a process holding n connected sockets.
func ConnectedScanKey(n int) string { return fmt.Sprintf("connected/%d", n) }

// SnapshotKey names a snapshot-cost row, with wait sites taken or not.
func SnapshotKey(c SnapshotCase, waitSites bool) string {
	return fmt.Sprintf("snapshot/%d/%t/%t", c.Threads, c.Bounded, waitSites)
}
