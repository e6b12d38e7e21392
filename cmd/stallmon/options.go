package main

import (
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/asynclog"
	"github.com/stallmon/stallmon/internal/integrations/etcd"
	"github.com/stallmon/stallmon/internal/integrations/pacemaker"
	"github.com/stallmon/stallmon/internal/integrations/systemd"
	"github.com/stallmon/stallmon/internal/pipeline"
	"github.com/stallmon/stallmon/internal/tracker"
)

// watchOptions are the flags attach and run share: how a target is
// judged and announced. They fill a pipeline.Config.
type watchOptions struct {
	cfg     pipeline.Config
	table   tableOptions
	log     logOptions
	metrics addrFlag
	flags   *pflag.FlagSet
}

// registerNodeFence adds --on-unkillable and the watchdog's flags
// (attach and run).
func (o *watchOptions) registerNodeFence(f *pflag.FlagSet) {
	nf := &o.cfg.NodeFence
	f.StringVar(&nf.Mode, "on-unkillable", "none",
		"none, reboot (restart the node at once, no sync) or watchdog (stop feeding --watchdog-device); DANGEROUS, see docs/fencing.md")
	f.StringVar(&nf.WatchdogDevice, "watchdog-device", "/dev/watchdog", "watchdog fed while stallmon works (with --on-unkillable=watchdog)")
	f.DurationVar(&nf.WatchdogTimeout, "watchdog-timeout", 10*time.Second, "watchdog timeout to set (with --on-unkillable=watchdog)")
}

