package e2e

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

func TestMetricsAddrUsage(t *testing.T) {
	for _, args := range [][]string{
		{"attach", "--pid", "1", "--metrics-addr", "localhost"},
		{"listen", "--metrics-addr", "9478"},
	} {
		code, stderr := runStallmon(t, nil, args...)
		if code != exitUsage || !strings.Contains(stderr, "--metrics-addr") {
			t.Errorf("%v: exit %d, stderr %q; want a usage error naming --metrics-addr", args, code, stderr)
		}
	}
}

// A metrics port that is taken does not stop the agent from guarding its
// target: it says so and goes on.
func TestMetricsPortTakenIsNotFatal(t *testing.T) {
	privtest.Require(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	w := startWorkload(t)
	agent := startStallmon(t, "attach", "--pid", itoa(w.PID), "--log-format", "json", "--no-heartbeat",
		"--metrics-addr", ln.Addr().String())
	ev := agent.Events.Next("metrics_failed", 10*time.Second)
	if !strings.Contains(ev["err"].(string), "address already in use") {
		t.Errorf("metrics_failed = %v", ev)
	}
	agent.Events.Next("attached", 10*time.Second)
}

// With --metrics-linger, the agent whose target is gone waits for one
// more scrape, which shows the final state, and then exits at once.
func TestMetricsLingerUntilScraped(t *testing.T) {
	privtest.Require(t)
	w := startWorkload(t)
	agent := startStallmon(t, "attach", "--pid", itoa(w.PID), "--log-format", "json", "--no-heartbeat",
		"--metrics-addr", "127.0.0.1:0", "--metrics-linger", "1m")
	addr := agent.Events.Next("metrics_listening", 10*time.Second)["addr"].(string)
	agent.Events.Next("attached", 10*time.Second)
	if body := scrape(t, addr); !strings.Contains(body, "stallmon_target_healthy 1") {
		t.Fatalf("healthy target not reported:\n%s", body)
	}

	if _, err := w.Do("exit 0"); err == nil {
		t.Fatal("workload answered an exit")
	}
	agent.Events.Next("target_exited", 10*time.Second)
	select {
	case <-agent.Done():
		t.Fatalf("stallmon exited (%d) before the final scrape", agent.Code())
	case <-time.After(500 * time.Millisecond):
	}
	body := scrape(t, addr)
	if !strings.Contains(body, `stallmon_gate_state{state="fenced"} 1`) || !strings.Contains(body, "stallmon_target_healthy 0") {
		t.Fatalf("final scrape does not show the target gone:\n%s", body)
	}
	if code := agent.Wait(t, 5*time.Second); code != exitOK {
		t.Fatalf("stallmon exited %d, want %d", code, exitOK)
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	return scrapeWith(t, http.DefaultClient, addr)
}

// scrapeWith scrapes through client: one that dials from inside a
// network namespace reaches a server on that namespace's loopback.
func scrapeWith(t *testing.T, client *http.Client, addr string) string {
	t.Helper()
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// /livez and /readyz answer as Kubernetes probes expect: 200 "ok" while
// the agent polls and the target is healthy; /readyz 503 with the reason
// while a syscall is stalled, and 200 again once it returned.
func TestHealthEndpoints(t *testing.T) {
	privtest.Require(t)
	w := startWorkload(t)
	agent := startStallmon(t, "attach", "--pid", itoa(w.PID), "--log-format", "json", "--no-heartbeat",
		"--metrics-addr", "127.0.0.1:0", "--budget", "300ms", "--kill-after", "0", "--late-return", "resume")
	addr := agent.Events.Next("metrics_listening", 10*time.Second)["addr"].(string)
	agent.Events.Next("attached", 10*time.Second)
	probe := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	waitProbe := func(path string, code int, body string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, b := probe(path)
			if c == code && strings.Contains(b, body) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d %q, want %d %q", path, c, b, code, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitProbe("/livez", 200, "ok")
	waitProbe("/readyz", 200, "ok")
	r, err := w.Do("uffd-hang")
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := r.Int("tid")
	agent.Events.Next("stall", 10*time.Second)
	waitProbe("/readyz", 503, "stalled: thread "+itoa(tid))
	waitProbe("/livez", 200, "ok")
	if _, err := w.Do("uffd-release"); err != nil {
		t.Fatal(err)
	}
	agent.Events.Next("stall_cleared", 10*time.Second)
	waitProbe("/readyz", 200, "ok")
}

// waitPolls waits until the agent serving metrics at addr has judged n
// more snapshots: what a test that checks nothing happened waits for,
// rather than a time.
func waitPolls(t *testing.T, addr string, n int) {
	t.Helper()
	polls := func() float64 {
		for _, line := range strings.Split(scrape(t, addr), "\n") {
			if v, ok := strings.CutPrefix(line, "stallmon_agent_polls_total "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
		}
		t.Fatal("no stallmon_agent_polls_total")
		return 0
	}
	start, deadline := polls(), time.Now().Add(time.Duration(n)*time.Second)
	for polls() < start+float64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d polls in %v", n, time.Duration(n)*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
