package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stallmon/stallmon/internal/budget"
)

// AgentConfig names what `stallmon attach` exports.
type AgentConfig struct {
	Agent        AgentSource
	Tracker      TrackerSource
	Table        *budget.Table
	PollInterval time.Duration
	Version      string
	// BPFStats reports whether the kernel counts BPF program runs now.
	BPFStats func() bool
	// Egress is the gate of --gate-egress, nil without.
	Egress EgressSource
	Logger *slog.Logger
}

// NewAgentRegistry returns a registry with the agent's, the tracker's and
// the timeout table's metrics, plus the Go runtime's and the process's.
func NewAgentRegistry(cfg AgentConfig) (*prometheus.Registry, error) {
	if cfg.Agent == nil || cfg.Tracker == nil || cfg.Table == nil {
		return nil, errors.New("metrics: agent registry needs an agent, a tracker and a table")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BPFStats == nil {
		cfg.BPFStats = func() bool { return false }
	}
	inFlight := func() []string {
		var out []string
		for _, f := range cfg.Agent.Stats().InFlight {
			out = append(out, f.Syscall)
		}
		return out
	}
	cs := []prometheus.Collector{
		newAgentCollector(cfg.Agent, cfg.PollInterval),
		newTrackerCollector(cfg.Tracker, cfg.BPFStats, cfg.Logger),
		newBudgetCollector(cfg.Table, inFlight),
	}
	if cfg.Egress != nil {
		cs = append(cs, newEgressCollector(cfg.Egress))
	}
	return newRegistry(cfg.Version, cs...)
}

// NewListenerRegistry returns a registry with the listener's metrics,
// plus the Go runtime's and the process's.
func NewListenerRegistry(c *ListenerCollector, version string) (*prometheus.Registry, error) {
	return newRegistry(version, c)
}

func newRegistry(version string, cs ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help:        "Always 1; labelled with stallmon's version and the Go version that built it.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	info.Set(1)
	cs = append(cs, info, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: registering collector: %w", err)
		}
	}
	return reg, nil
}

// Handler serves reg in the Prometheus exposition formats. A collector
// that panics or sends an invalid metric fails only that metric's part of
// the scrape, not the whole of it.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg,
	}))
}

// NewWaitingRegistry returns what stallmon run serves while the service
// cannot start, a cgroup an earlier run left still holding processes:
// stallmon_service_waiting (1 meanwhile), plus the build info, the Go
// runtime's and the process's metrics.
func NewWaitingRegistry(version string, waiting func() bool) (*prometheus.Registry, error) {
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "service_waiting",
		Help: "1 while stallmon run holds the start of its service because a cgroup an earlier run left still holds processes (killed, stuck in the kernel).",
	}, func() float64 {
		if waiting() {
			return 1
		}
		return 0
	})
	return newRegistry(version, g)
}
