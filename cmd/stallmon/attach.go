package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/stallmon/stallmon/agent"
	"github.com/stallmon/stallmon/monitor"
)

type attachOptions struct {
	pid          int
	pollInterval time.Duration
	budget       time.Duration
	log          logOptions
}

func newAttachCmd() *cobra.Command {
	o := attachOptions{}
	cmd := &cobra.Command{
		Use:   "attach --pid PID",
		Short: "Watch a running process for syscalls stuck in the kernel",
		Long: `attach loads stallmon's BPF tracker for one process and polls it. Every
syscall in flight for longer than --budget is reported as a "stall" event,
and as "stall_cleared" once it returns. stallmon exits 0 when the target exits.`,
		Example: `  sudo stallmon attach --pid 1234
  sudo stallmon attach --pid "$(pidof myservice)" --budget 2s --log-format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.IntVar(&o.pid, "pid", 0, "process id to watch (required)")
	f.DurationVar(&o.pollInterval, "poll-interval", 100*time.Millisecond, "how often to read the tracker")
	f.DurationVar(&o.budget, "budget", 5*time.Second, "report syscalls in flight for longer than this")
	f.StringVar(&o.log.format, "log-format", "text", "event log format: text or json")
	f.StringVar(&o.log.level, "log-level", "info", "debug, info, warn or error")
	_ = cmd.MarkFlagRequired("pid")
	return cmd
}

func (o *attachOptions) run(cmd *cobra.Command) error {
	log, err := o.log.newLogger(cmd.OutOrStdout())
	if err != nil {
		return usageError(err)
	}
	if o.pollInterval <= 0 {
		return usageError(fmt.Errorf("--poll-interval must be positive, got %v", o.pollInterval))
	}
	if o.budget <= 0 {
		return usageError(fmt.Errorf("--budget must be positive, got %v", o.budget))
	}

	if o.pid == os.Getpid() {
		return usageError(fmt.Errorf("pid %d is stallmon itself", o.pid))
	}
	mon, err := monitor.Attach(o.pid, log)
	switch {
	case errors.Is(err, monitor.ErrNoProcess), errors.Is(err, monitor.ErrZombie), errors.Is(err, monitor.ErrNotProcess):
		return usageError(err)
	case err != nil:
		return runtimeError(err)
	}
	defer mon.Close()

	budget := o.budget
	a, err := agent.New(mon, agent.Config{
		PollInterval: o.pollInterval,
		Budget:       func(monitor.Thread) (time.Duration, bool) { return budget, true },
		Logger:       log,
	})
	if err != nil {
		return usageError(err)
	}
	log.Info(agent.EvAttached, "pid", o.pid, "arch", monitor.Arch,
		"poll_interval_seconds", o.pollInterval.Seconds(), "budget_seconds", o.budget.Seconds())

	err = a.Run(cmd.Context())
	switch {
	case errors.Is(err, agent.ErrTargetExited):
		return nil
	case cmd.Context().Err() != nil:
		log.Info("detached", "pid", o.pid, "reason", "signal")
		return nil
	default:
		return runtimeError(err)
	}
}
