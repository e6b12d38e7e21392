package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/asynclog"
	"github.com/stallmon/stallmon/peer"
)

type listenOptions struct {
	group       string
	iface       string
	keyFiles    []string
	timeout     time.Duration
	json        bool
	onFailover  string
	hookTimeout time.Duration
	failoverOn  string
	log         logOptions
	metrics     metricsOptions
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
	f.StringVar(&o.group, "group", heartbeat.DefaultGroup, "IPv4 multicast group to listen on, ADDR:PORT")
	f.StringVar(&o.iface, "interface", "", `interface to join the group on ("" lets the kernel choose from the routing table)`)
	f.StringArrayVar(&o.keyFiles, "key-file", nil, "heartbeat key file (id=N, secret=HEX); repeat to accept several keys during a rotation")
	f.DurationVar(&o.timeout, "timeout", peer.DefaultTimeout, "declare a node dead after this long without a valid heartbeat")
	f.BoolVar(&o.json, "json", false, "print one JSON object per line for each state change")
	f.StringVar(&o.onFailover, "on-failover", "", "command run with /bin/sh -c once per failure of a node")
	f.DurationVar(&o.hookTimeout, "hook-timeout", peer.DefaultHookTimeout, "kill the --on-failover command after this long, counted from the node's takeover deadline when that is later")
	f.StringVar(&o.failoverOn, "failover-on", "stalled",
		"fail a node over on stalled (STALLED, FENCED or silence) or only on fenced (FENCED or silence: for agents run with --late-return=resume)")
	f.StringVar(&o.log.format, "log-format", "text", "log format on stderr: text or json")
	f.StringVar(&o.log.level, "log-level", "info", "debug, info, warn or error")
	o.metrics.registerListen(f)
	return cmd
}

func (o *listenOptions) run(cmd *cobra.Command) error {
	// Everything the user can get wrong is checked before a socket is opened.
	log, err := o.log.newLogger(cmd.ErrOrStderr())
	if err != nil {
		return usageError(err)
	}
	defer o.log.close()
	group, err := heartbeat.ParseGroup(o.group)
	if err != nil {
		return usageError(fmt.Errorf("--group: %w", err))
	}
	if err := checkInterface(o.iface); err != nil {
		return usageError(err)
	}
	if o.timeout <= 0 {
		return usageError(fmt.Errorf("--timeout must be positive, got %v", o.timeout))
	}
	failoverOn, err := peer.ParseFailoverOn(o.failoverOn)
	if err != nil {
		return usageError(fmt.Errorf("--failover-on: %w", err))
	}
	if o.hookTimeout <= 0 {
		return usageError(fmt.Errorf("--hook-timeout must be positive, got %v", o.hookTimeout))
	}
	keys := make([]*heartbeat.Key, 0, len(o.keyFiles))
	for _, path := range o.keyFiles {
		k, err := heartbeat.LoadKeyFile(path)
		if err != nil {
			return usageError(fmt.Errorf("--key-file: %w", err))
		}
		keys = append(keys, k)
	}
	ring, err := heartbeat.NewKeyRing(keys...)
	if err != nil {
		return usageError(fmt.Errorf("--key-file: %w", err))
	}
	if ring.Len() == 0 {
		log.Warn("no --key-file given: heartbeats are accepted unauthenticated, and anyone who can reach the group can forge them")
	}

	recv, err := heartbeat.Listen(heartbeat.ReceiverConfig{Group: group, Interface: o.iface})
	if err != nil {
		return runtimeError(err)
	}
	defer recv.Close()
	// A stdout nobody reads must not hold up detection: the events are
	// queued, and dropped (counted in the log) if it stays blocked.
	events := asynclog.New(cmd.OutOrStdout(), asynclog.DefaultMax)
	events.OnDrop(func(n uint64) { log.Error("node state changes not printed", "lines", n, "reason", "stdout blocked") })
	defer events.Close(logFlush)
	printer := &listenPrinter{w: events, json: o.json, log: log}
	l, err := peer.NewListener(recv, peer.ListenerConfig{
		Keys:        ring,
		Detector:    peer.Config{Timeout: o.timeout, FailoverOn: failoverOn},
		OnEvent:     o.metrics.tap(printer.print),
		OnFailover:  o.onFailover,
		HookTimeout: o.hookTimeout,
		Logger:      log,
	})
	if err != nil {
		return usageError(err)
	}
	keyIDs := []int{} // []uint8 would be logged as a byte string
	for _, id := range ring.IDs() {
		keyIDs = append(keyIDs, int(id))
	}
	log.Info("listening", "group", group.String(), "interface", o.iface, "key_ids", keyIDs,
		"timeout_seconds", o.timeout.Seconds(), "on_failover", o.onFailover != "")
	stopMetrics := o.metrics.serveListener(cmd.Context(), log, l)
	runErr := l.Run(cmd.Context())
	stopMetrics()
	st := l.Stats()
	log.Info("stopped", "accepted", st.Accepted, "rejected", st.Rejected)
	if runErr != nil {
		return runtimeError(runErr)
	}
	return nil
}

// listenEvent is the --json line; its field names are part of the interface.
type listenEvent struct {
	Node          string `json:"node"`
	State         string `json:"state"`
	Previous      string `json:"previous"`
	Reason        string `json:"reason"`
	Failover      bool   `json:"failover"`
	Incarnation   uint64 `json:"incarnation"`
	Seq           uint64 `json:"seq"`
	Authenticated bool   `json:"authenticated"`
	Time          string `json:"time"`
}

type listenPrinter struct {
	w    io.Writer
	json bool
	log  *slog.Logger
	once sync.Once
}

func (p *listenPrinter) print(ev peer.Event) {
	var err error
	if p.json {
		err = json.NewEncoder(p.w).Encode(listenEvent{
			Node: ev.Node, State: ev.State.String(), Previous: ev.Previous.String(),
			Reason: ev.Reason, Failover: ev.Failover, Incarnation: ev.Incarnation, Seq: ev.Seq,
			Authenticated: ev.Authenticated, Time: ev.Time.UTC().Format(time.RFC3339Nano),
		})
	} else {
		_, err = fmt.Fprintf(p.w, "%s node=%q %s -> %s reason=%q failover=%t incarnation=%d seq=%d authenticated=%t\n",
			ev.Time.UTC().Format(time.RFC3339Nano), ev.Node, ev.Previous, ev.State,
			ev.Reason, ev.Failover, ev.Incarnation, ev.Seq, ev.Authenticated)
	}
	// A closed stdout (a pipe reader gone) must not stop failover hooks, so
	// it is reported once and otherwise ignored.
	if err != nil {
		p.once.Do(func() { p.log.Error("cannot print node state change", "err", err) })
	}
}
