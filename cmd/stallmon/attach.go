package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stallmon/stallmon/agent"
	"github.com/stallmon/stallmon/cgroup"
	"github.com/stallmon/stallmon/monitor"
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
	var mon *monitor.Monitor
	switch {
	case o.cgroup != "":
		mon, err = monitor.AttachCgroup(o.cgroup, log, w.monitorOptions(table, log))
	case o.tree:
		mon, err = monitor.AttachTree(o.pid, log, w.monitorOptions(table, log))
	default:
		mon, err = monitor.AttachWith(o.pid, log, w.monitorOptions(table, log))
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
	log.Info(agent.EvAttached, "pid", o.pid, "tree", o.tree, "cgroup", o.cgroup, "node", node, "arch", monitor.Arch, "tracker", w.tracker,
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
	case errors.Is(err, monitor.ErrNoProcess), errors.Is(err, monitor.ErrZombie), errors.Is(err, monitor.ErrNotProcess),
		errors.Is(err, monitor.ErrNoCgroup):
		return usageError(err)
	}
	return runtimeError(err)
}

// service names the target for the default node id: the cgroup's path
// under the root, or the process's command name.
func (o *attachOptions) service() string {
	if o.cgroup != "" {
		if d, err := cgroup.Open(o.cgroup); err == nil {
			if root, err := cgroup.Root(); err == nil {
				if rel, err := filepath.Rel(root, d.Path); err == nil && rel != "." {
					return rel
				}
			}
		}
		return strings.Trim(filepath.Clean(o.cgroup), "/")
	}
	// The systemd unit, else the command name; not the pid: the node
	// keeps its id when the service restarts under a new one.
	if cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", o.pid)); err == nil {
		if unit := serviceUnit(string(cg)); unit != "" {
			return unit
		}
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", o.pid))
	if err != nil || len(bytes.TrimSpace(comm)) == 0 {
		return fmt.Sprintf("pid-%d", o.pid)
	}
	return string(bytes.TrimSpace(comm))
}

// serviceUnit is the systemd service a process runs in, from the cgroup v2
// line of /proc/PID/cgroup ("0::/system.slice/nginx.service"), "" when it
// is in none.
func serviceUnit(procCgroup string) string {
	for line := range strings.Lines(procCgroup) {
		path, ok := strings.CutPrefix(strings.TrimSpace(line), "0::")
		if !ok {
			continue
		}
		for dir := path; dir != "/" && dir != "." && dir != ""; dir = filepath.Dir(dir) {
			if base := filepath.Base(dir); strings.HasSuffix(base, ".service") {
				return base
			}
		}
	}
	return ""
}
