// Package demo tells stallmon's story on one machine: a sample service
// whose own heartbeat thread goes on beside a worker that hangs for real in
// the kernel, the agent attached to it (the same pipeline as stallmon
// attach) with --gate-egress on that heartbeat, the service's own peer,
// which knows nothing of stallmon, and a second peer listening to
// stallmon's heartbeat.
package demo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/agent"
	"github.com/stallmon/stallmon/internal/nodefence"
	"github.com/stallmon/stallmon/internal/pipeline"
	"github.com/stallmon/stallmon/internal/workload"
	"github.com/stallmon/stallmon/peer"
)

// Config shapes the demo. Exe is a binary that runs workload.Main when
// started with workload.EnvVar=1 (stallmon-demo itself).
type Config struct {
	Exe       string
	Budget    time.Duration
	KillAfter time.Duration
	Out       io.Writer
}

// Result is what the demo measured, from the moment the syscall hung.
type Result struct {
	Outcome       agent.Outcome
	ToOwnLast     time.Duration // the send of the last own heartbeat its peer heard
	ToOwnTakeover time.Duration // the service's own peer taking over
	ToFailover    time.Duration // stallmon's peer's failover decision
	ToKill        time.Duration // the target confirmed dead
}

const (
	nodeID       = "demo-node"
	pollInterval = 100 * time.Millisecond
	hbInterval   = 250 * time.Millisecond
	// The service's own heartbeat and its peer, as in the seed's system
	// (and internal/test/e2e/egress_test.go).
	ownInterval = 100 * time.Millisecond
	ownSilence  = 300 * time.Millisecond
)