func (o *watchOptions) register(f *pflag.FlagSet) {
	o.flags = f
	c := &o.cfg
	f.DurationVar(&c.Watch.PollInterval, "poll-interval", 100*time.Millisecond, "how often to read the tracker")
	f.BoolVar(&c.Watch.NoKill, "no-kill", false, "never kill the target; only stop the heartbeat")
	f.DurationVar(&c.Watch.KillGrace, "kill-grace", 5*time.Second, "how long a killed target may take to exit before it is reported unkillable")
	f.StringVar(&c.Watch.LateReturn, "late-return", "fence",
		"a stall that ends after STALLED was sent: fence (kill the target; never report it alive again) or resume (report it alive again)")
	f.StringVar(&c.Watch.Tracker, "tracker", string(tracker.Tracepoint),
		"how syscalls are seen: tracepoint (every syscall's entry and exit: exact, at a cost on every syscall of the host) or sampled (each poll reads the threads' registers: no per-syscall cost, entry times known to within a poll); see docs/trackers.md")
	f.StringVar(&c.Watch.BPFFeatures, "bpf-features", string(tracker.ProbeFeatures),
		"which BPF object to load: probe (the full one, or the minimal one where the kernel lacks what the full one needs and the minimal one replaces) or minimal (always the minimal one: more cost per syscall; for a kernel that refuses the full one); see docs/kernels.md")
	o.table.register(f)

	hb := &c.Heartbeat
	f.BoolVar(&hb.Off, "no-heartbeat", false, "send no heartbeat (only report and fence)")
	f.StringVar(&hb.Group, "group", heartbeat.DefaultGroup, "multicast group ADDR:PORT for the heartbeat")
	f.StringVar(&hb.Interface, "interface", "", "interface to send the heartbeat on (default: the route's)")
	f.IntVar(&hb.TTL, "ttl", heartbeat.DefaultTTL, "multicast TTL (1 stays on the local link)")
	f.BoolVar(&hb.Loopback, "multicast-loopback", true, "deliver the heartbeat to listeners on this host too")
	f.DurationVar(&hb.Interval, "interval", 500*time.Millisecond, "heartbeat interval")
	f.StringVar(&hb.KeyFile, "key-file", "", "HMAC-SHA256 key file (see docs/wire.md); without it heartbeats are unauthenticated")
	f.IntVar(&hb.Repeats, "repeats", 3, "STALLED/FENCED/LEAVING packets sent per transition")
	f.StringVar(&c.Node.ID, "node-id", "", "node id in the heartbeat and the integrations (default: HOST/SERVICE, the host name and the watched systemd unit, command name or cgroup path)")
	f.StringVar(&c.Node.StateDir, "state-dir", "", "where incarnation numbers persist and node ids are locked (default: $STATE_DIRECTORY, else /var/lib/stallmon)")

	s := &c.Sinks
	f.StringVar(&s.Keepalived.File, "keepalived-file", "",
		"file for a keepalived track_file (weight 0): 0 while the service is alive, non-zero otherwise (see deploy/keepalived)")
	f.StringSliceVar(&s.Etcd.Endpoints, "etcd-endpoints", nil,
		"etcd client URLs, comma-separated: keep PREFIXnodes/NODE-ID alive there while the service is (empty: off)")
	f.StringVar(&s.Etcd.Prefix, "etcd-prefix", etcd.DefaultPrefix, "prefix of the keys stallmon writes in etcd (ends with /)")
	f.DurationVar(&s.Etcd.TTL, "etcd-ttl", etcd.DefaultTTL,
		"etcd lease TTL, whole seconds, at least 2s: how long the key outlives a stall or stallmon itself")
	f.StringVar(&s.Etcd.Election, "etcd-election", "",
		"campaign in this etcd election (etcdctl elect NAME) while the service is alive; resign at a stall")
	f.StringVar(&s.Etcd.OnElected, "on-elected", "",
		"command (/bin/sh -c) run when this node wins --etcd-election; env STALLMON_EVENT, STALLMON_NODE, STALLMON_ELECTION, STALLMON_STATE, STALLMON_PID, STALLMON_REASON")
	f.StringVar(&s.Etcd.OnDemoted, "on-demoted", "", "command (/bin/sh -c) run when this node loses --etcd-election (same env)")
	f.DurationVar(&s.Etcd.HookTimeout, "etcd-hook-timeout", etcd.DefaultHookTimeout,
		"kill an --on-elected/--on-demoted command (its process group) after this long")
	f.BoolVar(&s.Pacemaker.On, "pacemaker", false,
		"set a Pacemaker node attribute from the verdict: green while the target is alive, red otherwise and when stallmon stops")
	f.StringVar(&s.Pacemaker.Attribute, "pacemaker-attribute", pacemaker.DefaultAttribute,
		"node attribute for --pacemaker, one per stallmon on a node: a #health- name acts with node-health-strategy=migrate-on-red, another needs a location rule")
	f.StringVar(&s.Pacemaker.AttrdUpdater, "attrd-updater", "", "attrd_updater program for --pacemaker (default: found on PATH)")
	f.BoolVar(&s.Systemd.On, "systemd-notify", false,
		"send WATCHDOG=trigger for the service to systemd when a stall begins (see docs/integrations.md)")
	f.StringVar(&s.Systemd.Socket, "notify-socket", "",
		"systemd notify socket, a path or @abstract-name (default $NOTIFY_SOCKET, else "+systemd.DefaultSocket+")")

	e := &c.Egress
	f.StringArrayVar(&e.Dests, "gate-egress", nil,
		"PROTO:ADDR:PORT (udp:239.1.2.3:5000, udp:[ff02::1]:5000, tcp:192.0.2.2:7000), repeatable: the service's own packets there leave the host only while stallmon vouches for it, at most two poll intervals at a time (see docs/egress.md)")
	f.StringVar(&e.PinDir, "gate-egress-pin-dir", pipeline.DefaultEgressPinDir,
		"directory on a BPF file system where the --gate-egress gate is pinned, under the node id")
	f.BoolVar(&e.ReleaseOnExit, "gate-egress-release-on-exit", false,
		"remove the --gate-egress gate when stallmon stops on LEAVING or after its service is gone; after a stop on a stall or in silence it stays, shut (by default it always stays, until the next stallmon or 'stallmon release')")

	m := &c.Metrics
	o.metrics = addrFlag(pipeline.DefaultAttachMetricsAddr)
	f.Var(&o.metrics, "metrics-addr", `serve Prometheus metrics on HOST:PORT ("" disables)`)
	f.BoolVar(&m.LatencyHistogram, "latency-histogram", false,
		"measure the target's syscall latencies in the kernel for stallmon_syscall_latency_seconds (costs the target tens of ns per syscall)")
	f.BoolVar(&m.BPFStats, "bpf-stats", false,
		"turn on the kernel's BPF run time accounting while attached, for stallmon_bpf_program_* (costs every BPF program on the machine two clock reads per run)")
	f.DurationVar(&m.Linger, "metrics-linger", 0,
		"once the target is gone, keep serving metrics until one more scrape, for at most this long, so the kill is scraped")
	o.log.register(f, "event log format: text or json")
}

