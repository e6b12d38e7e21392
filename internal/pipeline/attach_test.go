package pipeline

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/identity"
	"github.com/stallmon/stallmon/internal/integrations/systemd"
	"github.com/stallmon/stallmon/internal/nodefence"
	"github.com/stallmon/stallmon/internal/tracker"
)

// config is a Config that would attach for real, with its node's state in
// dir.
func config(dir, node string) Config {
	return Config{
		Watch: Watch{PollInterval: 100 * time.Millisecond, KillGrace: time.Second, LateReturn: "fence", Tracker: "tracepoint"},
		Heartbeat: Heartbeat{Group: "239.255.77.79:17779", Interface: "lo", TTL: 0, Loopback: true,
			Interval: 500 * time.Millisecond, Repeats: 3},
		Node:      Node{ID: node, StateDir: dir},
		NodeFence: nodefence.Options{Mode: "none"},
	}
}

// A bad option is refused as such, before the node id is taken: with
// another agent holding the id, the user still reads what is wrong.
func TestBadOptionsRefusedBeforeTheNodeLock(t *testing.T) {
	dir := t.TempDir()
	held, err := identity.LockNode(dir, "n1")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	for _, c := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.NodeFence.Mode = "" }, `--on-unkillable ""`},
		{func(c *Config) { c.NodeFence.Mode = "bogus" }, `--on-unkillable "bogus"`},
		{func(c *Config) { c.Sinks.Systemd = systemd.Options{SocketSet: true} }, "--notify-socket needs --systemd-notify"},
		{func(c *Config) { c.Sinks.Keepalived.File = "/nonexistent/dir/file" }, "--keepalived-file"},
		{func(c *Config) { c.Watch.Tracker = "kprobe" }, "--tracker"},
	} {
		cfg := config(dir, "n1")
		c.edit(&cfg)
		_, err := Attach(cfg, Target{PID: 4194304})
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Attach: %v, want a ConfigError naming %s", err, c.want)
		}
	}
}

// A target that cannot be watched is the user's error, and the failed
// attach leaves nothing behind: the node id is free again.
func TestFailedAttachReleasesTheNode(t *testing.T) {
	dir := t.TempDir()
	_, err := Attach(config(dir, "n2"), Target{PID: 4194304})
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, tracker.ErrNoProcess) {
		t.Fatalf("Attach to no process: %v, want a ConfigError for ErrNoProcess", err)
	}
	l, err := identity.LockNode(dir, "n2")
	if err != nil {
		t.Fatalf("the node id is still held after the failed attach: %v", err)
	}
	l.Unlock()
}

// A second agent cannot speak for a node another one holds.
func TestNodeInUseIsRefused(t *testing.T) {
	dir := t.TempDir()
	held, err := identity.LockNode(dir, "n3")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	_, err = Attach(config(dir, "n3"), Target{PID: 4194304})
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, identity.ErrNodeInUse) {
		t.Fatalf("Attach as a held node: %v, want a ConfigError for ErrNodeInUse", err)
	}
}
