package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/workload"
)

// The work_waiting rule these tests turn on, and how often stallmon looks.
const (
	waitBudget    = time.Second
	waitKillAfter = 3 * time.Second
	waitPoll      = 100 * time.Millisecond
)

// waitingTable writes the built-in table with work_waiting turned on at
// waitBudget and waitKillAfter, with the rule's own keys keys ("" for
// none, or e.g. "by_socket: all"), and returns its path.
func waitingTable(t *testing.T, keys string) string {
	t.Helper()
	if keys != "" {
		keys = ", " + keys
	}
	rule := "  work_waiting: {budget: " + waitBudget.String() + ", kill_after: " + waitKillAfter.String() + keys + "}\n"
	table := strings.Replace(string(budget.DefaultYAML()), "\nstates:\n", "\nstates:\n"+rule, 1)
	if !strings.Contains(table, rule) {
		t.Fatal("the built-in table has no top-level states: section: update this test")
	}
	path := filepath.Join(t.TempDir(), "table.yaml")
	if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// attachWaiting attaches stallmon to pid with work_waiting on (by_socket
// left out: listeners), and waits for the first ALIVE.
func attachWaiting(t *testing.T, c *cluster, pid int, node string) *harness.Proc {
	t.Helper()
	return attachWaitingOn(t, c, pid, node, "")
}

// attachWaitingOn is attachWaiting with the rule's own keys (by_socket,
// only, skip), written as in a table.
func attachWaitingOn(t *testing.T, c *cluster, pid int, node, keys string) *harness.Proc {
	t.Helper()
	return attachWaitingTo(t, c, node, keys, "--pid", itoa(pid))
}

// attachWaitingTo is attachWaitingOn with target flags of its own
// (--cgroup DIR).
func attachWaitingTo(t *testing.T, c *cluster, node, keys string, target ...string) *harness.Proc {
	t.Helper()
	agent := startStallmon(t, append([]string{"attach", "--log-format", "json",
		"--node-id", node, "--config", waitingTable(t, keys), "--poll-interval", waitPoll.String(),
		"--interval", "200ms", "--kill-grace", "3s", "--metrics-addr", ""}, append(target, c.GroupFlags()...)...)...)
	agent.Events.Next("attached", 10*time.Second)
	c.WaitPacket("ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })
	return agent
}

// dialQueued opens n connections to addr in ns that wait in its accept
// queue (the kernel completes the handshake), kept open until the test
// ends.
func dialQueued(t *testing.T, ns serviceNS, addr string, n int) {
	t.Helper()
	for range n {
		conn := ns.dial(t, addr)
		t.Cleanup(func() { conn.Close() })
	}
}

// stalledOnQueue checks the stall event of a work_waiting stall on addr
// and that it came within the budget and a few polls of first, the
// first connection nobody accepted; then that the heartbeat stopped and
// stallmon killed the target at kill_after (the caller checks it died of
// SIGKILL). It logs the scenario's figures.
func stalledOnQueue(t *testing.T, c *cluster, agent *harness.Proc, pid int, addr string, first time.Time, threadsHave string) {
	t.Helper()
	stalledOn(t, c, agent, pid, addr, "listening", first, threadsHave)
}

// stalledOn is stalledOnQueue for a listening or a connected socket
// (socket), from first, the first connection nobody accepted or the
// first byte nobody read.
func stalledOn(t *testing.T, c *cluster, agent *harness.Proc, pid int, addr, socket string, first time.Time, threadsHave string) {
	t.Helper()
	stall := agent.Events.Next("stall", 15*time.Second)
	wantFields(t, "stall", stall, map[string]any{"reason": "work_waiting", "kind": "tcp", "socket": socket, "local_addr": addr, "pid": pid})
	if q, _ := stall["queued"].(float64); q < 1 {
		t.Errorf("stall: queued = %v, want connections waiting", stall["queued"])
	}
	if l, _ := stall["queue_limit"].(float64); l < 1 {
		t.Errorf("stall: queue_limit = %v", stall["queue_limit"])
	}
	if w, _ := stall["waiting_seconds"].(float64); w < waitBudget.Seconds() {
		t.Errorf("stall: waiting_seconds = %v, want over the budget %v", stall["waiting_seconds"], waitBudget)
	}
	if th, _ := stall["threads"].(string); !strings.Contains(th, threadsHave) {
		t.Errorf("stall: threads = %q, want one in %s", th, threadsHave)
	}
	toStall := eventTime(t, stall).Sub(first)
	// Judged from the first poll that saw the queue: the budget and at
	// most a poll, plus the scheduling slack of a loaded 2-CPU machine.
	if toStall < waitBudget || toStall > waitBudget+waitPoll+1500*time.Millisecond {
		t.Errorf("first %s work to stall: %v, want the budget %v + a poll", socket, toStall, waitBudget)
	}
	stalled := c.WaitPacket("STALLED", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled })
	lastAlive := c.LastAliveBefore(stalled)
	if code := agent.Wait(t, 15*time.Second); code != exitKilled {
		t.Fatalf("stallmon attach exited %d, want %d (killed)", code, exitKilled)
	}
	kill := agent.Events.Next("kill", time.Second)
	wantFields(t, "kill", kill, map[string]any{"reason": "work_waiting"})
	toKill := eventTime(t, kill).Sub(first)
	if toKill < waitKillAfter {
		t.Errorf("killed %v after the first %s work, before kill_after %v", toKill, socket, waitKillAfter)
	}
	t.Logf("first %s work to stall event %v, to last ALIVE %v, to kill %v (queued %v; threads %v)", socket,
		toStall.Round(time.Millisecond), lastAlive.Sub(first).Round(time.Millisecond), toKill.Round(time.Millisecond),
		stall["queued"], stall["threads"])
}

// An event loop whose listener fell out of its epoll set (the signature
// of a lost wakeup) sleeps in epoll_wait, in S, as an idle one does:
// only the accept queue shows the clients it leaves waiting.
func TestWorkWaitingLostWakeup(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	ns := newServiceNS(t)
	w := ns.startWorkload(t)
	addr := startServer(t, w, "epoll-server")
	agent := attachWaiting(t, c, w.PID, "lostwakeup")
	// Served while its loop hears the listener.
	dialQueued(t, ns, addr, 3)
	waitCount(t, w, "epoll_accepted", 3)
	if _, err := w.Do("epoll-lose"); err != nil {
		t.Fatal(err)
	}
	first := time.Now()
	dialQueued(t, ns, addr, 3)
	stalledOnQueue(t, c, agent, w.PID, addr, first, ":epoll_pwait") // x/sys/unix waits with epoll_pwait
	killedWorkload(t, w)
}

// A thread pool whose workers all wait for a lock nobody will give back:
// every thread sleeps in futex, and clients queue.
func TestWorkWaitingPoolDeadlock(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	ns := newServiceNS(t)
	w := ns.startWorkload(t)
	const workers = 4
	addr := startServer(t, w, "pool-server "+itoa(workers))
	agent := attachWaiting(t, c, w.PID, "pooldeadlock")
	dialQueued(t, ns, addr, 2)
	waitCount(t, w, "pool_served", 2)
	if _, err := w.Do("pool-deadlock"); err != nil {
		t.Fatal(err)
	}
	// Each worker takes one more connection, then blocks on the lock.
	dialQueued(t, ns, addr, workers)
	first := time.Now()
	dialQueued(t, ns, addr, 3)
	stalledOnQueue(t, c, agent, w.PID, addr, first, ":futex")
	killedWorkload(t, w)
}

// startServer has the workload run a server command and returns the
// loopback address it listens on.
func startServer(t *testing.T, w *workload.Proc, cmd string) string {
	t.Helper()
	r, err := w.Do(cmd)
	if err != nil {
		t.Fatal(err)
	}
	port, err := r.Int("port")
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + itoa(port)
}

func killedWorkload(t *testing.T, w *workload.Proc) {
	t.Helper()
	if err := w.Wait(); err == nil {
		t.Fatal("the workload survived")
	}
	if ws := w.Cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("workload status %v, want SIGKILL", ws)
	}
}

