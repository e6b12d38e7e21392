package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/nettest"
	"github.com/stallmon/stallmon/internal/testutil/nginxtest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// loadWindow is how long the load tests run: eight budgets. The rule
// flags one wait longer than the budget, so each budget of a window is a
// chance of its own to flag: eight at a 1 s budget are more than the two
// that 20 s give the recommended 10 s budget.
const loadWindow = 8 * waitBudget

var abCount = regexp.MustCompile(`(?m)^(Complete|Failed) requests:\s+(\d+)`)

// Debian's nginx (a master, two workers, all in a cgroup, in a network
// namespace) under ab -k's steady load on loopback, judged with
// by_socket: all: its listener (each keep-alive connection is renewed
// after 1,000 requests) and its connections, each with a request waiting
// most of the time, are taken from and read all along: never flagged. It
// holds for the default (listeners) too, which judges a part of this.
func TestWorkWaitingNginxUnderLoadNotFlagged(t *testing.T) {
	nginxtest.Require(t)
	if _, err := exec.LookPath("ab"); err != nil {
		privtest.Unavailable(t, "needs ab (apt-get install apache2-utils): "+err.Error())
	}
	ns := newServiceNS(t)
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "page.txt"), []byte(strings.Repeat("stallmon\n", 512)), 0o644); err != nil {
		t.Fatal(err)
	}
	cg := cgrouptest.New(t)
	srv := nginxtest.StartWith(t, root, cg.Path, nginxtest.Options{Listen: "127.0.0.1:8080",
		Launch: func(cmd *exec.Cmd) error { return nettest.InNetns(string(ns), cmd.Start) }})
	ns.holds(t, srv.Cmd.Process.Pid)
	c := newCluster(t)
	agent := attachWaitingTo(t, c, "nginxload", "by_socket: all", "--cgroup", cg.Path)
	ctx, cancel := context.WithTimeout(context.Background(), loadWindow+30*time.Second)
	defer cancel()
	start := time.Now()
	out, err := ns.output(ctx, "ab", "-k", "-c", "20", "-t", strconv.Itoa(int(loadWindow/time.Second)), "-n", "100000000",
		"http://127.0.0.1:8080/page.txt")
	if err != nil {
		t.Fatalf("ab: %v: %s", err, out)
	}
	if took := time.Since(start); took < loadWindow {
		t.Fatalf("ab ended after %v, want the whole %v window: %s", took, loadWindow, out)
	}
	counts := map[string]int{}
	for _, m := range abCount.FindAllStringSubmatch(string(out), -1) {
		counts[m[1]], _ = strconv.Atoi(m[2])
	}
	if counts["Complete"] < 1000 || counts["Failed"] != 0 {
		t.Fatalf("ab: %d complete, %d failed requests, want a steady load and no failure: %s", counts["Complete"], counts["Failed"], out)
	}
	heartbeatsFor(t, c, agent, start, time.Since(start)+time.Second)
	t.Logf("nginx served %d requests in %v under ab -k -c 20, none flagged", counts["Complete"], loadWindow)
}

// A server that accepts one connection every 300 ms while 50 clients
// queue: its queue is never empty, and it takes from it three times a
// budget. Never flagged.
func TestWorkWaitingSlowAccepterNotFlagged(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	ns := newServiceNS(t)
	w := ns.startWorkload(t)
	addr := startServer(t, w, "slow-server 300")
	agent := attachWaiting(t, c, w.PID, "slowaccept")
	dialQueued(t, ns, addr, 50)
	queued := time.Now()
	heartbeatsFor(t, c, agent, queued, 5*waitBudget)
	r, err := w.Do("server-counts")
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.Int("slow_accepted")
	if err != nil {
		t.Fatal(err)
	}
	// Accepting all along, and never through the queue: it was never
	// empty in the window.
	if n < 10 || n >= 50 {
		t.Fatalf("%d of 50 connections accepted in %v, want steady accepts that never empty the queue", n, time.Since(queued).Round(time.Millisecond))
	}
	t.Logf("%d of 50 queued connections accepted in %v, one every 300 ms, none flagged", n, time.Since(queued).Round(time.Millisecond))
}
