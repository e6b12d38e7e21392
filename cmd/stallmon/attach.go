package main

import (
	"github.com/spf13/cobra"

	"github.com/stallmon/stallmon/internal/agent"
	"github.com/stallmon/stallmon/internal/pipeline"
)

type attachOptions struct {
	target pipeline.Target
	watch  watchOptions
}

func newAttachCmd() *cobra.Command {
	o := attachOptions{}
	cmd := &cobra.Command{
		Use:   "attach (--pid PID | --cgroup PATH)",
		Short: "Watch a process or a cgroup; heartbeat while healthy, kill it if a syscall never returns",
		Long: `attach loads stallmon's BPF tracker for one process, or for every process of
a cgroup v2 directory and its descendants (--cgroup), and polls it. Each
thread is judged against the timeout table (see 'stallmon budgets'): over a
budget the target is stalled and the multicast heartbeat stops; over
kill_after it is killed, a process through its pidfd, a cgroup through
cgroup.kill (before Linux 5.14: frozen, and each member killed through a
pidfd).

Stopping (SIGTERM, SIGINT) never contradicts the heartbeat: LEAVING only
when a last poll finds the target healthy; a stall already announced as
STALLED is fenced first (killed, FENCED), one stallmon will not kill
stays STALLED, and a target it cannot vouch for gets silence
(docs/wire.md, Stopping).

Exit status: 0 the target exited on its own (or stallmon was stopped),
1 runtime failure (also a kernel without a feature stallmon needs, named;
'stallmon doctor' lists them), 2 bad usage or configuration, 3 target killed by
stallmon (also by a stop that fenced a declared stall), 4 target killed
but it outlived --kill-grace (unkillable) first, also when the fence of
a stop gives up on it.`,
		Example: `  sudo stallmon attach --pid 1234
  sudo stallmon attach --pid "$(pidof myservice)" --key-file /etc/stallmon/key --log-format json
  sudo stallmon attach --cgroup system.slice/nginx.service`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.IntVar(&o.target.PID, "pid", 0, "process id to watch")
	f.BoolVar(&o.target.Tree, "tree", false, "with --pid: also watch every descendant of the process, present and future")
	f.StringVar(&o.target.Cgroup, "cgroup", "", "cgroup v2 directory to watch, with its descendants: absolute, or relative to the cgroup v2 root")
	o.watch.register(f)
	o.watch.registerNodeFence(f)
	cmd.MarkFlagsMutuallyExclusive("pid", "cgroup")
	cmd.MarkFlagsMutuallyExclusive("tree", "cgroup")
	cmd.MarkFlagsOneRequired("pid", "cgroup")
	return cmd
}

func (o *attachOptions) run(cmd *cobra.Command) error {
	log, err := o.watch.log.newLogger(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	// Closed last, after everything that logs.
	defer log.Close()
	w, err := pipeline.Attach(o.watch.config(log), o.target)
	if err != nil {
		return pipelineError(err)
	}
	defer w.Close()
	outcome, err := w.Run(cmd.Context())
	if err != nil {
		return pipelineError(err)
	}
	switch outcome {
	case agent.TargetKilled:
		return &exitError{code: exitKilled}
	case agent.TargetUnkillable:
		return &exitError{code: exitUnkillable}
	}
	return nil
}
