package e2e

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// A service with 10,000 threads, all of them idle in read(2) on a pipe
// since before stallmon attached: the agent keeps up with its poll
// interval (before the quiet set, each poll took 0.6 s and the gate went
// blind: a false failover), and still finds the one read that hangs.
func TestTenThousandIdleThreads(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	w := startWorkload(t)
	if _, err := w.DoTimeout("sleepers 10000", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	fs := fusehang.Mount(t, fusehang.Options{})
	agent := startStallmon(t, "attach", "--pid", itoa(w.PID), "--no-heartbeat", "--log-format", "json",
		"--poll-interval", "100ms", "--budget", "1s", "--kill-after", "0", "--metrics-addr", "127.0.0.1:0")
	addr := agent.Events.Next("metrics_listening", 10*time.Second)["addr"].(string)
	agent.Events.Next("attached", 20*time.Second)

	// 30 polls with nothing to report: none late, none failed.
	polls := regexp.MustCompile(`(?m)^stallmon_agent_polls_total (\d+)$`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := polls.FindStringSubmatch(scrape(t, addr)); m != nil {
			if n, _ := strconv.Atoi(m[1]); n >= 30 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 30 polls in 30s:\n%s", scrape(t, addr))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, ev := range agent.Events.Drain() {
		switch ev["msg"] {
		case "agent_late", "poll_failed", "stall", "kill":
			t.Errorf("idle service: %v", ev)
		}
	}
	body := scrape(t, addr)
	t.Logf("after 30 polls: %s", regexp.MustCompile(`(?m)^stallmon_agent_poll_duration_seconds_(sum|count) .*$`).FindAllString(body, -1))

	tid, issued := readHung(t, w, fs.File)
	stall := agent.Events.Next("stall", 10*time.Second)
	if got := int(stall["tid"].(float64)); got != tid {
		t.Fatalf("stall on thread %d, want the reader %d: %v", got, tid, stall)
	}
	t.Logf("hang among 10,000 idle threads reported %v after the read (budget 1s)", time.Since(issued).Round(time.Millisecond))
}
