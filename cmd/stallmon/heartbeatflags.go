package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/stallmon/stallmon/agent"
	"github.com/stallmon/stallmon/heartbeat"
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
}

func (o *heartbeatOptions) register(f *pflag.FlagSet) {
	f.BoolVar(&o.off, "no-heartbeat", false, "send no heartbeat (only report and fence)")
	f.StringVar(&o.group, "group", heartbeat.DefaultGroup, "multicast group ADDR:PORT for the heartbeat")
	f.StringVar(&o.iface, "interface", "", "interface to send the heartbeat on (default: the route's)")
	f.IntVar(&o.ttl, "ttl", heartbeat.DefaultTTL, "multicast TTL (1 stays on the local link)")
	f.BoolVar(&o.loopback, "multicast-loopback", true, "deliver the heartbeat to listeners on this host too")
	f.DurationVar(&o.interval, "interval", 500*time.Millisecond, "heartbeat interval")
	f.StringVar(&o.keyFile, "key-file", "", "HMAC-SHA256 key file (see docs/wire.md); without it heartbeats are unauthenticated")
	f.StringVar(&o.nodeID, "node-id", "", "node id in the heartbeat (default: the host name)")
	f.IntVar(&o.repeats, "repeats", 3, "STALLED/FENCED/LEAVING packets sent per transition")
}

// build returns the heartbeat configuration, or nil with --no-heartbeat.
func (o *heartbeatOptions) build(log *slog.Logger) (*agent.HeartbeatConfig, func(), error) {
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
	s, err := heartbeat.NewSender(heartbeat.SenderConfig{Group: group, Interface: o.iface, TTL: o.ttl, Loopback: o.loopback})
	if err != nil {
		return nil, noop, fmt.Errorf("heartbeat sender: %w", err)
	}
	return &agent.HeartbeatConfig{Sender: s, Interval: o.interval, NodeID: node, Key: key, Repeats: o.repeats},
		func() { s.Close() }, nil
}

// node is this node's name: --node-id, or the host name.
func (o *heartbeatOptions) node() (string, error) {
	if o.nodeID != "" {
		return o.nodeID, nil
	}
	node, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("--node-id not given and no host name: %w", err)
	}
	if node == "" {
		return "", errors.New("--node-id not given and the host name is empty")
	}
	return node, nil
}
