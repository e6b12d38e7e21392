package metrics

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/repo"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/peer"
)

var update = flag.Bool("update", false, "rewrite the fixtures in testdata/")

// compareFixture gathers c and compares the exposition with
// testdata/name.prom.
func compareFixture(t *testing.T, c prometheus.Collector, name string) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name+".prom")
	if *update {
		if err := os.WriteFile(path, exposition(t, reg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(reg, bytes.NewReader(want)); err != nil {
		t.Fatalf("%s (run with -update to accept): %v", path, err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

func exposition(t *testing.T, g prometheus.Gatherer) []byte {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestAgentMetrics(t *testing.T) {
	compareFixture(t, newAgentCollector(fakeAgent{stalledAgentStats()}, 100*time.Millisecond), "agent")
}

func TestTrackerMetrics(t *testing.T) {
	compareFixture(t, newTrackerCollector(fakeTracker{hist: true}, func() bool { return true }, discard()), "tracker")
}

// A failing kernel read drops that source from the scrape and counts the
// failure; the rest of the scrape is served.
func TestTrackerReadError(t *testing.T) {
	c := newTrackerCollector(fakeTracker{hist: true, failHist: true}, func() bool { return false }, discard())
	for range 2 {
		testutil.CollectAndCount(c)
	}
	if n := testutil.ToFloat64(c.errors.WithLabelValues(sourceLatency)); n != 2 {
		t.Fatalf("latency read errors = %v after two failed scrapes, want 2", n)
	}
	if n := testutil.CollectAndCount(c, "stallmon_syscall_latency_seconds"); n != 0 {
		t.Fatalf("%d latency series from a failed read", n)
	}
	if n := testutil.CollectAndCount(c, "stallmon_tracker_syscalls_entered_total"); n != 1 {
		t.Fatalf("counters missing when only the histogram failed")
	}
}

func TestBudgetMetrics(t *testing.T) {
	table, err := budget.Parse([]byte(`default: {budget: 5s, kill_after: 60s}
syscalls:
  fsync: {budget: 10s, kill_after: never}
  read:
    by_fd: {socket: unbounded, regular: {budget: 2s}}
  epoll_wait: unbounded
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	// openat is not in the table but in flight: it gets the default rule.
	compareFixture(t, newBudgetCollector(table, func() []string { return []string{"openat", "read"} }), "budget")
}

func TestListenerMetrics(t *testing.T) {
	fo := NewFailovers()
	c := NewListenerCollector(fakeListener{
		st: peer.Stats{Accepted: 99, Rejected: map[string]uint64{"bad_mac": 4, "replay": 1}},
		nodes: []peer.NodeStatus{
			{Node: "node-a", State: peer.Fenced, Authenticated: true, LastSeen: epoch.Add(-12 * time.Second)},
			{Node: "node-b", State: peer.Alive, Authenticated: true, LastSeen: epoch.Add(-200 * time.Millisecond)},
		},
	}, fo)
	c.now = func() time.Time { return epoch }
	var passed int
	onEvent := fo.Tap(func(peer.Event) { passed++ })
	onEvent(peer.Event{Node: "node-a", State: peer.Stalled, Failover: true, Reason: "stalled"})
	onEvent(peer.Event{Node: "node-a", State: peer.Fenced, Reason: "fenced"}) // same failure: not counted
	if passed != 2 {
		t.Fatalf("Tap passed %d events on, want 2", passed)
	}
	compareFixture(t, c, "listener")
}

// The whole exposition of both commands, as served, passes promtool.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := privtest.RequireCommand(t, "promtool")
	table, err := budget.Default(nil)
	if err != nil {
		t.Fatal(err)
	}
	agentReg, err := NewAgentRegistry(AgentConfig{Agent: fakeAgent{stalledAgentStats()}, Tracker: fakeTracker{hist: true},
		Table: table, PollInterval: 100 * time.Millisecond, Version: "test", Egress: fakeEgress{}})
	if err != nil {
		t.Fatal(err)
	}
	listenerReg, err := NewListenerRegistry(NewListenerCollector(fakeListener{nodes: []peer.NodeStatus{{Node: "n", State: peer.Alive}}}, NewFailovers()), "test")
	if err != nil {
		t.Fatal(err)
	}
	waitingReg, err := NewWaitingRegistry("test", func() bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	for name, reg := range map[string]*prometheus.Registry{"attach": agentReg, "listen": listenerReg, "run waiting": waitingReg} {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(exposition(t, reg))
		if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("promtool check metrics on %s: %v\n%s", name, err, out)
		}
	}
}

// Every metric name the documentation mentions exists (docs/metrics.md,
// generated below, lists them all).
func TestDocsMentionOnlyExportedMetrics(t *testing.T) {
	pages, err := filepath.Glob(repo.Path(t, "docs/*.md"))
	if err != nil || len(pages) < 10 {
		t.Fatalf("docs pages: %v, %v", pages, err)
	}
	pages = append(pages, repo.Path(t, "README.md"))
	names := exportedNames(t)
	mentioned := 0
	for _, page := range pages {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile("`(stallmon_[a-z0-9_]+)(\\*)?`").FindAllStringSubmatch(string(text), -1) {
			mentioned++
			name, prefix := m[1], m[2] != ""
			found := false
			for _, n := range names {
				if n == name || (prefix && strings.HasPrefix(n, name)) ||
					slices.Contains([]string{n + "_bucket", n + "_sum", n + "_count"}, name) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s mentions %s, which no collector exports", filepath.Base(page), m[0])
			}
		}
	}
	if mentioned < len(names) {
		t.Errorf("the docs mention %d metric names, fewer than the %d exported", mentioned, len(names))
	}
}

func exportedNames(t *testing.T) []string {
	t.Helper()
	table, err := budget.Default(nil)
	if err != nil {
		t.Fatal(err)
	}
	agentReg, err := NewAgentRegistry(AgentConfig{Agent: fakeAgent{stalledAgentStats()}, Tracker: fakeTracker{hist: true},
		Table: table, PollInterval: time.Second, Version: "test", Egress: fakeEgress{}})
	if err != nil {
		t.Fatal(err)
	}
	fo := NewFailovers()
	fo.Observe(peer.Event{Node: "n", Failover: true, Reason: "dead"})
	lc := NewListenerCollector(fakeListener{nodes: []peer.NodeStatus{{Node: "n", State: peer.Alive}}}, fo)
	listenerReg, err := NewListenerRegistry(lc, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitingReg, err := NewWaitingRegistry("test", func() bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range []prometheus.Gatherer{agentReg, listenerReg, waitingReg} {
		mfs, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), Namespace+"_") && mf.GetName() != "stallmon_build_info" {
				names = append(names, mf.GetName())
			}
		}
	}
	return append(names, "stallmon_build_info")
}
