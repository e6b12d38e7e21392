// Package demo tells stallmon's story on one machine: a sample service, the
// agent attached to it (the same pipeline as stallmon attach), a peer
// listening to the heartbeat, and a syscall of the service that hangs for
// real in the kernel.
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
	"time"

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
	Outcome    agent.Outcome
	ToStall    time.Duration // the agent's stall event
	ToFailover time.Duration // the peer's failover decision
	ToKill     time.Duration // the target confirmed dead
}

const (
	nodeID       = "demo-node"
	pollInterval = 100 * time.Millisecond
	hbInterval   = 250 * time.Millisecond
)

// Run plays the demo and returns what it measured. It fails if the story
// does not go as told: no stall, no failover, or no kill.
func Run(ctx context.Context, cfg Config) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	log := newLog(cfg.Out, start)
	say := func(format string, args ...any) { fmt.Fprintf(cfg.Out, "\n==> "+format+"\n", args...) }

	say("starting the sample service (its main thread will hang in read(2) later)")
	svc, err := workload.Start(ctx, cfg.Exe, nil, nil)
	if err != nil {
		return Result{}, fmt.Errorf("starting sample service: %w", err)
	}
	defer svc.Stop()
	fmt.Fprintf(cfg.Out, "    service pid %d\n", svc.PID)

	group, err := freeGroup()
	if err != nil {
		return Result{}, err
	}
	key, err := newKey()
	if err != nil {
		return Result{}, err
	}
	say("starting a peer that listens to the heartbeat on %v (loopback)", group)
	failovers, err := startPeer(ctx, group, key, log.With("component", "peer"))
	if err != nil {
		return Result{}, err
	}
	// The node's incarnations and lock, and the file the service fsyncs,
	// live in a directory of the demo's own, removed at the end: not in
	// the host's /var/lib/stallmon, and nothing left in /tmp.
	state, err := os.MkdirTemp("", "stallmon-demo")
	if err != nil {
		return Result{}, fmt.Errorf("state directory: %w", err)
	}
	defer os.RemoveAll(state)

	say("attaching stallmon: reads on files and devices get budget %v, kill_after %v; waits are unbounded", cfg.Budget, cfg.KillAfter)
	w, err := pipeline.Attach(pipeline.Config{
		Watch: pipeline.Watch{PollInterval: pollInterval, KillGrace: 5 * time.Second, LateReturn: "fence", Tracker: "tracepoint"},
		Table: pipeline.Table{Budget: &cfg.Budget, KillAfter: &cfg.KillAfter},
		Heartbeat: pipeline.Heartbeat{Group: group.String(), Interface: "lo", TTL: 0, Loopback: true,
			Interval: hbInterval, Key: key, Repeats: 3},
		Node:      pipeline.Node{ID: nodeID, StateDir: state},
		NodeFence: nodefence.Options{Mode: "none"},
		Logger:    log.With("component", "agent"),
	}, pipeline.Target{PID: svc.PID})
	if err != nil {
		return Result{}, fmt.Errorf("attaching: %w", err)
	}
	defer w.Close()
	outcome := make(chan agentResult, 1)
	go func() { o, err := w.Run(ctx); outcome <- agentResult{o, err} }()

	say("the service works: an idle pipe read, a busy getppid loop, fsync every 50ms; heartbeats flow")
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

	say("making the service's main worker hang in the kernel for real (read into a userfaultfd page)")
	if _, err := svc.Do("busy-stop"); err != nil {
		return Result{}, err
	}
	hung := time.Now()
	if _, err := svc.Do("uffd-hang"); err != nil {
		return Result{}, fmt.Errorf("making the service hang: %w", err)
	}

	var res Result
	deadline := time.After(cfg.KillAfter + 20*time.Second)
	for res.ToFailover == 0 || res.ToKill == 0 {
		select {
		case at := <-failovers:
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
			return res, errors.New("the story did not finish: no failover or no kill")
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	say("done: the peer failed over %v after the hang (budget %v), and the stuck service was killed %v after it (kill_after %v)",
		res.ToFailover.Round(time.Millisecond), cfg.Budget, res.ToKill.Round(time.Millisecond), cfg.KillAfter)
	return res, nil
}

type agentResult struct {
	outcome agent.Outcome
	err     error
}

// startPeer runs a listener in-process and returns a channel that gets
// the time of each failover it decides.
func startPeer(ctx context.Context, group *net.UDPAddr, key *heartbeat.Key, log *slog.Logger) (<-chan time.Time, error) {
	ring, err := heartbeat.NewKeyRing(key)
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	rx, err := heartbeat.Listen(heartbeat.ReceiverConfig{Group: group, Interface: "lo"})
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	failovers := make(chan time.Time, 4)
	l, err := peer.NewListener(rx, peer.ListenerConfig{
		Keys:     ring,
		Detector: peer.Config{Timeout: 2 * time.Second},
		// The listener logs every transition itself.
		OnEvent: func(ev peer.Event) {
			if ev.Failover {
				failovers <- time.Now()
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
	return failovers, nil
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

// freeGroup picks a group on a port free right now, so a demo never talks
// to a real cluster's group.
func freeGroup() (*net.UDPAddr, error) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("finding a free port: %w", err)
	}
	defer c.Close()
	return &net.UDPAddr{IP: net.IPv4(239, 255, 77, 78), Port: c.LocalAddr().(*net.UDPAddr).Port}, nil
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
