package metrics

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/testutil/docgen"
	"github.com/stallmon/stallmon/peer"
)

// docs/metrics.md is what the agent's and the listener's registries
// export, gathered from them.
func TestMetricsDoc(t *testing.T) {
	table, err := budget.Default(nil)
	if err != nil {
		t.Fatal(err)
	}
	agentReg, err := NewAgentRegistry(AgentConfig{Agent: fakeAgent{stalledAgentStats()}, Tracker: fakeTracker{hist: true},
		Table: table, PollInterval: time.Second, Version: "test", BPFStats: func() bool { return true },
		Egress: fakeEgress{}})
	if err != nil {
		t.Fatal(err)
	}
	fo := NewFailovers()
	fo.Observe(peer.Event{Node: "n", Failover: true, Reason: "dead"})
	listenerReg, err := NewListenerRegistry(NewListenerCollector(fakeListener{nodes: []peer.NodeStatus{{Node: "n", State: peer.Alive}}}, fo), "test")
	if err != nil {
		t.Fatal(err)
	}
	waitingReg, err := NewWaitingRegistry("test", func() bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString(docgen.Header)
	b.WriteString(`# Metrics

What ` + "`stallmon attach`" + ` and ` + "`stallmon run`" + ` serve at ` + "`--metrics-addr`" + ` (default
127.0.0.1:9477), and what ` + "`stallmon listen`" + ` serves (default 127.0.0.1:9478), at
` + "`/metrics`" + `. Scraping, dashboards and alerts: [dashboards.md](dashboards.md).
`)
	for _, r := range []struct {
		title string
		reg   *prometheus.Registry
		least int
	}{{"attach, run", agentReg, 5}, {"run, while a leftover cgroup holds the start", waitingReg, 2}, {"listen", listenerReg, 5}} {
		mfs, err := r.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "\n## %s\n\n| metric | type | labels | meaning |\n|---|---|---|---|\n", r.title)
		n := 0
		for _, mf := range mfs {
			if !strings.HasPrefix(mf.GetName(), Namespace+"_") {
				continue
			}
			n++
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", mf.GetName(), strings.ToLower(mf.GetType().String()),
				labels(mf), strings.ReplaceAll(mf.GetHelp(), "|", `\|`))
		}
		if n < r.least {
			t.Fatalf("%s exports %d stallmon metrics", r.title, n)
		}
	}
	docgen.Check(t, "docs/metrics.md", b.Bytes())
}

// labels names mf's labels, as its first series carries them.
func labels(mf *dto.MetricFamily) string {
	var names []string
	if ms := mf.GetMetric(); len(ms) > 0 {
		for _, l := range ms[0].GetLabel() {
			names = append(names, "`"+l.GetName()+"`")
		}
	}
	return strings.Join(names, ", ")
}
