package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/privtest"
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
	want := host + "/" + strings.TrimSpace(string(comm))
	if cg, err := os.ReadFile("/proc/" + itoa(w.PID) + "/cgroup"); err == nil && serviceUnit(string(cg)) != "" {
		want = host + "/" + serviceUnit(string(cg))
	}
	want = shortNodeID(want)

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

func TestServiceUnit(t *testing.T) {
	for in, want := range map[string]string{
		"0::/system.slice/nginx.service\n":                          "nginx.service",
		"0::/system.slice/postgresql@15-main.service/extra\n":       "postgresql@15-main.service",
		"12:pids:/x\n0::/user.slice/user-0.slice/session-3.scope\n": "",
		"0::/\n": "",
		"1:name=systemd:/system.slice/a.service\n": "",
	} {
		if got := serviceUnit(in); got != want {
			t.Errorf("serviceUnit(%q) = %q, want %q", in, got, want)
		}
	}
}

// A default node id too long for the wire keeps its head and a hash of
// the whole, so that two long ids differing at the end stay apart.
func TestShortNodeID(t *testing.T) {
	short := "host/nginx.service"
	if got := shortNodeID(short); got != short {
		t.Errorf("shortNodeID(%q) = %q", short, got)
	}
	a := shortNodeID("ip-10-20-30-40.eu-west-1.compute.internal/system.slice/postgresql@15-main.service")
	b := shortNodeID("ip-10-20-30-40.eu-west-1.compute.internal/system.slice/postgresql@16-main.service")
	for _, id := range []string{a, b} {
		if err := heartbeat.CheckNodeID(id); err != nil || !strings.HasPrefix(id, "ip-10-20-30-40.eu-west-1") {
			t.Errorf("shortened id %q: %v", id, err)
		}
	}
	if a == b {
		t.Errorf("two long ids shortened to the same %q", a)
	}
}
