package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/stallmon/stallmon/internal/agent"
	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/egress"
	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/identity"
	"github.com/stallmon/stallmon/internal/listenq"
	"github.com/stallmon/stallmon/internal/nodefence"
	"github.com/stallmon/stallmon/internal/selfprotect"
	"github.com/stallmon/stallmon/internal/sink"
	"github.com/stallmon/stallmon/internal/tracker"
)

// chain is what lives as long as the process, whatever the targets it
// watches in turn (stallmon run watches one per start of the service):
// the table, the heartbeat and the integrations' hub.
type chain struct {
	cfg   Config
	log   *slog.Logger
	table *budget.Table
	kind  tracker.Kind
	bpf   tracker.BPFFeatures
	late  agent.LateReturn
	hb    *agent.HeartbeatConfig // nil without a heartbeat
	hub   *sink.Hub              // nil without integrations
	dests []egress.Dest          // --gate-egress; none without a gate
	// listeners reads accept queues for the work_waiting rule; nil while
	// the table leaves the rule off.
	listeners *listenq.Scanner
	closers   []func()
}

// newChain checks how targets are to be judged and loads the table.
// Everything the user can get wrong about it is refused here, before
// anything is opened.
func newChain(cfg Config) (*chain, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := cfg.Watch
	if w.PollInterval <= 0 {
		return nil, configErr(fmt.Errorf("--poll-interval must be positive, got %v", w.PollInterval))
	}
	if w.KillGrace <= 0 {
		return nil, configErr(fmt.Errorf("--kill-grace must be positive, got %v", w.KillGrace))
	}
	kind, err := tracker.ParseKind(w.Tracker)
	if err != nil {
		return nil, configErr(fmt.Errorf("--tracker: %w", err))
	}
	var bpf tracker.BPFFeatures
	if w.BPFFeatures != "" {
		if bpf, err = tracker.ParseBPFFeatures(w.BPFFeatures); err != nil {
			return nil, configErr(fmt.Errorf("--bpf-features: %w", err))
		}
	}
	if kind == tracker.Sampled && cfg.Metrics.LatencyHistogram {
		return nil, configErr(errors.New("--latency-histogram needs --tracker=tracepoint: the sampled tracker sees no syscall end"))
	}
	late, err := agent.ParseLateReturn(w.LateReturn)
	if err != nil {
		return nil, configErr(fmt.Errorf("--late-return: %w", err))
	}
	dests, err := egress.ParseDests(cfg.Egress.Dests)
	if err != nil {
		return nil, configErr(err)
	}
	if len(dests) > 0 {
		if err := egress.CheckPinDir(cfg.Egress.PinDir); err != nil {
			return nil, configErr(err)
		}
	}
	table, err := LoadTable(cfg.Table)
	if err != nil {
		return nil, err
	}
	return &chain{cfg: cfg, log: cfg.Logger, table: table, kind: kind, bpf: bpf, late: late, dests: dests}, nil
}

// close closes what the chain opened, last opened first.
func (c *chain) close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
}

// protect applies selfprotect and says what it could not do: stallmon
// still works without, but the operator should know.
func (c *chain) protect(adjustOOM bool) {
	if !c.cfg.SelfProtect {
		return
	}
	r := selfprotect.Apply(adjustOOM)
	for _, err := range []error{r.LockErr, r.OOMAdjErr} {
		if err != nil {
			c.log.Warn(event.SelfProtectFailed, "err", err)
		}
	}
}

// startHeartbeat opens the heartbeat; service names the target for the
// default node id.
func (c *chain) startHeartbeat(service string) error {
	hb, closeHB, err := buildHeartbeat(c.cfg.Heartbeat, c.cfg.Node, service, c.log)
	if err != nil {
		return err
	}
	c.hb = hb
	c.closers = append(c.closers, closeHB)
	return nil
}

// startSinks starts the integrations for target t.
func (c *chain) startSinks(service string, t sink.Target) error {
	hub, closeSinks, err := startSinks(c.cfg.Sinks, c.cfg.Node, service, t, c.log)
	if err != nil {
		return err
	}
	c.hub = hub
	c.closers = append(c.closers, closeSinks)
	return nil
}

