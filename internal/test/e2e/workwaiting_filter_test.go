package e2e

import (
	"net"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// A listener the table skips (an admin port nobody serves, say) is not
// judged, however long its clients wait; the process's other listener
// still is. One process: an epoll loop that lost its listener's wakeup
// (skipped), and a thread pool (judged) whose workers then deadlock.
func TestWorkWaitingSkippedListenerNotJudged(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	ns := newServiceNS(t)
	w := ns.startWorkload(t)
	lost := startServer(t, w, "epoll-server")
	const workers = 2
	pool := startServer(t, w, "pool-server "+itoa(workers))
	_, lostPort, err := net.SplitHostPort(lost)
	if err != nil {
		t.Fatal(err)
	}
	agent := attachWaitingOn(t, c, w.PID, "skipped", "skip: ["+lostPort+"]")
	if _, err := w.Do("epoll-lose"); err != nil {
		t.Fatal(err)
	}
	dialQueued(t, ns, lost, 3)
	waiting := time.Now()
	heartbeatsFor(t, c, agent, waiting, 3*waitBudget)
	// The pool's listener is judged: deadlocked, its clients are flagged.
	dialQueued(t, ns, pool, 2)
	waitCount(t, w, "pool_served", 2)
	if _, err := w.Do("pool-deadlock"); err != nil {
		t.Fatal(err)
	}
	dialQueued(t, ns, pool, workers)
	first := time.Now()
	dialQueued(t, ns, pool, 3)
	stalledOnQueue(t, c, agent, w.PID, pool, first, ":futex")
	killedWorkload(t, w)
	t.Logf("the skipped listener %s held 3 connections unaccepted for %v, not flagged", lost, first.Sub(waiting).Round(time.Millisecond))
}
