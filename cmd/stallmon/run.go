package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/stallmon/stallmon/internal/agent"
	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/supervise"
	"github.com/stallmon/stallmon/internal/tracker"
)

type runOptions struct {
	watch        watchOptions
	restart      string
	maxRestarts  int
	restartDelay time.Duration
	cgroupParent string
	stopTimeout  time.Duration
}

func newRunCmd() *cobra.Command {
	o := runOptions{}
	cmd := &cobra.Command{
		Use:   "run [flags] -- COMMAND [ARGS...]",
		Short: "Run a service under watch from its first instruction, fence it when stuck, restart it by policy",
		Long: `run starts COMMAND in a cgroup of its own (below stallmon's, or
--cgroup-parent), which stallmon watches before the service's first
instruction, as attach --cgroup would. SIGTERM, SIGINT and SIGHUP are
forwarded to the service's main process. When the main process exits, what
it left in the cgroup is killed. After an exit, a crash or a kill by
stallmon, --restart decides whether it starts again (with a delay that
doubles at each restart in a row); each start is a new incarnation on the
wire.

Exit status: the service's last one (its code, or 128+signal when a signal
ended it), 1 when stallmon itself failed, 2 bad usage or configuration.`,
		Example: `  sudo stallmon run --restart=on-failure -- /usr/bin/redis-server /etc/redis/redis.conf
  sudo stallmon run --key-file /etc/stallmon/key --log-format json -- nginx -g 'daemon off;'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args) },
	}
	f := cmd.Flags()
	o.watch.register(f)
	f.StringVar(&o.restart, "restart", "never", "never, on-failure (a non-zero exit, a signal, or stallmon's kill) or always")
	f.IntVar(&o.maxRestarts, "max-restarts", 10, "give up after this many restarts (0: no limit)")
	f.DurationVar(&o.restartDelay, "restart-delay", time.Second, "delay before the first restart; it doubles at each restart in a row, up to 32 times")
	f.StringVar(&o.cgroupParent, "cgroup-parent", "", "cgroup v2 directory to make the service's cgroup in (default: stallmon's own)")
	f.DurationVar(&o.stopTimeout, "stop-timeout", 10*time.Second, "after a forwarded SIGTERM or SIGINT, kill the service if it is still there this long after")
	return cmd
}

func (o *runOptions) run(cmd *cobra.Command, args []string) error {
	w := &o.watch
	log, table, err := w.setUp(cmd)
	if err != nil {
		return err
	}
	// Deferred first so that it runs last, after everything that logs.
	defer w.log.close()
	// The service's processes would inherit a lowered OOM score.
	protect(log, false)
	policy, err := supervise.ParsePolicy(o.restart)
	if err != nil {
		return usageError(err)
	}
	if o.maxRestarts < 0 || o.restartDelay <= 0 || o.stopTimeout <= 0 {
		return usageError(fmt.Errorf("--max-restarts must be 0 or more, --restart-delay and --stop-timeout positive, got %d, %v and %v",
			o.maxRestarts, o.restartDelay, o.stopTimeout))
	}
	hb, closeHB, err := w.hb.build(log, filepath.Base(args[0]))
	if err != nil {
		return usageError(err)
	}
	defer closeHB()
	// stallmon is the service's main process here: sinks that name the
	// service by pid (systemd) name stallmon's own.
	integrations, closeSinks, err := w.buildSinks(sinkTarget{}, log)
	if err != nil {
		return err
	}
	defer closeSinks()
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(signals)

	watch := func(path string) (supervise.Watcher, error) {
		mon, err := tracker.Attach(tracker.EmptyCgroup(path), log, w.monitorOptions(table, log))
		if err != nil {
			return nil, attachError(err)
		}
		a, err := w.newAgent(mon, table, hb, integrations, nil, log)
		if err != nil {
			mon.Close()
			return nil, usageError(err)
		}
		node := ""
		if hb != nil {
			node = hb.NodeID
		}
		log.Info(agent.EvAttached, "cgroup", path, "node", node, "arch", tracker.Arch, "tracker", w.tracker,
			"poll_interval_seconds", w.pollInterval.Seconds(), "kill", !w.noKill, "heartbeat", hb != nil,
			"sinks", sinkNames(integrations))
		return &serviceWatch{ctx: cmd.Context(), log: log, mon: mon, agent: a, table: table, opts: w}, nil
	}
	st, err := supervise.Run(cmd.Context(), supervise.Config{
		Command: args, CgroupParent: o.cgroupParent, Restart: policy, MaxRestarts: o.maxRestarts,
		RestartDelay: o.restartDelay, StableAfter: 32 * o.restartDelay, Signals: signals, StopTimeout: o.stopTimeout,
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Logger: log,
	}, watch)
	if err != nil {
		if _, ok := err.(*exitError); ok {
			return err
		}
		return runtimeError(err)
	}
	if code := st.ExitCode(); code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// serviceWatch is one incarnation's agent, with its metrics.
type serviceWatch struct {
	ctx   context.Context
	log   *slog.Logger
	mon   *tracker.Tracker
	agent *agent.Agent
	table *budget.Table
	opts  *watchOptions
}

func (s *serviceWatch) Started() { s.mon.Started() }

func (s *serviceWatch) Run(ctx context.Context) (agent.Outcome, error) {
	defer s.opts.metrics.serveAgent(s.ctx, s.log, s.mon, s.agent, s.table, s.opts.pollInterval)()
	return s.agent.Run(ctx)
}

func (s *serviceWatch) Close() error { return s.mon.Close() }
