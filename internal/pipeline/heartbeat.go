package pipeline

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/agent"
	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/identity"
)

// buildHeartbeat checks c, claims node's id and opens the sender. It
// returns nil without a heartbeat, and the function that closes it.
func buildHeartbeat(c Heartbeat, node Node, service string, log *slog.Logger) (*agent.HeartbeatConfig, func(), error) {
	noop := func() {}
	if c.Off {
		return nil, noop, nil
	}
	if c.Interval <= 0 {
		return nil, noop, configErr(fmt.Errorf("--interval must be positive, got %v", c.Interval))
	}
	if c.Repeats < 1 {
		return nil, noop, configErr(fmt.Errorf("--repeats must be at least 1, got %d", c.Repeats))
	}
	group, err := heartbeat.ParseGroup(c.Group)
	if err != nil {
		return nil, noop, configErr(fmt.Errorf("--group: %w", err))
	}
	// Checked here rather than left to the sender, so that a typo is
	// refused before the node id is locked or a socket opened.
	if c.TTL < 0 || c.TTL > 255 {
		return nil, noop, configErr(fmt.Errorf("--ttl %d: want 0..255", c.TTL))
	}
	if err := CheckInterface(c.Interface); err != nil {
		return nil, noop, configErr(err)
	}
	id, err := identity.NodeID(node.ID, service)
	if err != nil {
		return nil, noop, configErr(err)
	}
	key := c.Key
	if c.KeyFile != "" {
		if key, err = heartbeat.LoadKeyFile(c.KeyFile); err != nil {
			return nil, noop, configErr(fmt.Errorf("--key-file: %w", err))
		}
	} else if key == nil {
		log.Warn(event.Unauthenticated, "detail", "no --key-file: heartbeats are unauthenticated and peers will say so")
	}
	n, err := identity.Claim(id, node.StateDir, log)
	if err != nil {
		return nil, noop, configErr(err)
	}
	s, err := heartbeat.NewSender(heartbeat.SenderConfig{Group: group, Interface: c.Interface, TTL: c.TTL, Loopback: c.Loopback})
	if err != nil {
		n.Release()
		return nil, noop, configErr(err) // already says "heartbeat sender: ..."
	}
	return &agent.HeartbeatConfig{Sender: s, Interval: c.Interval, NodeID: id, Key: key, Repeats: c.Repeats, Incarnation: n.Incarnation},
		func() { s.Close(); n.Release() }, nil
}

// CheckInterface refuses an --interface that names no interface, in one
// line that says so (net's own error carries a "route ip+net" prefix).
func CheckInterface(name string) error {
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