// Run plays the demo and returns what it measured. It fails if the story
// does not go as told: a heartbeat not heard, no stall, the service's own
// peer not taking over before the kill, no failover, or no kill.
func Run(ctx context.Context, cfg Config) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	out := &lockedWriter{w: cfg.Out}
	log := newLog(out, start)
	say := func(format string, args ...any) { fmt.Fprintf(out, "\n==> "+format+"\n", args...) }

	// The node's incarnations and lock, the file the service fsyncs and
	// the gate's pin live in a directory of the demo's own, removed at
	// the end: not in the host's /var/lib/stallmon or /sys/fs/bpf, and
	// nothing left in /tmp.
	state, err := os.MkdirTemp("", "stallmon-demo")
	if err != nil {
		return Result{}, fmt.Errorf("state directory: %w", err)
	}
	defer os.RemoveAll(state)
	pins, err := mountBPFFS(filepath.Join(state, "bpf"))
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if err := unix.Unmount(pins, unix.MNT_DETACH); err != nil {
			fmt.Fprintf(out, "    unmounting the gate's BPF file system %s: %v\n", pins, err)
		}
	}()

	ownGroup, err := freeGroup(77)
	if err != nil {
		return Result{}, err
	}
	say("starting the sample service: its main worker will hang in read(2) later; its heartbeat thread sends to %v every %v (loopback)", ownGroup, ownInterval)
	svc, err := workload.Start(ctx, cfg.Exe, nil, nil)
	if err != nil {
		return Result{}, fmt.Errorf("starting sample service: %w", err)
	}
	defer svc.Stop()
	if _, err := svc.Do(fmt.Sprintf("heartbeat %v %v", ownGroup, ownInterval)); err != nil {
		return Result{}, fmt.Errorf("service heartbeat: %w", err)
	}
	fmt.Fprintf(out, "    service pid %d\n", svc.PID)

	group, err := freeGroup(78)
	if err != nil {
		return Result{}, err
	}
	key, err := newKey()
	if err != nil {
		return Result{}, err
	}
	dest := "udp:" + ownGroup.String()
	say("attaching stallmon --pid %d --gate-egress %s: the service's heartbeat leaves the host only while stallmon vouched for it within 2 polls (%v); reads on files and devices get budget %v, kill_after %v; waits are unbounded; stallmon's own heartbeat goes to %v",
		svc.PID, dest, 2*pollInterval, cfg.Budget, cfg.KillAfter, group)
	w, err := pipeline.Attach(pipeline.Config{
		Watch: pipeline.Watch{PollInterval: pollInterval, KillGrace: 5 * time.Second, LateReturn: "fence", Tracker: "tracepoint"},
		Table: pipeline.Table{Budget: &cfg.Budget, KillAfter: &cfg.KillAfter},
		Heartbeat: pipeline.Heartbeat{Group: group.String(), Interface: "lo", TTL: 0, Loopback: true,
			Interval: hbInterval, Key: key, Repeats: 3},
		Node: pipeline.Node{ID: nodeID, StateDir: state},
		// Released when the demo ends, so no gate outlives it.
		Egress:    pipeline.Egress{Dests: []string{dest}, PinDir: filepath.Join(pins, "egress"), ReleaseOnExit: true},
		NodeFence: nodefence.Options{Mode: "none"},
		Logger:    log.With("component", "agent"),
	}, pipeline.Target{PID: svc.PID})
	if err != nil {
		return Result{}, fmt.Errorf("attaching: %w", err)
	}
	defer w.Close()
	outcome := make(chan agentResult, 1)
	agentDone := make(chan struct{})
	go func() {
		defer close(agentDone)
		o, err := w.Run(ctx)
		outcome <- agentResult{o, err}
	}()
	// The agent stops before w.Close takes its tracker and gate away: a
	// demo cut short (Ctrl-C, a failed step) ends as stallmon stops.
	defer func() {
		cancel()
		<-agentDone
	}()

	// The peers start once the gate is in place: a peer that heard the
	// service before would count the moment between the gate's attach
	// (closed) and the agent's first poll (open) as silence.
	say("starting the service's own peer: a plain multicast listener on %v that knows nothing of stallmon and takes over after %v of silence", ownGroup, ownSilence)
	own, err := listenOwn(ctx, ownGroup, ownSilence, func(format string, args ...any) {
		fmt.Fprintf(out, "t=+%.3fs own peer: "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
	})
	if err != nil {
		return Result{}, err
	}
	defer own.close()
	say("starting a second peer: stallmon listen on stallmon's heartbeat %v", group)
	sp, err := startPeer(ctx, group, key, log.With("component", "peer"))
	if err != nil {
		return Result{}, err
	}

	heardBy := time.After(5 * time.Second)
	for _, c := range []struct {
		heard <-chan struct{}
		what  string
	}{{own.heard, "the service's own peer did not hear its heartbeat through the gate"}, {sp.alive, "stallmon's peer did not hear ALIVE"}} {
		select {
		case <-c.heard:
		case <-heardBy:
			return Result{}, errors.New(c.what)
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	say("the service works: an idle pipe read, a busy getppid loop, fsync every 50ms; both peers hear their heartbeat")
	for _, cmd := range []string{"pipe-wait", "busy", "fsync-loop " + state} {
		if _, err := svc.Do(cmd); err != nil {
			return Result{}, fmt.Errorf("service %s: %w", cmd, err)
		}
	}
	select {
	case <-time.After(3 * time.Second): // a pause for the reader, not a synchronisation
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	select {
	case <-own.takes:
		return Result{}, errors.New("the service's own peer took over before the hang: stallmon vouched late (see agent_late, egress_closed above)")
	default:
	}

	say("making the service's main worker hang in the kernel for real (read into a userfaultfd page); its heartbeat thread goes on")
	if _, err := svc.Do("busy-stop"); err != nil {
		return Result{}, err
	}
	hung, hungMono := time.Now(), monoNow()
	if _, err := svc.Do("uffd-hang"); err != nil {
		return Result{}, fmt.Errorf("making the service hang: %w", err)
	}

	var res Result
	deadline := time.After(cfg.KillAfter + 20*time.Second)
	for res.ToOwnTakeover == 0 || res.ToFailover == 0 || res.ToKill == 0 {
		select {
		case at := <-own.takes:
			res.ToOwnTakeover = at.Sub(hung)
			lastMono, _, _ := own.last()
			res.ToOwnLast = lastMono - hungMono
			if res.ToKill != 0 {
				return res, fmt.Errorf("the service's own peer took over only %v after the hang, after the kill (%v): its heartbeat went on while the service was stuck",
					res.ToOwnTakeover.Round(time.Millisecond), res.ToKill.Round(time.Millisecond))
			}
		case at := <-sp.failovers:
			res.ToFailover = at.Sub(hung)
		case r := <-outcome:
			if r.err != nil {
				return res, fmt.Errorf("agent: %w", r.err)
			}
			res.Outcome, res.ToKill = r.outcome, time.Since(hung)
			if r.outcome != agent.TargetKilled {
				return res, fmt.Errorf("agent ended with outcome %d, want the target killed", r.outcome)
			}
		case <-deadline:
			return res, errors.New("the story did not finish: no takeover by the service's own peer, no failover or no kill")
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	if _, seq, after := own.last(); after > 0 {
		return res, fmt.Errorf("the service's own heartbeat was heard again after its peer took over (seq %d): the gate reopened on a fenced service", seq)
	}
	say("done: the service's own peer took over %v after the hang (its last heartbeat left %v after it; budget %v, poll %v, silence %v); stallmon's peer failed over %v after it; the stuck service was killed %v after it (kill_after %v)",
		res.ToOwnTakeover.Round(time.Millisecond), res.ToOwnLast.Round(time.Millisecond), cfg.Budget, pollInterval, ownSilence,
		res.ToFailover.Round(time.Millisecond), res.ToKill.Round(time.Millisecond), cfg.KillAfter)
	return res, nil
}

type agentResult struct {
	outcome agent.Outcome
	err     error
}

// stallmonPeer is what the demo hears from its stallmon listener.
type stallmonPeer struct {
	alive     chan struct{}  // closed when the node is first heard ALIVE
	failovers chan time.Time // the time of each failover it decides
}

// startPeer runs a listener in-process.
func startPeer(ctx context.Context, group *net.UDPAddr, key *heartbeat.Key, log *slog.Logger) (*stallmonPeer, error) {
	ring, err := heartbeat.NewKeyRing(key)
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	rx, err := heartbeat.Listen(heartbeat.ReceiverConfig{Group: group, Interface: "lo"})
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	sp := &stallmonPeer{alive: make(chan struct{}), failovers: make(chan time.Time, 4)}
	var once sync.Once
	l, err := peer.NewListener(rx, peer.ListenerConfig{
		Keys:     ring,
		Detector: peer.Config{Timeout: 2 * time.Second},
		// The listener logs every transition itself.
		OnEvent: func(ev peer.Event) {
			if ev.State == peer.Alive {
				once.Do(func() { close(sp.alive) })
			}
			if ev.Failover {
				sp.failovers <- time.Now()
			}
		},
		OnFailover: `echo "taking over from $STALLMON_NODE ($STALLMON_REASON)"`,
		Logger:     log,
	})
	if err != nil {
		rx.Close()
		return nil, fmt.Errorf("peer: %w", err)
	}
	go func() {
		defer rx.Close()
		l.Run(ctx)
	}()
	return sp, nil
}

// newKey is a fresh key the agent signs with and the peer checks: the
// demo's heartbeat is authenticated, as a real cluster's should be.
func newKey() (*heartbeat.Key, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("making the heartbeat key: %w", err)
	}
	return &heartbeat.Key{ID: 1, Secret: secret}, nil
}

// freeGroup picks group 239.255.77.last on a port free right now, so a
// demo never talks to a real cluster's group.
func freeGroup(last byte) (*net.UDPAddr, error) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("finding a free port: %w", err)
	}
	defer c.Close()
	return &net.UDPAddr{IP: net.IPv4(239, 255, 77, last), Port: c.LocalAddr().(*net.UDPAddr).Port}, nil
}

// mountBPFFS mounts a BPF file system of the demo's own at dir for the
// gate's pin: unmounted at the end, it takes whatever is pinned there
// with it, even after a demo that failed half-way.
func mountBPFFS(dir string) (string, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("gate pin directory: %w", err)
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		return "", fmt.Errorf("mounting a BPF file system at %s for the gate: %w", dir, err)
	}
	return dir, nil
}

func monoNow() time.Duration {
	var ts unix.Timespec
	// CLOCK_MONOTONIC, the clock the heartbeat stamps its sends with,
	// cannot fail with a valid pointer.
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

// lockedWriter keeps the own peer's lines and the log's whole: both
// write from their own goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// newLog prints events as text with the time since the demo started.
func newLog(w io.Writer, start time.Time) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.String("t", fmt.Sprintf("+%.3fs", a.Value.Time().Sub(start).Seconds()))
			}
			return a
		},
	}))
}
