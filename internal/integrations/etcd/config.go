package etcd

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults for Config's zero values.
const (
	DefaultPrefix      = "/stallmon/"
	DefaultTTL         = MinTTL
	DefaultHookTimeout = 10 * time.Second
	// MinTTL is the shortest lease etcd grants with its default election
	// timeout (1 s): it raises anything shorter to 2 s.
	MinTTL = 2 * time.Second
)

// Config says where and how the sink vouches for this node.
type Config struct {
	// Endpoints are etcd's client URLs.
	Endpoints []string
	// Prefix starts every key the sink writes; it ends with "/".
	Prefix string
	// NodeID names this node: its key is Prefix + "nodes/" + NodeID.
	NodeID string
	// TTL is the lease's time to live, whole seconds: how long the key
	// outlives the last Alive verdict (or stallmon itself).
	TTL time.Duration
	// Election, if set, is the election (a key prefix, as etcdctl elect
	// and concurrency.Election name it) the sink campaigns in while
	// the target is alive.
	Election string
	// OnElected and OnDemoted are run by /bin/sh -c when this node wins
	// or loses the election; either may be empty.
	OnElected, OnDemoted string
	// HookTimeout bounds one hook run; the hook's process group is
	// killed then.
	HookTimeout time.Duration
	Logger      *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.HookTimeout == 0 {
		c.HookTimeout = DefaultHookTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports what is wrong with c, with defaults applied.
func (c Config) Validate() error {
	c.setDefaults()
	if len(c.Endpoints) == 0 {
		return errors.New("no etcd endpoints")
	}
	for _, e := range c.Endpoints {
		if e == "" || strings.ContainsAny(e, " \t") {
			return fmt.Errorf("etcd endpoint %q: want HOST:PORT or a URL", e)
		}
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		return fmt.Errorf("prefix %q must end with /", c.Prefix)
	}
	if c.NodeID == "" {
		return errors.New("empty node id")
	}
	if c.TTL < MinTTL {
		return fmt.Errorf("lease TTL %v: etcd grants no less than %v", c.TTL, MinTTL)
	}
	if c.TTL%time.Second != 0 {
		return fmt.Errorf("lease TTL %v: etcd counts whole seconds", c.TTL)
	}
	if c.Election == "" && (c.OnElected != "" || c.OnDemoted != "") {
		return errors.New("election hooks given without an election")
	}
	if c.HookTimeout < 0 {
		return fmt.Errorf("hook timeout %v is negative", c.HookTimeout)
	}
	return nil
}

// NodeKey is the key that says this node's target is alive.
func (c Config) NodeKey() string {
	c.setDefaults()
	return c.Prefix + "nodes/" + c.NodeID
}
