package main

import (
	"github.com/spf13/cobra"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/pipeline"
	"github.com/stallmon/stallmon/peer"
)

type listenOptions struct {
	cfg     pipeline.Listener
	log     logOptions
	metrics addrFlag
}

func newListenCmd() *cobra.Command {
	o := listenOptions{}
	cmd := &cobra.Command{
		Use:   "listen",
		Short: "Watch cluster peers' heartbeats and run a command when one fails",
		Long: `listen joins the heartbeat multicast group and follows every node it hears.
A node is alive while valid heartbeats arrive, stalled or fenced when its
agent says so, and dead after --timeout without a valid heartbeat. Each state
change is printed to stdout (one JSON object per line with --json). The
--on-failover command runs once per failure, that is on the change from alive
to stalled, fenced or dead, with STALLMON_NODE, STALLMON_REASON,
STALLMON_STATE, STALLMON_INCARNATION and more in its environment.

Without --key-file, heartbeats are accepted unauthenticated: anyone who can
reach the group can forge them. Forged, replayed and malformed packets are
dropped and counted. The wire format is described in docs/wire.md.`,
		Example: `  stallmon listen --key-file /etc/stallmon/heartbeat.key --interface eth0 \
      --on-failover '/usr/local/sbin/takeover "$STALLMON_NODE"'
  stallmon listen --json --key-file new.key --key-file old.key | jq .`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	c := &o.cfg
	f.StringVar(&c.Group, "group", heartbeat.DefaultGroup, "IPv4 multicast group to listen on, ADDR:PORT")
	f.StringVar(&c.Interface, "interface", "", `interface to join the group on ("" lets the kernel choose from the routing table)`)
	f.StringArrayVar(&c.KeyFiles, "key-file", nil, "heartbeat key file (id=N, secret=HEX); repeat to accept several keys during a rotation")
	f.DurationVar(&c.Timeout, "timeout", peer.DefaultTimeout, "declare a node dead after this long without a valid heartbeat")
	f.BoolVar(&c.JSON, "json", false, "print one JSON object per line for each state change")
	f.StringVar(&c.OnFailover, "on-failover", "", "command run with /bin/sh -c once per failure of a node")
	f.DurationVar(&c.HookTimeout, "hook-timeout", peer.DefaultHookTimeout, "kill the --on-failover command after this long, counted from the node's takeover deadline when that is later")
	f.StringVar(&c.FailoverOn, "failover-on", "stalled",
		"fail a node over on stalled (STALLED, FENCED or silence) or only on fenced (FENCED or silence: for agents run with --late-return=resume)")
	f.StringArrayVar(&c.Expect, "expect", nil, "a node id of the cluster, repeated for each: one not heard within --timeout of the start is failed over, even if never heard")
	f.StringVar(&c.StateFile, "state-file", "", `keep each node's last-known state here across restarts (sequence numbers, failovers done); "" keeps it in memory only`)
	o.log.register(f, "log format on stderr: text or json")
	o.metrics = addrFlag(pipeline.DefaultListenMetricsAddr)
	f.Var(&o.metrics, "metrics-addr", `serve Prometheus metrics on HOST:PORT ("" disables)`)
	return cmd
}

func (o *listenOptions) run(cmd *cobra.Command) error {
	log, err := o.log.newLogger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer log.Close()
	c := o.cfg
	c.Out = cmd.OutOrStdout()
	c.MetricsAddr = string(o.metrics)
	c.Logger = log.Logger
	c.Version = buildVersion()
	if err := pipeline.Listen(cmd.Context(), c); err != nil {
		return pipelineError(err)
	}
	return nil
}
