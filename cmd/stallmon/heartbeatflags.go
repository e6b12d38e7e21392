package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"
	"unicode/utf8"

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
	dir, lock, err := o.claim(log, node)
	if err != nil {
		return nil, noop, err
	}
	s, err := heartbeat.NewSender(heartbeat.SenderConfig{Group: group, Interface: o.iface, TTL: o.ttl, Loopback: o.loopback})
	if err != nil {
		lock()
		return nil, noop, err // already says "heartbeat sender: ..."
	}
	incarnation := func() uint64 {
		now := time.Now()
		if dir != "" {
			inc, err := heartbeat.NextIncarnation(dir, node, now)
			if err == nil {
				return inc
			}
			log.Warn("incarnation not persisted: a clock stepped back across a restart makes peers ignore this node until it catches up", "err", err)
		}
		return uint64(now.UnixNano())
	}
	return &agent.HeartbeatConfig{Sender: s, Interval: o.interval, NodeID: node, Key: key, Repeats: o.repeats, Incarnation: incarnation},
		func() { s.Close(); lock() }, nil
}

// claim takes node's lock in the state directory and returns the
// directory, "" when it cannot be used. Without a state directory the
// agent still runs, on the clock's incarnations: a peer that rejects a
// stale incarnation takes the node for silent, the safe side.
func (o *heartbeatOptions) claim(log *slog.Logger, node string) (string, func(), error) {
	dir := o.stateDir
	if dir == "" {
		// systemd's StateDirectory= may list several; the first is ours.
		dir, _, _ = strings.Cut(os.Getenv("STATE_DIRECTORY"), ":")
	}
	if dir == "" {
		dir = "/var/lib/stallmon"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Warn("no state directory: incarnations follow the clock and node ids are not locked", "err", err)
		return "", func() {}, nil
	}
	l, err := heartbeat.LockNode(dir, node)
	switch {
	case errors.Is(err, heartbeat.ErrNodeInUse):
		return "", nil, fmt.Errorf("%w; give each agent on this host its own --node-id", err)
	case err != nil:
		log.Warn("node id not locked", "err", err)
		return dir, func() {}, nil
	}
	return dir, func() { l.Unlock() }, nil
}

// node is this node's name: --node-id, or HOST/SERVICE, so that two
// agents on one host watching different services never share a default.
func (o *heartbeatOptions) node() (string, error) {
	if o.nodeID != "" {
		if err := heartbeat.CheckNodeID(o.nodeID); err != nil {
			return "", fmt.Errorf("--node-id: %w", err)
		}
		return o.nodeID, nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("--node-id not given and no host name: %w", err)
	}
	if host == "" {
		return "", errors.New("--node-id not given and the host name is empty")
	}
	id := host
	if o.service != "" {
		id = host + "/" + o.service
	}
	return shortNodeID(id), nil
}

// shortNodeID fits a default node id to the wire's 64 bytes: a long one
// keeps its head and gets a hash of the whole, so that two long ids that
// differ only at the end stay apart. An id given with --node-id is never
// changed: it is checked instead.
func shortNodeID(id string) string {
	if len(id) <= heartbeat.MaxNodeIDLen {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	tail := "~" + hex.EncodeToString(sum[:4])
	head := id[:heartbeat.MaxNodeIDLen-len(tail)]
	for !utf8.ValidString(head) {
		head = head[:len(head)-1]
	}
	return head + tail
}

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