// config is the pipeline's configuration once the flags are parsed.
func (o *watchOptions) config(log *asynclog.Log) pipeline.Config {
	c := o.cfg
	c.Table = o.table.table()
	c.Sinks.Pacemaker.AttributeSet = o.flags.Changed("pacemaker-attribute")
	c.Sinks.Pacemaker.AttrdUpdaterSet = o.flags.Changed("attrd-updater")
	c.Sinks.Systemd.SocketSet = o.flags.Changed("notify-socket")
	c.Metrics.Addr = string(o.metrics)
	c.SelfProtect = true
	c.Logger = log.Logger
	c.Version = buildVersion()
	return c
}

// shippedTablePath is where the packages install the timeout table.
const shippedTablePath = "/etc/stallmon/budgets.yaml"

// defaultTablePath is read without --config. Tests point it elsewhere:
// this package's by assignment, the e2e harness's stallmon with -X, so
// that a host's own table never leaks into them.
var defaultTablePath = shippedTablePath

// tableOptions are the flags that shape the timeout table, shared by
// attach, run and budgets so all agree on the effective table.
type tableOptions struct {
	config    string
	budget    time.Duration
	killAfter time.Duration
	flags     *pflag.FlagSet
}

func (o *tableOptions) register(f *pflag.FlagSet) {
	o.flags = f
	f.StringVar(&o.config, "config", "",
		"YAML timeout table `FILE`, then the *.yaml drop-ins in FILE.d/ (FILE without .yaml) in lexical order (default: "+
			shippedTablePath+" if it exists, else the built-in table; either way with the drop-ins in "+
			strings.TrimSuffix(shippedTablePath, ".yaml")+".d/); see 'stallmon budgets' and docs/budgets.md")
	f.DurationVar(&o.budget, "budget", 0, "override the default rule's budget (syscalls without a rule of their own)")
	f.DurationVar(&o.killAfter, "kill-after", 0, "override the default rule's kill_after; 0 means never kill")
}

func (o *tableOptions) table() pipeline.Table {
	t := pipeline.Table{Path: o.config, DefaultPath: defaultTablePath}
	if o.flags.Changed("budget") {
		t.Budget = &o.budget
	}
	if o.flags.Changed("kill-after") {
		t.KillAfter = &o.killAfter
	}
	return t
}

// logOptions are the event log's flags.
type logOptions struct {
	format string
	level  string
}

func (o *logOptions) register(f *pflag.FlagSet, formatHelp string) {
	f.StringVar(&o.format, "log-format", "text", formatHelp)
	f.StringVar(&o.level, "log-level", "info", "debug, info, warn or error")
}

// addrFlag is a HOST:PORT checked when parsed, so a typo is a usage
// error (exit 2) before anything is attached.
type addrFlag string

func (a *addrFlag) String() string { return string(*a) }
func (a *addrFlag) Type() string   { return "host:port" }
func (a *addrFlag) Set(s string) error {
	if s != "" {
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			return fmt.Errorf("want HOST:PORT or empty, got %q", s)
		}
	}
	*a = addrFlag(s)
	return nil
}

// newLogger builds the event log on w; a bad flag is a usage error.
func (o *logOptions) newLogger(w io.Writer) (*asynclog.Log, error) {
	log, err := asynclog.NewLogger(w, o.format, o.level)
	if err != nil {
		return nil, usageError(err)
	}
	return log, nil
}
