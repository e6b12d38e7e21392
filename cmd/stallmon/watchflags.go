package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/stallmon/stallmon/internal/agent"
	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/nodefence"
	"github.com/stallmon/stallmon/internal/selfprotect"
	"github.com/stallmon/stallmon/internal/sink"
	"github.com/stallmon/stallmon/internal/tracker"
)

// watchOptions are the flags of how a target is judged and announced,
// shared by attach and run.
type watchOptions struct {
	pollInterval time.Duration
	noKill       bool
	killGrace    time.Duration
	lateReturn   string
	tracker      string
	table        tableOptions
	hb           heartbeatOptions
	sinks        sinkOptions
	metrics      metricsOptions
	log          logOptions
}

func (o *watchOptions) register(f *pflag.FlagSet) {
	f.DurationVar(&o.pollInterval, "poll-interval", 100*time.Millisecond, "how often to read the tracker")
	f.BoolVar(&o.noKill, "no-kill", false, "never kill the target; only stop the heartbeat")
	f.DurationVar(&o.killGrace, "kill-grace", 5*time.Second, "how long a killed target may take to exit before it is reported unkillable")
	f.StringVar(&o.lateReturn, "late-return", "fence",
		"a stall that ends after STALLED was sent: fence (kill the target; never report it alive again) or resume (report it alive again)")
	f.StringVar(&o.tracker, "tracker", string(tracker.Tracepoint),
		"how syscalls are seen: tracepoint (every syscall's entry and exit: exact, at a cost on every syscall of the host) or sampled (each poll reads the threads' registers: no per-syscall cost, entry times known to within a poll); see README, Trackers")
	o.table.register(f)
	o.hb.register(f)
	o.sinks.register(f)
	o.metrics.registerAttach(f)
	f.StringVar(&o.log.format, "log-format", "text", "event log format: text or json")
	f.StringVar(&o.log.level, "log-level", "info", "debug, info, warn or error")
}

// monitorOptions are the tracker's options. At debug level every thread
// is listed at every poll, for the thread_started and thread_exited
// events; otherwise the threads that wait by design are only counted.
func (o *watchOptions) monitorOptions(table *budget.Table, log *slog.Logger) tracker.Options {
	opts := tracker.Options{LatencyHistogram: o.metrics.latencyHistogram, Kind: tracker.Kind(o.tracker)}
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		opts.Quiet = agent.Quiet(table)
	}
	return opts
}

// setUp checks the flags and returns the logger and the table.
func (o *watchOptions) setUp(cmd *cobra.Command) (*slog.Logger, *budget.Table, error) {
	log, err := o.log.newLogger(cmd.OutOrStdout())
	if err != nil {
		return nil, nil, usageError(err)
	}
	if o.pollInterval <= 0 {
		return nil, nil, usageError(fmt.Errorf("--poll-interval must be positive, got %v", o.pollInterval))
	}
	if o.killGrace <= 0 {
		return nil, nil, usageError(fmt.Errorf("--kill-grace must be positive, got %v", o.killGrace))
	}
	kind, err := tracker.ParseKind(o.tracker)
	if err != nil {
		return nil, nil, usageError(fmt.Errorf("--tracker: %w", err))
	}
	if kind == tracker.Sampled && o.metrics.latencyHistogram {
		return nil, nil, usageError(errors.New("--latency-histogram needs --tracker=tracepoint: the sampled tracker sees no syscall end"))
	}
	if _, err := agent.ParseLateReturn(o.lateReturn); err != nil {
		return nil, nil, usageError(fmt.Errorf("--late-return: %w", err))
	}
	table, err := o.table.load()
	if err != nil {
		return nil, nil, usageError(err)
	}
	return log, table, nil
}

// buildSinks builds the integrations the flags ask for, for target t
// (its NodeID is filled in here), and starts their hub: one for the life
// of the process, whatever the runs of a supervised service. The returned
// function lets the sinks apply the last verdict, for at most
// sinkFlush, and closes them. The hub is nil without integrations.
func (o *watchOptions) buildSinks(t sinkTarget, log *slog.Logger) (*sink.Hub, func(), error) {
	node, err := o.hb.node()
	if err != nil {
		return nil, func() {}, usageError(err)
	}
	t.NodeID = node
	sinks, closeSinks, err := o.sinks.build(t, log)
	if err != nil {
		return nil, func() {}, usageError(err)
	}
	if len(sinks) == 0 {
		return nil, func() {}, nil
	}
	hub := sink.Start(sinks, sink.Options{Logger: log})
	return hub, func() {
		hub.Stop(sinkFlush)
		closeSinks()
	}, nil
}

func (o *watchOptions) newAgent(mon *tracker.Tracker, table *budget.Table, hb *agent.HeartbeatConfig, integrations *sink.Hub, nf nodefence.Fencer, log *slog.Logger) (*agent.Agent, error) {
	lateReturn, err := agent.ParseLateReturn(o.lateReturn)
	if err != nil {
		return nil, err
	}
	return agent.New(mon, agent.Config{
		PollInterval: o.pollInterval,
		Table:        table,
		Kill:         !o.noKill,
		KillGrace:    o.killGrace,
		LateReturn:   lateReturn,
		Heartbeat:    hb,
		Integrations: integrations,
		NodeFence:    nf,
		Logger:       log,
	})
}

// protect applies selfprotect and says what it could not do: stallmon
// still works without, but the operator should know.
func protect(log *slog.Logger, adjustOOM bool) {
	r := selfprotect.Apply(adjustOOM)
	for _, err := range []error{r.LockErr, r.OOMAdjErr} {
		if err != nil {
			log.Warn(evSelfProtect, "err", err)
		}
	}
}

// evSelfProtect names what stallmon could not do to protect itself.
const evSelfProtect = "self_protect_failed"
