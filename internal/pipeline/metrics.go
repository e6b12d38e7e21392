package pipeline

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/stallmon/stallmon/internal/agent"
	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/egress"
	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/httpserve"
	"github.com/stallmon/stallmon/internal/metrics"
	"github.com/stallmon/stallmon/internal/tracker"
	"github.com/stallmon/stallmon/peer"
)

// Fixed default ports, so that a scrape config can name them: 9477 for
// the agent, 9478 for the listener. Loopback only unless told otherwise.
const (
	DefaultAttachMetricsAddr = "127.0.0.1:9477"
	DefaultListenMetricsAddr = "127.0.0.1:9478"
)

// serveAgent starts the agent's metrics server and returns the function
// that stops it. A server that cannot start is logged, not fatal: the
// agent's job is the heartbeat and the kill, and Prometheus reports the
// missing target (StallmonAgentDown).
func serveAgent(ctx context.Context, c Metrics, version string, log *slog.Logger, t *tracker.Tracker, a *agent.Agent, gate *egress.Gate, table *budget.Table, poll time.Duration) (stop func()) {
	if c.Addr == "" {
		if c.LatencyHistogram || c.BPFStats {
			log.Warn(event.MetricsFailed, "detail", "--latency-histogram and --bpf-stats are only exported with --metrics-addr")
		}
		return func() {}
	}
	var stats io.Closer
	if c.BPFStats {
		var err error
		if stats, err = tracker.EnableBPFStats(); err != nil {
			log.Warn(event.MetricsFailed, "err", err)
		}
	}
	statsHeld := stats != nil
	var eg metrics.EgressSource
	if gate != nil {
		eg = gate
	}
	reg, err := metrics.NewAgentRegistry(metrics.AgentConfig{
		Agent: a, Tracker: t, Egress: eg, Table: table, PollInterval: poll, Version: version, Logger: log,
		BPFStats: func() bool {
			on, _ := tracker.BPFStatsSysctl()
			return on || statsHeld
		},
	})
	srv := httpserve.Start(log, c.Addr, reg, err, httpserve.Probes(func() (bool, bool, string) {
		h := a.Health()
		return h.Live, h.Ready, h.Reason
	}))
	return func() {
		srv.Stop(ctx, c.Linger)
		if stats != nil {
			stats.Close()
		}
	}
}

// serveListener starts the listener's metrics server (see serveAgent).
func serveListener(ctx context.Context, addr, version string, log *slog.Logger, l *peer.Listener, failovers *metrics.Failovers) (stop func()) {
	if addr == "" {
		return func() {}
	}
	reg, err := metrics.NewListenerRegistry(metrics.NewListenerCollector(l, failovers), version)
	srv := httpserve.Start(log, addr, reg, err, nil)
	return func() { srv.Stop(ctx, 0) }
}
