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
	KeyRedisBare = "redis/none"
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

// RedisKey names a redis row of a tracker watching redis ("self") or
// another process ("other").
func RedisKey(tracker, scope string) string { return "redis/" + tracker + "/" + scope }

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
	Host    int  // idle threads in another process
	// Senders of the Threads are asleep in sendfile(2) to a client that
	// stopped reading instead of in futex: candidates the iterator lists
	// and takes the kernel stack of, and the agent judges healthy by
	// their wait site.
	Senders int
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
	if c.Senders > 0 {
		s = fmt.Sprintf("%s threads (%d busy, %s in sendfile to a client that stopped reading), made %s",
			thousands(c.Threads), c.Busy(), thousands(c.Senders), when)
	}
	if c.Host > 0 {
		s += fmt.Sprintf(", +%s idle threads on the host", thousands(c.Host))
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
	if c.Senders > 0 {
		k += fmt.Sprintf("/senders=%d", c.Senders)
	}
	return k
}

// SnapshotCase is one target of the snapshot-cost rows: Threads threads,
// Senders of them asleep in sendfile to a client that stopped reading
// (listed, their stacks taken), the rest idle in futex (quiet).
type SnapshotCase struct {
	Threads, Senders int
}

func (c SnapshotCase) String() string {
	if c.Senders == 0 {
		return fmt.Sprintf("%s threads idle in futex", thousands(c.Threads))
	}
	return fmt.Sprintf("%s threads, %s of them in sendfile to a client that stopped reading", thousands(c.Threads), thousands(c.Senders))
}

// SnapshotKey names a snapshot-cost row, with wait sites taken or not.
func SnapshotKey(c SnapshotCase, waitSites bool) string {
	return fmt.Sprintf("snapshot/%d/%d/%t", c.Threads, c.Senders, waitSites)
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
