package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// fakeNode sends signed heartbeats on the cluster's group as one node id,
// from the test: the listener cannot tell it from an agent.
type fakeNode struct {
	t   *testing.T
	s   *heartbeat.Sender
	key *heartbeat.Key
	id  string
	inc uint64
	seq uint64
}

func newFakeNode(t *testing.T, c *cluster, id string) *fakeNode {
	t.Helper()
	key, err := heartbeat.LoadKeyFile(c.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := heartbeat.NewSender(heartbeat.SenderConfig{Group: c.Group, Interface: "lo", TTL: 0, Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &fakeNode{t: t, s: s, key: key, id: id, inc: uint64(time.Now().UnixNano())}
}

// alive sends the node's next ALIVE and returns its bytes, for a replay.
func (n *fakeNode) alive() []byte {
	n.t.Helper()
	n.seq++
	p := heartbeat.Packet{State: heartbeat.StateAlive, NodeID: n.id, Incarnation: n.inc, Seq: n.seq, SendTime: time.Now().UnixNano()}
	b, err := p.Marshal(n.key)
	if err != nil {
		n.t.Fatal(err)
	}
	n.send(b)
	return b
}

func (n *fakeNode) send(b []byte) {
	n.t.Helper()
	if err := n.s.Send(b); err != nil {
		n.t.Fatal(err)
	}
}

// startListen runs stallmon listen on the cluster, its log (JSON) and its
// transitions on one event stream, with a hook that appends its
// environment to hookFile.
func startListen(t *testing.T, c *cluster, hookFile string, args ...string) *harness.Proc {
	t.Helper()
	args = append([]string{"listen", "--json", "--log-format", "json", "--metrics-addr", "",
		"--on-failover", `echo "$STALLMON_NODE $STALLMON_REASON $STALLMON_PREVIOUS $STALLMON_INCARNATION" >> ` + hookFile},
		append(c.GroupFlags(), args...)...)
	return harness.StartLogging(t, stallmonBin, args...)
}

func transition(node, state string) func(map[string]any) bool {
	return func(ev map[string]any) bool { return ev["msg"] == nil && ev["node"] == node && ev["state"] == state }
}

// hookLines waits for n runs of the hook and returns them all.
func hookLines(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(b) > 0 && len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("hook ran %q, want %d runs within 10s", b, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// listen --expect fails over a node it never heard, a timeout after its
// start, and only that one: a node heard alive stays alive.
func TestListenExpect(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	hookFile := filepath.Join(t.TempDir(), "hook")
	y := newFakeNode(t, c, "node-y")
	start := time.Now()
	l := startListen(t, c, hookFile, "--timeout", "1s", "--expect", "node-x", "--expect", "node-y")
	l.Events.Next("listening", 10*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// node-y's agent, every 100 ms: pacing a sender, not waiting.
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				y.alive()
			}
		}
	}()
	dead := l.Events.NextWhere("node-x dead", 10*time.Second, transition("node-x", "dead"))
	took := harness.EventTime(t, dead).Sub(start)
	if dead["failover"] != true || dead["previous"] != "unknown" || dead["reason"] != "dead" {
		t.Fatalf("node-x: %v, want unknown -> dead with a failover", dead)
	}
	if took < time.Second || took > 3*time.Second {
		t.Errorf("node-x failed over %v after the listener started, want its 1s timeout (and a tick)", took)
	}
	if got := hookLines(t, hookFile, 1); len(got) != 1 || got[0] != "node-x dead unknown 0" {
		t.Fatalf("hook runs %q, want one for node-x: dead, previous unknown, incarnation 0", got)
	}
	t.Logf("listener start to node-x's failover: %v (timeout 1s)", took.Round(time.Millisecond))
	for _, ev := range l.Events.Drain() {
		if ev["msg"] == nil && ev["node"] == "node-y" && ev["state"] != "alive" {
			t.Errorf("node-y, heard every 100ms: %v", ev)
		}
	}
}

// A node named by --expect and failed over unheard (its process running
// all along behind a cut link, say) is heard at last: that incarnation,
// begun before the failover, is the one failed over, so its ALIVE is
// dropped and its silence runs no second hook; a restart after the
// takeover comes up, and fails over, as any other.
func TestListenExpectHeardAfterBlindFailover(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	hookFile := filepath.Join(t.TempDir(), "hook")
	old := newFakeNode(t, c, "node-z") // its incarnation begins now
	l := startListen(t, c, hookFile, "--timeout", "1s", "--expect", "node-z")
	l.Events.Next("listening", 10*time.Second)
	l.Events.NextWhere("node-z dead", 10*time.Second, transition("node-z", "dead"))
	old.alive()
	if ev := l.Events.Next("packet_dropped", 10*time.Second); ev["reason"] != "after_failover" {
		t.Fatalf("ALIVE of the incarnation failed over unheard: %v, want dropped as after_failover", ev)
	}
	restarted := newFakeNode(t, c, "node-z")
	restarted.alive()
	l.Events.NextWhere("node-z alive", 10*time.Second, transition("node-z", "alive"))
	l.Events.NextWhere("node-z dead again", 10*time.Second, transition("node-z", "dead"))
	got := hookLines(t, hookFile, 2)
	want := []string{"node-z dead unknown 0", fmt.Sprintf("node-z dead alive %d", restarted.inc)}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("hook runs %q, want %q: the blind failover, then the restart's", got, want)
	}
}

// A listener killed (SIGKILL: no clean exit) and restarted on its
// --state-file keeps the node it knew: a replay of a packet the first run
// accepted is refused, and the node, silent since before the restart, is
// failed over a timeout after it, once.
func TestListenStateFileAfterCrash(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	dir := t.TempDir()
	hookFile, stateFile := filepath.Join(dir, "hook"), filepath.Join(dir, "listen.state")
	n := newFakeNode(t, c, "node-n")
	l := startListen(t, c, hookFile, "--timeout", "2s", "--state-file", stateFile)
	l.Events.Next("listening", 10*time.Second)
	n.alive()
	l.Events.NextWhere("node-n alive", 10*time.Second, transition("node-n", "alive"))
	recorded := n.alive()
	n.alive()
	// The state file holds every accepted packet by the next checkpoint
	// (a quarter of the timeout).
	deadline := time.Now().Add(10 * time.Second)
	for savedSeq(t, stateFile, "node-n") != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("state file never held seq 3")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := l.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	l.Wait(t, 10*time.Second)

	restart := time.Now()
	l = startListen(t, c, hookFile, "--timeout", "2s", "--state-file", stateFile)
	if loaded := l.Events.Next("listener_state_loaded", 10*time.Second); loaded["nodes"] != 1.0 {
		t.Fatalf("restarted listener: %v, want 1 node restored", loaded)
	}
	n.send(recorded) // sent under a second ago: inside the window
	if ev := l.Events.Next("packet_dropped", 10*time.Second); ev["reason"] != "replay" {
		t.Fatalf("replayed packet: %v, want dropped as a replay", ev)
	}
	dead := l.Events.NextWhere("node-n dead", 10*time.Second, transition("node-n", "dead"))
	if dead["failover"] != true || dead["previous"] != "alive" {
		t.Fatalf("node-n after the restart: %v, want alive -> dead with a failover", dead)
	}
	took := harness.EventTime(t, dead).Sub(restart)
	if got := hookLines(t, hookFile, 1); len(got) != 1 || !strings.HasPrefix(got[0], "node-n dead alive ") {
		t.Fatalf("hook runs %q, want one for node-n", got)
	}
	t.Logf("restart to node-n's failover: %v (timeout 2s)", took.Round(time.Millisecond))
}

// savedSeq reads node's sequence from the state file (0 if absent).
func savedSeq(t *testing.T, path, node string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Nodes []struct {
			Node string `json:"node"`
			Seq  uint64 `json:"seq"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("state file %s (replaced atomically, so never half-written): %v: %q", path, err, b)
	}
	for _, r := range doc.Nodes {
		if r.Node == node {
			return r.Seq
		}
	}
	return 0
}

// A corrupt state file, or one another listener holds, stops listen with
// a usage error that says what to do; nothing is listened to.
func TestListenStateFileRefused(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.state")
	if err := os.WriteFile(corrupt, []byte(`{"format":"stallmon-listener-state","version":1,"nodes":[{"node":`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, stderr := runStallmonContext(t, ctx, append([]string{"listen", "--metrics-addr", "", "--state-file", corrupt}, c.GroupFlags()...)...)
	if code != exitUsage || !strings.Contains(stderr, "is corrupt") || !strings.Contains(stderr, "move it aside") {
		t.Fatalf("corrupt state file: exit %d, %q; want a usage error saying it is corrupt and what to do", code, stderr)
	}

	held := filepath.Join(dir, "held.state")
	l := startListen(t, c, filepath.Join(dir, "hook"), "--state-file", held)
	l.Events.Next("listening", 10*time.Second)
	code, stderr = runStallmonContext(t, ctx, append([]string{"listen", "--metrics-addr", "", "--state-file", held}, c.GroupFlags()...)...)
	if code != exitUsage || !strings.Contains(stderr, "in use by another listener") {
		t.Fatalf("state file in use: exit %d, %q; want a usage error", code, stderr)
	}
}
