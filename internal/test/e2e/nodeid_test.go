package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/identity"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// The default node id names the host and the watched command, and a
// second agent on this host cannot speak for a node id another one holds:
// peers would take one's ALIVE for the other's service. It is refused
// before anything is attached.
func TestNodeIDDefaultAndUnique(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	w := startWorkload(t)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	comm, err := os.ReadFile("/proc/" + itoa(w.PID) + "/comm")
	if err != nil {
		t.Fatal(err)
	}
	service := strings.TrimSpace(string(comm))
	if cg, err := os.ReadFile("/proc/" + itoa(w.PID) + "/cgroup"); err == nil && identity.ServiceUnit(string(cg)) != "" {
		service = identity.ServiceUnit(string(cg))
	}
	want := identity.DefaultNodeID(host, service)

	first := startStallmon(t, append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json",
		"--interval", "100ms", "--metrics-addr", ""}, c.GroupFlags()...)...)
	ev := first.Events.Next("attached", 20*time.Second)
	if ev["node"] != want {
		t.Fatalf("attached as node %v, want %q", ev["node"], want)
	}
	c.WaitPacket("ALIVE from "+want, 10*time.Second, func(p heartbeat.Packet) bool {
		return p.NodeID == want && p.State == heartbeat.StateAlive
	})

	code, stderr := runStallmon(t, nil, append([]string{"attach", "--pid", itoa(w.PID), "--metrics-addr", ""}, c.GroupFlags()...)...)
	if code != exitUsage || !strings.Contains(stderr, "in use by another stallmon") || !strings.Contains(stderr, "--node-id") {
		t.Fatalf("second agent: exit %d, stderr %q; want %d naming the clash and --node-id", code, stderr, exitUsage)
	}
	if strings.Contains(stderr, "attached") {
		t.Errorf("the refused agent attached first: %s", stderr)
	}
}
