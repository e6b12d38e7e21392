package pipeline

import (
	"errors"

	"github.com/stallmon/stallmon/internal/egress"

	"log/slog"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/integrations/etcd"
	"github.com/stallmon/stallmon/internal/integrations/keepalived"
	"github.com/stallmon/stallmon/internal/integrations/pacemaker"
	"github.com/stallmon/stallmon/internal/integrations/systemd"
	"github.com/stallmon/stallmon/internal/nodefence"
)

// Config is the whole chain, as stallmon's flags describe it. The demo
// fills one in code. Errors that a Config causes are *ConfigError.
type Config struct {
	Watch     Watch
	Table     Table
	Heartbeat Heartbeat
	Node      Node
	Sinks     Sinks
	Metrics   Metrics
	Egress    Egress
	// NodeFence takes the node down when a target stallmon killed does
	// not die (--on-unkillable), under attach and run alike.
	NodeFence nodefence.Options
	// SelfProtect locks stallmon's memory (and, for attach, lowers its
	// OOM score) before anything else.
	SelfProtect bool
	Logger      *slog.Logger
	// Version is what /metrics reports as stallmon_build_info.
	Version string
}

// Watch is how a target is judged.
type Watch struct {
	PollInterval time.Duration
	// NoKill never kills: a stall only stops the heartbeat.
	NoKill    bool
	KillGrace time.Duration
	// LateReturn is fence or resume (agent.ParseLateReturn).
	LateReturn string
	// Tracker is tracepoint or sampled (tracker.ParseKind).
	Tracker string
	// BPFFeatures is probe or minimal (tracker.ParseBPFFeatures).
	BPFFeatures string
}

// Table is the timeout table: a YAML file and its drop-ins, or the
// built-in table, with the default rule's budget and kill_after
// overridden when set.
type Table struct {
	// Path is --config: the file must be there.
	Path string
	// DefaultPath is read when Path is "": the file with its drop-ins if
	// it exists, else the built-in table with its drop-ins, if any. ""
	// (the demo): the built-in table alone.
	DefaultPath string
	Budget      *time.Duration
	KillAfter   *time.Duration
}

// Heartbeat is the multicast heartbeat's configuration.
type Heartbeat struct {
	Off       bool
	Group     string // ADDR:PORT
	Interface string // "" for the route's
	TTL       int
	Loopback  bool
	Interval  time.Duration
	// KeyFile is the HMAC key's file; a program that holds the key
	// already sets Key instead. Neither: unauthenticated, with a warning.
	KeyFile string
	Key     *heartbeat.Key
	Repeats int
}

// Node names this node on the wire and in the integrations.
type Node struct {
	// ID is --node-id; "" derives HOST/SERVICE from the target.
	ID string
	// StateDir holds incarnations and node locks; "" is
	// $STATE_DIRECTORY's first entry, else /var/lib/stallmon.
	StateDir string
}

// Sinks are the cluster-manager integrations beside the heartbeat.
type Sinks struct {
	Keepalived keepalived.Options
	Etcd       etcd.Options
	Pacemaker  pacemaker.Options
	Systemd    systemd.Options
}

// Metrics is the HTTP server of /metrics, /livez and /readyz.
type Metrics struct {
	// Addr is HOST:PORT; "" serves nothing.
	Addr string
	// Linger keeps serving once the target is gone, until one more
	// scrape, for at most this long.
	Linger           time.Duration
	LatencyHistogram bool
	BPFStats         bool
}

// DefaultEgressPinDir is where --gate-egress pins its gates.
const DefaultEgressPinDir = egress.DefaultPinDir

// ReleaseEgress removes the gate pinned for node under pinDir (stallmon
// release): the service's packets pass again.
func ReleaseEgress(pinDir, node string) error {
	if node == "" {
		return configErr(errors.New("--node-id is required: the gate is pinned under it"))
	}
	err := egress.Release(pinDir, node)
	if errors.Is(err, egress.ErrNotPinned) {
		return configErr(err)
	}
	return err
}

// Egress is --gate-egress: the service's own packets to these
// destinations leave the host only while the agent vouches for it.
type Egress struct {
	// Dests are PROTO:ADDR:PORT (egress.ParseDest); none: no gate.
	Dests []string
	// PinDir is where the gate is pinned, on a BPF file system; "" is
	// egress.DefaultPinDir.
	PinDir string
	// ReleaseOnExit removes the gate when the agent's run ended on
	// LEAVING or with the target gone; otherwise (and without it) the
	// gate stays until the next stallmon or a release.
	ReleaseOnExit bool
}
