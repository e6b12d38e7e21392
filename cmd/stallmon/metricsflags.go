package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/spf13/pflag"

	"github.com/stallmon/stallmon/internal/agent"
	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/httpserve"
	"github.com/stallmon/stallmon/internal/metrics"
	"github.com/stallmon/stallmon/internal/tracker"
	"github.com/stallmon/stallmon/peer"
)

// Fixed default ports, so that a scrape config can name them: 9477 for
// the agent, 9478 for the listener. Loopback only unless told otherwise.
const (
	defaultAttachMetricsAddr = "127.0.0.1:9477"
	defaultListenMetricsAddr = "127.0.0.1:9478"
)

// Metrics events, in the style of the agent's (see agent/events.go).
const (
	evMetricsFailed = httpserve.EvFailed
)

type metricsOptions struct {
	addr             addrFlag
	linger           time.Duration
	latencyHistogram bool
	bpfStats         bool

	failovers *metrics.Failovers // listen only
}

func (o *metricsOptions) registerAttach(f *pflag.FlagSet) {
	o.addr = addrFlag(defaultAttachMetricsAddr)
	f.Var(&o.addr, "metrics-addr", `serve Prometheus metrics on HOST:PORT ("" disables)`)
	f.BoolVar(&o.latencyHistogram, "latency-histogram", false,
		"measure the target's syscall latencies in the kernel for stallmon_syscall_latency_seconds (costs the target tens of ns per syscall)")
	f.BoolVar(&o.bpfStats, "bpf-stats", false,
		"turn on the kernel's BPF run time accounting while attached, for stallmon_bpf_program_* (costs every BPF program on the machine two clock reads per run)")
	f.DurationVar(&o.linger, "metrics-linger", 0,
		"once the target is gone, keep serving metrics until one more scrape, for at most this long, so the kill is scraped")
}

func (o *metricsOptions) registerListen(f *pflag.FlagSet) {
	o.addr = addrFlag(defaultListenMetricsAddr)
	f.Var(&o.addr, "metrics-addr", `serve Prometheus metrics on HOST:PORT ("" disables)`)
}

// serveAgent starts the agent's metrics server and returns the function
// that stops it. A server that cannot start is logged, not fatal: the
// agent's job is the heartbeat and the kill, and Prometheus reports the
// missing target (StallmonAgentDown).
func (o *metricsOptions) serveAgent(ctx context.Context, log *slog.Logger, mon *tracker.Tracker, a *agent.Agent, table *budget.Table, poll time.Duration) (stop func()) {
	if o.addr == "" {
		if o.latencyHistogram || o.bpfStats {
			log.Warn(evMetricsFailed, "err", "--latency-histogram and --bpf-stats are only exported with --metrics-addr")
		}
		return func() {}
	}
	var stats io.Closer
	if o.bpfStats {
		var err error
		if stats, err = tracker.EnableBPFStats(); err != nil {
			log.Warn(evMetricsFailed, "err", err)
		}
	}
	statsHeld := stats != nil
	reg, err := metrics.NewAgentRegistry(metrics.AgentConfig{
		Agent: a, Tracker: mon, Table: table, PollInterval: poll, Version: buildVersion(), Logger: log,
		BPFStats: func() bool {
			on, _ := tracker.BPFStatsSysctl()
			return on || statsHeld
		},
	})
	srv := httpserve.Start(log, string(o.addr), reg, err, httpserve.Probes(func() (bool, bool, string) {
		h := a.Health()
		return h.Live, h.Ready, h.Reason
	}))
	return func() {
		srv.Stop(ctx, o.linger)
		if stats != nil {
			stats.Close()
		}
	}
}

// tap wraps the listener's OnEvent so that failovers are counted; it is
// called before the listener exists, serveListener once it does.
func (o *metricsOptions) tap(next func(peer.Event)) func(peer.Event) {
	o.failovers = metrics.NewFailovers()
	return o.failovers.Tap(next)
}

// serveListener starts the listener's metrics server (see serveAgent).
func (o *metricsOptions) serveListener(ctx context.Context, log *slog.Logger, l *peer.Listener) (stop func()) {
	if o.addr == "" {
		return func() {}
	}
	if o.failovers == nil {
		o.failovers = metrics.NewFailovers()
	}
	reg, err := metrics.NewListenerRegistry(metrics.NewListenerCollector(l, o.failovers), buildVersion())
	srv := httpserve.Start(log, string(o.addr), reg, err, nil)
	return func() { srv.Stop(ctx, 0) }
}

// addrFlag is a HOST:PORT checked when parsed, so a typo is a usage
// error (exit 2) before anything is attached.
type addrFlag string

func (a *addrFlag) String() string { return string(*a) }
func (a *addrFlag) Type() string   { return "host:port" }
func (a *addrFlag) Set(s string) error {
	if s != "" {
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			return fmt.Errorf("want HOST:PORT or empty, got %q", s)
		}
	}
	*a = addrFlag(s)
	return nil
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}
