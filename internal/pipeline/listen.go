package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/asynclog"
	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/metrics"
	"github.com/stallmon/stallmon/peer"
)

// Listener is the peer side's chain: the group, the keys, the failure
// detector and its hook, the printed state changes and the metrics.
type Listener struct {
	Group       string
	Interface   string
	KeyFiles    []string
	Timeout     time.Duration
	FailoverOn  string // stalled or fenced (peer.ParseFailoverOn)
	OnFailover  string
	HookTimeout time.Duration
	// Expect names the cluster's nodes (--expect); StateFile keeps what
	// the listener knows of each across restarts (--state-file).
	Expect    []string
	StateFile string
	// Out gets one line per node state change; JSON makes it one JSON
	// object per line.
	Out         io.Writer
	JSON        bool
	MetricsAddr string
	Logger      *slog.Logger
	Version     string
}

// Listen follows every node heard on the group until ctx is done
// (stallmon listen).
func Listen(ctx context.Context, c Listener) error {
	log := c.Logger
	// Everything the user can get wrong is checked before a socket is opened.
	group, err := heartbeat.ParseGroup(c.Group)
	if err != nil {
		return configErr(fmt.Errorf("--group: %w", err))
	}
	if err := CheckInterface(c.Interface); err != nil {
		return configErr(err)
	}
	if c.Timeout <= 0 {
		return configErr(fmt.Errorf("--timeout must be positive, got %v", c.Timeout))
	}
	failoverOn, err := peer.ParseFailoverOn(c.FailoverOn)
	if err != nil {
		return configErr(fmt.Errorf("--failover-on: %w", err))
	}
	if c.HookTimeout <= 0 {
		return configErr(fmt.Errorf("--hook-timeout must be positive, got %v", c.HookTimeout))
	}
	for _, id := range c.Expect {
		if err := heartbeat.CheckNodeID(id); err != nil {
			return configErr(fmt.Errorf("--expect %q: %w", id, err))
		}
	}
	keys := make([]*heartbeat.Key, 0, len(c.KeyFiles))
	for _, path := range c.KeyFiles {
		k, err := heartbeat.LoadKeyFile(path)
		if err != nil {
			return configErr(fmt.Errorf("--key-file: %w", err))
		}
		keys = append(keys, k)
	}
	ring, err := heartbeat.NewKeyRing(keys...)
	if err != nil {
		return configErr(fmt.Errorf("--key-file: %w", err))
	}
	if ring.Len() == 0 {
		log.Warn(event.Unauthenticated, "detail", "no --key-file given: heartbeats are accepted unauthenticated, and anyone who can reach the group can forge them")
	}

	// A stdout nobody reads must not hold up detection: the events are
	// queued, and dropped (counted in the log) if it stays blocked.
	events := asynclog.New(c.Out, asynclog.DefaultMax)
	events.OnDrop(func(n uint64) {
		log.Error(event.LogDropped, "lines", n, "reason", "stdout blocked", "detail", "node state changes not printed")
	})
	defer events.Close(asynclog.FlushTimeout)
	printer := &statePrinter{w: events, json: c.JSON, log: log}
	failovers := metrics.NewFailovers()
	src := &lateSource{}
	l, err := peer.NewListener(src, peer.ListenerConfig{
		Keys:        ring,
		Detector:    peer.Config{Timeout: c.Timeout, FailoverOn: failoverOn},
		OnEvent:     failovers.Tap(printer.print),
		OnFailover:  c.OnFailover,
		HookTimeout: c.HookTimeout,
		Expect:      c.Expect,
		StateFile:   c.StateFile,
		Logger:      log,
	})
	if errors.Is(err, peer.ErrStateFileLocked) {
		return configErr(fmt.Errorf("--state-file: %w", err))
	}
	if errors.Is(err, peer.ErrStateFile) {
		return configErr(fmt.Errorf("%w; not starting: without it, a replay of a packet the last run accepted would be accepted again and failed-over incarnations forgotten; move it aside to start afresh (nodes named by --expect are still failed over after --timeout)", err))
	}
	if err != nil {
		return configErr(err)
	}
	// Releases the state file's lock if Run is never reached; after Run,
	// Run has released it.
	defer l.Close()
	recv, err := heartbeat.Listen(heartbeat.ReceiverConfig{Group: group, Interface: c.Interface})
	if err != nil {
		return err
	}
	defer recv.Close()
	src.Source = recv
	keyIDs := []int{} // []uint8 would be logged as a byte string
	for _, id := range ring.IDs() {
		keyIDs = append(keyIDs, int(id))
	}
	log.Info(event.Listening, "group", group.String(), "interface", c.Interface, "key_ids", keyIDs,
		"timeout_seconds", c.Timeout.Seconds(), "on_failover", c.OnFailover != "", "expect", c.Expect, "state_file", c.StateFile)
	stopMetrics := serveListener(ctx, c.MetricsAddr, c.Version, log, l, failovers)
	runErr := l.Run(ctx)
	stopMetrics()
	st := l.Stats()
	log.Info(event.ListenerStopped, "accepted", st.Accepted, "rejected", st.Rejected)
	return runErr
}

// stateLine is the --json line; its field names are part of the interface.
type stateLine struct {
	Node          string `json:"node"`
	State         string `json:"state"`
	Previous      string `json:"previous"`
	Reason        string `json:"reason"`
	Failover      bool   `json:"failover"`
	Incarnation   uint64 `json:"incarnation"`
	Seq           uint64 `json:"seq"`
	Authenticated bool   `json:"authenticated"`
	Time          string `json:"time"`
}

type statePrinter struct {
	w    io.Writer
	json bool
	log  *slog.Logger
	once sync.Once
}

func (p *statePrinter) print(ev peer.Event) {
	var err error
	if p.json {
		err = json.NewEncoder(p.w).Encode(stateLine{
			Node: ev.Node, State: ev.State.String(), Previous: ev.Previous.String(),
			Reason: ev.Reason, Failover: ev.Failover, Incarnation: ev.Incarnation, Seq: ev.Seq,
			Authenticated: ev.Authenticated, Time: ev.Time.UTC().Format(time.RFC3339Nano),
		})
	} else {
		_, err = fmt.Fprintf(p.w, "%s node=%q %s -> %s reason=%q failover=%t incarnation=%d seq=%d authenticated=%t\n",
			ev.Time.UTC().Format(time.RFC3339Nano), ev.Node, ev.Previous, ev.State,
			ev.Reason, ev.Failover, ev.Incarnation, ev.Seq, ev.Authenticated)
	}
	// A closed stdout (a pipe reader gone) must not stop failover hooks, so
	// it is reported once and otherwise ignored.
	if err != nil {
		p.once.Do(func() {
			p.log.Error(event.PrintFailed, "err", err, "detail", "cannot print node state changes; failover hooks go on")
		})
	}
}
