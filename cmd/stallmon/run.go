package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/stallmon/stallmon/internal/pipeline"
)

type runOptions struct {
	service pipeline.Service
	watch   watchOptions
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

Stopping (SIGTERM, SIGINT) forwards the signal, kills the service after
--stop-timeout, and gives it --kill-grace more to die: a service that
SIGKILL cannot end (a thread stuck in the kernel) is then left behind,
named in a service_abandoned event, and stallmon exits 5, silent on the
heartbeat. A later stallmon run in the same --cgroup-parent waits for
that cgroup to empty before it starts the service (service_waiting_old,
/readyz 503): never an instance beside a live one. --on-unkillable acts
as under attach when a service stallmon killed does not die.

Exit status: the service's last one (its code, or 128+signal when a signal
ended it), 1 when stallmon itself failed (also on a kernel without a
feature it needs, named), 2 bad usage or configuration,
5 the service outlived its stop and was abandoned.`,
		Example: `  sudo stallmon run --restart=on-failure -- /usr/bin/redis-server /etc/redis/redis.conf
  sudo stallmon run --key-file /etc/stallmon/key --log-format json -- nginx -g 'daemon off;'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args) },
	}
	f := cmd.Flags()
	o.watch.register(f)
	o.watch.registerNodeFence(f)
	s := &o.service
	f.StringVar(&s.Restart, "restart", "never", "never, on-failure (a non-zero exit, a signal, or stallmon's kill) or always")
	f.IntVar(&s.MaxRestarts, "max-restarts", 10, "give up after this many restarts (0: no limit)")
	f.DurationVar(&s.RestartDelay, "restart-delay", time.Second, "delay before the first restart; it doubles at each restart in a row, up to 32 times")
	f.StringVar(&s.CgroupParent, "cgroup-parent", "", "cgroup v2 directory to make the service's cgroup in (default: stallmon's own)")
	f.DurationVar(&s.StopTimeout, "stop-timeout", 10*time.Second, "after a forwarded SIGTERM or SIGINT, kill the service if it is still there this long after")
	return cmd
}

func (o *runOptions) run(cmd *cobra.Command, args []string) error {
	log, err := o.watch.log.newLogger(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	// Closed last, after everything that logs.
	defer log.Close()
	s := o.service
	s.Command = args
	s.Stdin, s.Stdout, s.Stderr = os.Stdin, os.Stdout, os.Stderr
	st, err := pipeline.Supervise(cmd.Context(), o.watch.config(log), s)
	if err != nil {
		return pipelineError(err)
	}
	if st.Abandoned {
		return &exitError{code: exitAbandoned}
	}
	if code := st.ExitCode(); code != 0 {
		return &exitError{code: code}
	}
	return nil
}