// An idle listener (empty queue) and one that a stream of clients keeps
// busy, accepting them all, are never flagged.
func TestWorkWaitingIdleAndBusyListenerNotFlagged(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	ns := newServiceNS(t)
	w := ns.startWorkload(t)
	addr := startServer(t, w, "epoll-server")
	agent := attachWaiting(t, c, w.PID, "idlebusy")
	start := time.Now()
	// Idle past the budget by several polls.
	c.WaitPacket("heartbeats past the budget", 15*time.Second, func(p heartbeat.Packet) bool {
		return time.Unix(0, p.SendTime).Sub(start) >= 2*waitBudget || p.State != heartbeat.StateAlive
	})
	// Busy: connections keep arriving for three budgets, the loop takes
	// each one.
	busy := time.Now()
	n := 0
	for time.Since(busy) < 3*waitBudget {
		ns.dial(t, addr).Close()
		n++
	}
	waitCount(t, w, "epoll_accepted", n)
	c.WaitPacket("heartbeats after the clients", 10*time.Second, func(p heartbeat.Packet) bool {
		return time.Unix(0, p.SendTime).Sub(busy) >= 3*waitBudget+time.Second || p.State != heartbeat.StateAlive
	})
	noStall(t, c, agent)
	t.Logf("%d connections accepted in %v, none flagged", n, 3*waitBudget)
}

// noStall fails the test on any heartbeat other than ALIVE or any stall,
// kill or late return.
func noStall(t *testing.T, c *cluster, agent *harness.Proc) {
	t.Helper()
	for _, tp := range c.Seen() {
		if tp.P.State != heartbeat.StateAlive {
			t.Fatalf("non-ALIVE heartbeat from a serving target: %+v", tp.P)
		}
	}
	for _, ev := range agent.Events.Drain() {
		if ev["msg"] == "stall" || ev["msg"] == "kill" || ev["msg"] == "late_return" {
			t.Fatalf("false alarm on a serving target: %v", ev)
		}
	}
}

// waitCount waits until the workload's server counter reaches n.
func waitCount(t *testing.T, w *workload.Proc, key string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := w.Do("server-counts")
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Int(key)
		if err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d after 10s, want %d", key, got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
