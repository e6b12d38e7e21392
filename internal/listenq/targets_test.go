package listenq

import (
	"os"
	"testing"
)

// The targets map holds 4096 tgids: putting the new pids before deleting
// the departed ones would fail at the first Put over the size. A scope that once needs more than 4096 entries
// (more than 4096 processes, or a churn of old+new pids above it between
// two scans) makes every later scan fail for good, even after the scope
// shrinks to a handful of processes: the departed pids are never deleted.
// A failed scan fails the poll, so the heartbeat stays stopped for ever:
// a false failover of a healthy service.
func TestTargetsMapChurn(t *testing.T) {
	s := openScanner(t)
	// Pids no process has (above pid_max's default): the walks find
	// nothing, only the map is exercised.
	pids := func(from, n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = from + i
		}
		return out
	}
	if _, err := s.Scan(pids(10_000_000, 3000), false); err != nil {
		t.Fatalf("3000 processes: %v", err)
	}
	// Between two scans 1,200 processes exited and 1,200 others started:
	// never more than 3,000 at once, 4,200 entries needed before deletes.
	if _, err := s.Scan(append(pids(10_000_000, 1800), pids(20_000_000, 1200)...), false); err != nil {
		t.Errorf("3000 processes after churn: %v (scan fails, poll fails, heartbeat stops)", err)
	}
	// The scope shrinks to our own process: still failing?
	if _, err := s.Scan([]int{os.Getpid()}, false); err != nil {
		t.Errorf("one process, after the churn: %v (fails for good: departed pids are never deleted)", err)
	}
}

// A --cgroup or --tree scope of more than 4096 processes (a pre-forking server: postgres backends, apache
// prefork, php-fpm) can never be scanned: every poll fails, the heartbeat
// never starts.
func TestTargetsOverMapSize(t *testing.T) {
	s := openScanner(t)
	pids := make([]int, 4100)
	for i := range pids {
		pids[i] = 10_000_000 + i
	}
	pids[0] = os.Getpid()
	if _, err := s.Scan(pids, false); err != nil {
		t.Errorf("4100 processes: %v", err)
	}
}
