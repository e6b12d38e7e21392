package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/stallmon/stallmon/agent"
	"github.com/stallmon/stallmon/budget"
	"github.com/stallmon/stallmon/metrics"
	"github.com/stallmon/stallmon/monitor"
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
	evMetricsListening = "metrics_listening"
	evMetricsFailed    = "metrics_failed"
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

func (o *metricsOptions) monitorOptions() monitor.Options {
	return monitor.Options{LatencyHistogram: o.latencyHistogram}
}

// serveAgent starts the agent's metrics server and returns the function
// that stops it. A server that cannot start is logged, not fatal: the
// agent's job is the heartbeat and the kill, and Prometheus reports the
// missing target (StallmonAgentDown).
func (o *metricsOptions) serveAgent(ctx context.Context, log *slog.Logger, mon *monitor.Monitor, a *agent.Agent, table *budget.Table, poll time.Duration) (stop func()) {
	if o.addr == "" {
		if o.latencyHistogram || o.bpfStats {
			log.Warn(evMetricsFailed, "err", "--latency-histogram and --bpf-stats are only exported with --metrics-addr")
		}
		return func() {}
	}
	var stats io.Closer
	if o.bpfStats {
		var err error
		if stats, err = monitor.EnableBPFStats(); err != nil {
			log.Warn(evMetricsFailed, "err", err)
		}
	}
	statsHeld := stats != nil
	reg, err := metrics.NewAgentRegistry(metrics.AgentConfig{
		Agent: a, Tracker: mon, Table: table, PollInterval: poll, Version: buildVersion(), Logger: log,
		BPFStats: func() bool {
			on, _ := monitor.BPFStatsSysctl()
			return on || statsHeld
		},
	})
	srv := o.serve(ctx, log, reg, err, healthHandlers(a))
	return func() {
		srv.stop(ctx, o.linger)
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
	srv := o.serve(ctx, log, reg, err, nil)
	return func() { srv.stop(ctx, 0) }
}

func (o *metricsOptions) serve(ctx context.Context, log *slog.Logger, reg *prometheus.Registry, regErr error, extra map[string]http.Handler) *metricsServer {
	s := &metricsServer{scraped: make(chan struct{}, 1)}
	if regErr != nil {
		log.Error(evMetricsFailed, "err", regErr)
		return s
	}
	ln, err := net.Listen("tcp", string(o.addr))
	if err != nil {
		log.Error(evMetricsFailed, "addr", string(o.addr), "err", fmt.Errorf("listening for scrapes: %w", err))
		return s
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", s.count(metrics.Handler(reg)))
	for path, h := range extra {
		mux.Handle(path, h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "stallmon: metrics at /metrics; /livez and /readyz for an agent")
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(evMetricsFailed, "addr", ln.Addr().String(), "err", err)
		}
	}()
	// The actual address: with port 0 (tests) the kernel chose it.
	log.Info(evMetricsListening, "addr", ln.Addr().String())
	return s
}

// metricsServer is the HTTP side; it counts scrapes so that stop can
// wait for one that saw the final state.
type metricsServer struct {
	srv  *http.Server // nil when it could not start
	done chan struct{}

	started atomic.Uint64 // scrapes begun
	mu      sync.Mutex
	served  uint64 // highest begun-number of a finished scrape
	scraped chan struct{}
}

func (s *metricsServer) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.started.Add(1)
		next.ServeHTTP(w, r)
		s.mu.Lock()
		s.served = max(s.served, n)
		s.mu.Unlock()
		select {
		case s.scraped <- struct{}{}:
		default:
		}
	})
}

// stop waits, up to linger and while ctx lasts, for a scrape begun after
// this call, then shuts the server down. Without it, the counters of a
// kill would die with the process before Prometheus saw them.
func (s *metricsServer) stop(ctx context.Context, linger time.Duration) {
	if s.srv == nil {
		return
	}
	if linger > 0 && ctx.Err() == nil {
		mark := s.started.Load()
		timeout := time.NewTimer(linger)
		defer timeout.Stop()
	wait:
		for {
			s.mu.Lock()
			seen := s.served > mark
			s.mu.Unlock()
			if seen {
				break
			}
			select {
			case <-s.scraped:
			case <-timeout.C:
				break wait
			case <-ctx.Done():
				break wait
			}
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.srv.Close()
	}
	<-s.done
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

// healthHandlers answer as Kubernetes probes expect: 200 and "ok", or 503
// and the reason. /livez: stallmon's loop is polling. /readyz: the
// heartbeat may say ALIVE (no stall, a fresh poll, not fenced).
func healthHandlers(a *agent.Agent) map[string]http.Handler {
	answer := func(ok func(agent.Health) bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			h := a.Health()
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			if ok(h) {
				fmt.Fprintln(w, "ok")
				return
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, h.Reason)
		})
	}
	return map[string]http.Handler{
		"/livez":  answer(func(h agent.Health) bool { return h.Live }),
		"/readyz": answer(func(h agent.Health) bool { return h.Live && h.Ready }),
	}
}
