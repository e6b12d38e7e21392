package agent

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/testutil/workloadtest"
	"github.com/stallmon/stallmon/internal/tracker"
)

// recorder is a heartbeat Sender that keeps what was sent.
type recorder struct {
	mu   sync.Mutex
	sent []heartbeat.Packet
	got  chan heartbeat.Packet
}

func (r *recorder) Send(b []byte) error {
	p, err := heartbeat.Unmarshal(b, heartbeat.KeyRing{})
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.sent = append(r.sent, p)
	r.mu.Unlock()
	select {
	case r.got <- p:
	default:
	}
	return nil
}

func (r *recorder) packets() []heartbeat.Packet {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]heartbeat.Packet(nil), r.sent...)
}

// beating is an agent with a heartbeat on a workload of its own, polling
// and beating every beatPoll.
type beating struct {
	a    *Agent
	mon  *tracker.Tracker
	rec  *recorder
	done <-chan struct{} // closed when Run returns
	stop func()          // cancels Run and waits for it; safe to call again
}

const beatPoll = 50 * time.Millisecond

// startBeating starts a beating agent, stopped at the end of the test, and
// returns once its first heartbeat, which must be ALIVE, went out.
func startBeating(t *testing.T, log *slog.Logger) beating {
	t.Helper()
	privtest.Require(t)
	w := workloadtest.Start(t)
	mon, err := tracker.Attach(tracker.Process(w.PID), nil, tracker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	table, err := budget.Parse([]byte("default: {budget: 1s, kill_after: 5s}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{got: make(chan heartbeat.Packet, 1)}
	a, err := New(mon, Config{PollInterval: beatPoll, Table: table, Kill: true, KillGrace: time.Second,
		Heartbeat: &HeartbeatConfig{Sender: rec, Interval: beatPoll, NodeID: "n"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	b := beating{a: a, mon: mon, rec: rec, done: done, stop: sync.OnceFunc(func() { cancel(); <-done })}
	t.Cleanup(b.stop)
	if p := <-rec.got; p.State != heartbeat.StateAlive {
		t.Fatalf("first heartbeat %v, want ALIVE", p.State)
	}
	return b
}

// aliveUntil fails t if an ALIVE went out after the tracker broke at
// broken: no poll after that vouched for the target, so the last ALIVE
// left within the freshness of the poll before (two poll intervals) and
// one heartbeat interval for the send itself. It returns the last
// ALIVE's send time.
func (b beating) aliveUntil(t *testing.T, broken time.Time) time.Time {
	t.Helper()
	limit := broken.Add(3 * beatPoll)
	var last time.Time
	for _, p := range b.rec.packets() {
		if p.State == heartbeat.StateAlive {
			last = time.Unix(0, p.SendTime)
		}
	}
	if last.After(limit) {
		t.Fatalf("ALIVE sent %v after the tracker broke, want none after %v", last.Sub(broken), limit.Sub(broken))
	}
	return last
}

// running fails t if the agent's Run returned.
func (b beating) running(t *testing.T) {
	t.Helper()
	select {
	case <-b.done:
		t.Fatal("agent stopped instead of staying up, blind")
	default:
	}
}

// When the agent can no longer read the tracker (here: its BPF objects
// are closed under it, so every snapshot fails), heartbeats stop within
// two poll intervals plus one heartbeat interval: it fails closed.
func TestSnapshotFailureStopsHeartbeat(t *testing.T) {
	b := startBeating(t, nil)
	broken := time.Now()
	if err := b.mon.Close(); err != nil {
		t.Fatal(err)
	}
	// Wait past the point where the gate must have closed, then check
	// that nothing ALIVE went out after it.
	for time.Now().Before(broken.Add(8 * beatPoll)) {
		select {
		case <-b.rec.got:
		case <-time.After(beatPoll):
		}
	}
	b.aliveUntil(t, broken)
	b.running(t)
	// Stopped while it cannot see, it ends in silence, not LEAVING.
	b.stop()
	for _, p := range b.rec.packets() {
		if p.State == heartbeat.StateLeaving {
			t.Errorf("LEAVING from an agent whose snapshots fail: %+v", p)
		}
	}
}

// A snapshot with no thread of a target that has not exited vouches for
// nothing: here a cgroup watched before its service is started (and it
// never is). The agent stays blind and sends no ALIVE.
func TestEmptySnapshotIsBlind(t *testing.T) {
	privtest.Require(t)
	dir := cgrouptest.New(t)
	mon, err := tracker.Attach(tracker.EmptyCgroup(dir.Path), nil, tracker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	table, err := budget.Parse([]byte("default: {budget: 1s, kill_after: 5s}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{got: make(chan heartbeat.Packet, 64)}
	a, err := New(mon, Config{PollInterval: 20 * time.Millisecond, Table: table,
		Heartbeat: &HeartbeatConfig{Sender: rec, Interval: 20 * time.Millisecond, NodeID: "n"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	// Twenty polls' worth of an empty cgroup.
	deadline := time.Now().Add(10 * time.Second)
	for a.Stats().PollFailures < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d failed polls in 10s", a.Stats().PollFailures)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	for _, p := range rec.packets() {
		if p.State == heartbeat.StateAlive {
			t.Fatal("ALIVE sent for a target the snapshots did not show")
		}
	}
	if h := a.Health(); h.Ready {
		t.Fatal("ready with no thread seen")
	}
}
