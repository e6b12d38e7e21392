package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/stallmon/stallmon/internal/agent"
	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/identity"
	"github.com/stallmon/stallmon/internal/tracker"
)

type attachOptions struct {
	pid       int
	tree      bool
	cgroup    string
	watch     watchOptions
	nodeFence nodeFenceOptions
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
cgroup.kill.

Exit status: 0 the target exited on its own (or stallmon was stopped),
1 runtime failure, 2 bad usage or configuration, 3 target killed by
stallmon, 4 target killed but it outlived --kill-grace (unkillable) first.`,
		Example: `  sudo stallmon attach --pid 1234
  sudo stallmon attach --pid "$(pidof myservice)" --key-file /etc/stallmon/key --log-format json
  sudo stallmon attach --cgroup system.slice/nginx.service`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.IntVar(&o.pid, "pid", 0, "process id to watch")
	f.BoolVar(&o.tree, "tree", false, "with --pid: also watch every descendant of the process, present and future")
	f.StringVar(&o.cgroup, "cgroup", "", "cgroup v2 directory to watch, with its descendants: absolute, or relative to the cgroup v2 root")
	o.watch.register(f)
	o.nodeFence.register(f)
	cmd.MarkFlagsMutuallyExclusive("pid", "cgroup")
	cmd.MarkFlagsMutuallyExclusive("tree", "cgroup")
	cmd.MarkFlagsOneRequired("pid", "cgroup")
	return cmd
}

func (o *attachOptions) run(cmd *cobra.Command) error {
	w := &o.watch
	log, table, err := w.setUp(cmd)
	if err != nil {
		return err
	}
	// Deferred first so that it runs last, after everything that logs.
	defer w.log.close()
	protect(log, true)
	hb, closeHB, err := w.hb.build(log, o.service())
	if err != nil {
		return usageError(err)
	}
	defer closeHB()
	if o.pid == os.Getpid() {
		return usageError(fmt.Errorf("pid %d is stallmon itself", o.pid))
	}
	if err := o.nodeFence.validate(!w.noKill); err != nil {
		return usageError(err)
	}
	// Integrations are checked before anything is attached.
	target := sinkTarget{PID: o.pid}
	if o.cgroup != "" {
		// A cgroup that does not resolve is reported by the attach.
		if d, err := cgroup.Open(o.cgroup); err == nil {
			target.Cgroup = d.Path
		}
	}
	integrations, closeSinks, err := w.buildSinks(target, log)
	if err != nil {
		return err
	}
	defer closeSinks()
	var mon *tracker.Tracker
	switch {
	case o.cgroup != "":
		mon, err = tracker.Attach(tracker.Cgroup(o.cgroup), log, w.monitorOptions(table, log))
	case o.tree:
		mon, err = tracker.Attach(tracker.Tree(o.pid), log, w.monitorOptions(table, log))
	default:
		mon, err = tracker.Attach(tracker.Process(o.pid), log, w.monitorOptions(table, log))
	}
	if err != nil {
		return attachError(err)
	}
	defer mon.Close()
	nf, err := o.nodeFence.build(!w.noKill, log)
	if err != nil {
		return usageError(err)
	}
	if nf != nil {
		defer nf.Close()
	}
	a, err := w.newAgent(mon, table, hb, integrations, nf, log)
	if err != nil {
		return usageError(err)
	}
	defer w.metrics.serveAgent(cmd.Context(), log, mon, a, table, w.pollInterval)()
	node := ""
	if hb != nil {
		node = hb.NodeID
	}
	log.Info(agent.EvAttached, "pid", o.pid, "tree", o.tree, "cgroup", o.cgroup, "node", node, "arch", tracker.Arch, "tracker", w.tracker,
		"poll_interval_seconds", w.pollInterval.Seconds(), "kill", !w.noKill, "heartbeat", hb != nil, "sinks", sinkNames(integrations))

	outcome, err := a.Run(cmd.Context())
	if err != nil {
		return runtimeError(err)
	}
	switch outcome {
	case agent.TargetKilled:
		return &exitError{code: exitKilled}
	case agent.TargetUnkillable:
		return &exitError{code: exitUnkillable}
	}
	return nil
}

// attachError classifies an attach failure: a bad target is the user's.
func attachError(err error) error {
	switch {
	case errors.Is(err, tracker.ErrNoProcess), errors.Is(err, tracker.ErrZombie), errors.Is(err, tracker.ErrNotProcess),
		errors.Is(err, tracker.ErrNoCgroup):
		return usageError(err)
	}
	return runtimeError(err)
}

// service names the target for the default node id.
func (o *attachOptions) service() string {
	if o.cgroup != "" {
		return identity.ServiceOfCgroup(o.cgroup)
	}
	return identity.ServiceOfPID(o.pid)
}