// trackerOptions are the tracker's options. At debug level every thread
// is listed at every poll, for the thread_started and thread_exited
// events; otherwise the threads that wait by design are only counted.
func (c *chain) trackerOptions() tracker.Options {
	opts := tracker.Options{LatencyHistogram: c.cfg.Metrics.LatencyHistogram, Kind: c.kind, BPFFeatures: c.bpf}
	if !c.log.Enabled(context.Background(), slog.LevelDebug) {
		opts.Quiet = agent.Quiet(c.table)
	}
	return opts
}

// openEgress attaches the --gate-egress gate for the target in scope,
// named after the node id that service gives; nil without a gate.
func (c *chain) openEgress(service string, scope egress.Scope) (*egress.Gate, error) {
	if len(c.dests) == 0 {
		return nil, nil
	}
	id, err := identity.NodeID(c.cfg.Node.ID, service)
	if err != nil {
		return nil, configErr(err)
	}
	g, err := egress.Open(egress.Options{
		Dests: c.dests, NodeID: id, PinDir: c.cfg.Egress.PinDir, ReleaseOnExit: c.cfg.Egress.ReleaseOnExit,
		Rescan: c.cfg.Watch.PollInterval, Logger: c.log,
	}, scope)
	if err != nil {
		return nil, attachErr(err)
	}
	return g, nil
}

// openListeners loads the listener scanner when the table judges
// work_waiting; the table's other rules never need it.
func (c *chain) openListeners() error {
	if c.listeners != nil || c.table.ProcessRule(budget.WorkWaiting).Unbounded {
		return nil
	}
	s, err := listenq.Open()
	if err != nil {
		return attachErr(fmt.Errorf("work_waiting: %w", err))
	}
	c.listeners = s
	c.closers = append(c.closers, func() { s.Close() })
	return nil
}

// newAgent is the agent that judges t; nf, when set, takes the node down
// if a killed target does not die; gate, when set, is the service's own
// heartbeat's egress gate.
func (c *chain) newAgent(t *tracker.Tracker, nf nodefence.Fencer, gate *egress.Gate) (*agent.Agent, error) {
	w := c.cfg.Watch
	var eg agent.EgressGate
	if gate != nil {
		eg = gate
	}
	if err := c.openListeners(); err != nil {
		return nil, err
	}
	var ls agent.ListenerSource
	if c.listeners != nil {
		ls = c.listeners
	}
	a, err := agent.New(t, agent.Config{
		PollInterval: w.PollInterval,
		Table:        c.table,
		Kill:         !w.NoKill,
		KillGrace:    w.KillGrace,
		LateReturn:   c.late,
		Heartbeat:    c.hb,
		Integrations: c.hub,
		NodeFence:    nf,
		Egress:       eg,
		Listeners:    ls,
		Logger:       c.log,
	})
	if err != nil {
		return nil, configErr(err)
	}
	return a, nil
}

// logAttached says what is watched and how, once the agent is ready.
func (c *chain) logAttached(what ...any) {
	node := ""
	if c.hb != nil {
		node = c.hb.NodeID
	}
	w := c.cfg.Watch
	c.log.Info(event.Attached, append(what, "node", node, "arch", tracker.Arch, "tracker", w.Tracker,
		"poll_interval_seconds", w.PollInterval.Seconds(), "kill", !w.NoKill, "heartbeat", c.hb != nil,
		"sinks", sinkNames(c.hub), "gate_egress", len(c.dests) > 0)...)
}

// serveMetrics serves t's and a's metrics until the returned function is
// called.
func (c *chain) serveMetrics(ctx context.Context, t *tracker.Tracker, a *agent.Agent, gate *egress.Gate) (stop func()) {
	return serveAgent(ctx, c.cfg.Metrics, c.cfg.Version, c.log, t, a, gate, c.table, c.cfg.Watch.PollInterval)
}
