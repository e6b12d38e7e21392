package dashboards

import (
	"bytes"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sys "golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/nettest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/testutil/repo"
	"github.com/stallmon/stallmon/internal/testutil/workloadtest"
)

// A real Prometheus scrapes a real agent watching a process whose read
// hangs for real, and a listener hearing that agent: every query of every
// dashboard panel returns data, every metric an alert uses exists, the
// stall alert fires during the stall and the lost-heartbeat alert after
// the kill.
func TestDashboardsAgainstPrometheus(t *testing.T) {
	privtest.Require(t)
	privtest.RequireUserfaultfd(t)
	promBin := privtest.RequireCommand(t, "prometheus")
	promtool := privtest.RequireCommand(t, "promtool")
	stallmon := harness.Stallmon(t)
	start := time.Now()

	group := nettest.LoopbackGroup(t)
	keyFile := filepath.Join(t.TempDir(), "key")
	secret := bytes.Repeat([]byte{0x5a}, 32)
	if err := os.WriteFile(keyFile, []byte("id=1\nsecret="+hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	net := []string{"--group", group.String(), "--interface", "lo", "--key-file", keyFile}

	// The target: an idle pipe read (in flight, never a stall), a steady
	// fsync, so the latency histogram and budget lines have data, and an
	// idle listener, for the work_waiting panel (the table turns the rule
	// on).
	w := workloadtest.Start(t)
	for _, cmd := range []string{"pipe-wait", "fsync-loop " + t.TempDir(), "epoll-server"} {
		if _, err := w.Do(cmd); err != nil {
			t.Fatal(err)
		}
	}

	listener := harness.StartLogging(t, stallmon, append([]string{"listen", "--json", "--log-format", "json",
		"--timeout", "2s", "--metrics-addr", "127.0.0.1:0"}, net...)...)
	const killAfter = 10 * time.Second
	agent := harness.Start(t, stallmon, append([]string{"attach", "--pid", strconv.Itoa(w.PID), "--log-format", "json",
		"--node-id", "e2e-node", "--config", waitingTable(t), "--budget", "300ms", "--kill-after", killAfter.String(), "--kill-grace", "3s",
		"--poll-interval", "100ms", "--interval", "200ms",
		"--metrics-addr", "127.0.0.1:0", "--latency-histogram", "--bpf-stats", "--metrics-linger", "15s",
		// The workload sends nothing there: the gate's series exist, at 0.
		"--gate-egress", "udp:" + group.String(), "--gate-egress-pin-dir", bpffs(t)}, net...)...)
	agentAddr := metricsAddr(t, agent)
	listenerAddr := metricsAddr(t, listener)

	// What the commands serve passes promtool's linter as served.
	for _, addr := range []string{agentAddr, listenerAddr} {
		checkMetrics(t, promtool, addr)
	}

	prom := startPrometheus(t, promBin, map[string]string{"stallmon": agentAddr, "stallmon-listen": listenerAddr},
		repo.Path(t, "deploy/prometheus/stallmon-rules.yml"))
	waitFor(t, "first scrapes of the agent and the listener", 30*time.Second, func() (bool, error) {
		a, err := prom.query(`stallmon_target_healthy{job="stallmon"} == 1`)
		if err != nil || a == 0 {
			return false, err
		}
		l, err := prom.query(`stallmon_listener_node_state{job="stallmon-listen",node="e2e-node",state="alive"} == 1`)
		return l > 0, err
	})

	if _, err := w.Do("uffd-hang"); err != nil {
		t.Fatal(err)
	}
	hung := time.Now()
	waitFor(t, "StallmonTargetStalled firing", killAfter, func() (bool, error) {
		return firing(prom, "StallmonTargetStalled")
	})
	t.Logf("StallmonTargetStalled firing %v after the hang", time.Since(hung).Round(time.Millisecond))

	// At kill_after the agent kills the target and, with --metrics-linger,
	// stays until Prometheus has scraped the kill.
	if code := agent.Wait(t, killAfter+30*time.Second); code != 3 {
		t.Fatalf("stallmon attach exited %d, want 3 (target killed)", code)
	}
	waitFor(t, "the kill in Prometheus", 10*time.Second, func() (bool, error) {
		n, err := prom.seriesCount(`stallmon_kills_total{syscall="read"}`, start)
		return n > 0, err
	})
	// A failed scrape after it: the range below ends after the kill's
	// sample, however its steps fall.
	waitFor(t, "a scrape of the exited agent", 10*time.Second, func() (bool, error) {
		n, err := prom.query(`up{job="stallmon"} == 0`)
		return n > 0, err
	})
	waitFor(t, "StallmonHeartbeatLost firing", 20*time.Second, func() (bool, error) {
		return firing(prom, "StallmonHeartbeatLost")
	})
	t.Logf("StallmonHeartbeatLost firing %v after the hang", time.Since(hung).Round(time.Millisecond))
	end := time.Now()

	vars := map[string]string{
		"$instance": agentAddr, // one agent picked; Grafana does not escape a single value
		"$syscall":  ".*",      // "All"
		"$job":      ".*",
		// Grafana's $__rate_interval is four scrape intervals at least.
		"$__rate_interval": "4s",
	}
	for name, d := range loadDashboards(t) {
		for _, v := range d.Templating.List[1:] {
			q, _ := v.Query.(string)
			m := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`).FindStringSubmatch(q)
			if m == nil {
				t.Errorf("%s: variable %s: query %q is not label_values(selector, label)", name, v.Name, q)
				continue
			}
			vals, err := prom.labelValues(m[2], substitute(m[1], vars), start)
			if err != nil || len(vals) == 0 {
				t.Errorf("%s: variable %s (%s) has no values: %v", name, v.Name, q, err)
			}
		}
		for _, p := range d.leaves() {
			for _, q := range p.Targets {
				expr := substitute(q.Expr, vars)
				res, err := prom.queryRange(expr, start, end)
				finite := 0
				for _, s := range res {
					finite += s.finite()
				}
				if err != nil || finite == 0 {
					t.Errorf("%s: panel %q query %s returns no data (%d series, err %v):\n%s", name, p.Title, q.RefID, len(res), err, expr)
				}
			}
		}
	}

	// Every metric the alerting rules read was scraped.
	rules := loadRules(t)
	metricName := regexp.MustCompile(`\b(stallmon_[a-z0-9_]+|up)\b`)
	for _, r := range rules.alerts() {
		names := metricName.FindAllString(r.Expr, -1)
		if len(names) == 0 {
			t.Errorf("alert %s reads no stallmon metric: %s", r.Alert, r.Expr)
		}
		for _, n := range slices.Compact(slices.Sorted(slices.Values(names))) {
			if c, err := prom.seriesCount(n, start); err != nil || c == 0 {
				t.Errorf("alert %s reads %s, which Prometheus never scraped (%v)", r.Alert, n, err)
			}
		}
	}
	t.Logf("checked %d dashboards and %d alerts against %v of scrapes", len(loadDashboards(t)), len(rules.alerts()), end.Sub(start).Round(time.Second))
}

func firing(p *promServer, name string) (bool, error) {
	as, err := p.alerts()
	for _, a := range as {
		if a.Labels["alertname"] == name && a.State == "firing" {
			return true, nil
		}
	}
	return false, err
}

// substitute replaces dashboard variables, longest name first so that
// $__rate_interval is not read as $__rate followed by text.
func substitute(expr string, vars map[string]string) string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return len(b) - len(a) })
	for _, k := range keys {
		expr = strings.ReplaceAll(expr, k, vars[k])
	}
	return expr
}

func checkMetrics(t *testing.T, promtool, addr string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics on %s: %v\n%s", addr, err, out)
	}
}

// metricsAddr waits for the metrics_listening event and returns its
// address (the port was chosen by the kernel).
func metricsAddr(t *testing.T, p *harness.Proc) string {
	t.Helper()
	ev := p.Events.NextWhere("metrics_listening", 15*time.Second, func(ev map[string]any) bool {
		return ev["msg"] == "metrics_listening" || ev["msg"] == "metrics_failed"
	})
	if ev["msg"] == "metrics_failed" {
		t.Fatalf("metrics server failed: %v", ev)
	}
	return ev["addr"].(string)
}

// bpffs mounts a BPF file system for the gate's pin, unmounted (and the
// gate with it) when the test ends.
func bpffs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := sys.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		t.Fatalf("mounting a bpffs: %v", err)
	}
	t.Cleanup(func() {
		if err := sys.Unmount(dir, sys.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return filepath.Join(dir, "egress")
}

// waitingTable is the built-in table with work_waiting on, so that the
// agent serves the listener metrics.
func waitingTable(t *testing.T) string {
	t.Helper()
	const rule = "  work_waiting: {budget: 10s, kill_after: 60s}\n"
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
