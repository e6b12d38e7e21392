package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/spf13/pflag"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/agent"
	"github.com/stallmon/stallmon/internal/identity"
)

type heartbeatOptions struct {
	off      bool
	group    string
	iface    string
	ttl      int
	loopback bool
	interval time.Duration
	keyFile  string
	nodeID   string
	repeats  int
	stateDir string
	service  string // names the default node id: see node
}

func (o *heartbeatOptions) register(f *pflag.FlagSet) {
	f.BoolVar(&o.off, "no-heartbeat", false, "send no heartbeat (only report and fence)")
	f.StringVar(&o.group, "group", heartbeat.DefaultGroup, "multicast group ADDR:PORT for the heartbeat")
	f.StringVar(&o.iface, "interface", "", "interface to send the heartbeat on (default: the route's)")
	f.IntVar(&o.ttl, "ttl", heartbeat.DefaultTTL, "multicast TTL (1 stays on the local link)")
	f.BoolVar(&o.loopback, "multicast-loopback", true, "deliver the heartbeat to listeners on this host too")
	f.DurationVar(&o.interval, "interval", 500*time.Millisecond, "heartbeat interval")
	f.StringVar(&o.keyFile, "key-file", "", "HMAC-SHA256 key file (see docs/wire.md); without it heartbeats are unauthenticated")
	f.StringVar(&o.nodeID, "node-id", "", "node id in the heartbeat and the integrations (default: HOST/SERVICE, the host name and the watched systemd unit, command name or cgroup path)")
	f.StringVar(&o.stateDir, "state-dir", "", "where incarnation numbers persist and node ids are locked (default: $STATE_DIRECTORY, else /var/lib/stallmon)")
	f.IntVar(&o.repeats, "repeats", 3, "STALLED/FENCED/LEAVING packets sent per transition")
}

// build returns the heartbeat configuration, or nil with --no-heartbeat.
// service names what is watched, for the default node id.
func (o *heartbeatOptions) build(log *slog.Logger, service string) (*agent.HeartbeatConfig, func(), error) {
	o.service = service
	noop := func() {}
	if o.off {
		return nil, noop, nil
	}
	if o.interval <= 0 {
		return nil, noop, fmt.Errorf("--interval must be positive, got %v", o.interval)
	}
	if o.repeats < 1 {
		return nil, noop, fmt.Errorf("--repeats must be at least 1, got %d", o.repeats)
	}
	group, err := heartbeat.ParseGroup(o.group)
	if err != nil {
		return nil, noop, fmt.Errorf("--group: %w", err)
	}
	// Checked here rather than left to the sender, so that a typo is
	// refused before the node id is locked or a socket opened.
	if o.ttl < 0 || o.ttl > 255 {
		return nil, noop, fmt.Errorf("--ttl %d: want 0..255", o.ttl)
	}
	if err := checkInterface(o.iface); err != nil {
		return nil, noop, err
	}
	node, err := o.node()
	if err != nil {
		return nil, noop, err
	}
	var key *heartbeat.Key
	if o.keyFile != "" {
		if key, err = heartbeat.LoadKeyFile(o.keyFile); err != nil {
			return nil, noop, fmt.Errorf("--key-file: %w", err)
		}
	} else {
		log.Warn("no --key-file: heartbeats are unauthenticated and peers will say so")
	}
	n, err := identity.Claim(node, o.stateDir, log)
	if err != nil {
		return nil, noop, err
	}
	s, err := heartbeat.NewSender(heartbeat.SenderConfig{Group: group, Interface: o.iface, TTL: o.ttl, Loopback: o.loopback})
	if err != nil {
		n.Release()
		return nil, noop, err // already says "heartbeat sender: ..."
	}
	return &agent.HeartbeatConfig{Sender: s, Interval: o.interval, NodeID: node, Key: key, Repeats: o.repeats, Incarnation: n.Incarnation},
		func() { s.Close(); n.Release() }, nil
}

// node is this node's name: --node-id, or HOST/SERVICE.
func (o *heartbeatOptions) node() (string, error) { return identity.NodeID(o.nodeID, o.service) }

// checkInterface refuses an --interface that names no interface, in one
// line that says so (net's own error carries a "route ip+net" prefix).
func checkInterface(name string) error {
	if name == "" {
		return nil
	}
	if _, err := net.InterfaceByName(name); err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			err = oe.Err
		}
		return fmt.Errorf("--interface %q: %w", name, err)
	}
	return nil
}
