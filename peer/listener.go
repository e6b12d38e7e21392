package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/event"
)

// Source yields raw datagrams. *heartbeat.Receiver is one; tests and
// embedders can supply their own (to drop packets for loss tests, say).
// Read must return once ctx is done.
type Source interface {
	Read(ctx context.Context) ([]byte, error)
}

var _ Source = (*heartbeat.Receiver)(nil)

// ListenerConfig configures a Listener. Only Source-independent settings
// live here; the zero value listens unauthenticated with default timeouts.
type ListenerConfig struct {
	// Keys accepted; an empty ring accepts only unauthenticated packets.
	Keys heartbeat.KeyRing
	// Detector tunes the failure detector (timeout, node limit).
	Detector Config
	// OnEvent receives every state transition, from the Run goroutine: it
	// should return quickly, since packets wait while it runs.
	OnEvent func(Event)
	// OnFailover, when set, is run as `/bin/sh -c OnFailover` once per
	// failover, with STALLMON_* variables describing the event.
	OnFailover string
	// HookTimeout bounds each OnFailover run, counted from the node's
	// takeover deadline when that is later; zero means DefaultHookTimeout.
	HookTimeout time.Duration
	// Expect names the nodes of the cluster: each is failed over if it is
	// not heard within the detector's timeout after Run starts, even if no
	// packet of it was ever heard (Detector.Expect).
	Expect []string
	// StateFile, when set, keeps each node's last-known state across
	// restarts: its incarnation and sequence (so a replay of a packet the
	// last run accepted is refused), its state, and whether its
	// incarnation was failed over (so a restart does not fail it over
	// again). Read by NewListener: a missing file is a first start, an
	// unreadable or corrupt one an error wrapping ErrStateFile, since
	// starting without it would accept replays and forget failovers.
	// Rewritten atomically and fsynced by one writer at a time, so that a
	// slow disk never delays detection: at once after a change of a
	// node's state, incarnation or failover, at most every quarter of the
	// timeout for sequence numbers alone (a crash can lose, and a replay
	// reuse, the packets of that interval), and once more when Run
	// returns. One listener per file: NewListener locks PATH.lock
	// beside it (an error wrapping ErrStateFileLocked if another holds
	// it) until Run's last save ends, or Close; it also removes the
	// temporary files of saves a crash cut short.
	StateFile string
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Listener ties a Source, the decoder, a Detector and the failover hook.
type Listener struct {
	src     Source
	keys    heartbeat.KeyRing
	det     *Detector
	onEvent func(Event)
	hooks   *hookRunner
	log     *slog.Logger
	now     func() time.Time
	tick    time.Duration
	running atomic.Bool

	mu     sync.Mutex
	stats  Stats // decode rejections; the detector counts the rest
	warned map[string]bool

	expect    []string
	statePath string
	restored  []stateRecord
	saveKick  chan struct{}
	// checkpoint is how long a change of sequence numbers alone may wait
	// to be saved; save writes the file (saveState, or a test's spy).
	checkpoint time.Duration
	save       func(path string, recs []stateRecord) error
	// lock keeps other listeners off the state file from NewListener
	// until Run's last save ends (or Close, for a Listener never run).
	lock     *os.File
	unlockMu sync.Mutex
}

// openState locks the state file at path, removes the saves a crash cut
// short, and reads it.
func openState(path string, maxNodes int) (*os.File, []stateRecord, error) {
	// Checked first, so that a missing directory reads as a bad state
	// file rather than a lock that could not be made.
	if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
		return nil, nil, badStateFile("listener state file %s: its directory is missing", path)
	}
	lock, err := lockStateFile(path)
	if err != nil {
		return nil, nil, err
	}
	if err := removeTempStates(path); err != nil {
		lock.Close()
		return nil, nil, err
	}
	recs, err := loadState(path, maxNodes)
	if err != nil {
		lock.Close()
		return nil, nil, err
	}
	return lock, recs, nil
}

// unlock releases the state file's lock, once.
func (l *Listener) unlock() {
	l.unlockMu.Lock()
	defer l.unlockMu.Unlock()
	if l.lock != nil {
		l.lock.Close()
		l.lock = nil
	}
}

// Close releases what NewListener took (the state file's lock) for a
// Listener that will not be run. Once Run has begun, Close does nothing:
// Run releases the lock itself after its last save.
func (l *Listener) Close() error {
	if l.running.Load() {
		return nil
	}
	l.unlock()
	return nil
}

type datagram struct {
	b  []byte
	at time.Time
}

// NewListener checks cfg and returns a Listener reading from src.
func NewListener(src Source, cfg ListenerConfig) (*Listener, error) {
	if src == nil {
		return nil, errors.New("peer listener: nil source")
	}
	det, err := NewDetector(cfg.Detector)
	if err != nil {
		return nil, fmt.Errorf("peer listener: %w", err)
	}
	if cfg.HookTimeout < 0 {
		return nil, fmt.Errorf("peer listener: negative hook timeout %v", cfg.HookTimeout)
	}
	if cfg.HookTimeout == 0 {
		cfg.HookTimeout = DefaultHookTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(Event) {}
	}
	for _, id := range cfg.Expect {
		if err := heartbeat.CheckNodeID(id); err != nil {
			return nil, fmt.Errorf("peer listener: expected node %q: %w", id, err)
		}
	}
	var restored []stateRecord
	var lock *os.File
	if cfg.StateFile != "" {
		maxNodes := cfg.Detector.MaxNodes
		if maxNodes == 0 {
			maxNodes = DefaultMaxNodes
		}
		if lock, restored, err = openState(cfg.StateFile, maxNodes); err != nil {
			return nil, err // it names the file
		}
	}
	l := &Listener{
		src: src, keys: cfg.Keys, det: det, onEvent: cfg.OnEvent,
		log: cfg.Logger, now: cfg.Now, warned: make(map[string]bool),
		// Checking ten times per timeout bounds the detection delay at 110%
		// of the timeout without measurable cost.
		tick:   max(det.Timeout()/10, 5*time.Millisecond),
		expect: cfg.Expect, statePath: cfg.StateFile, restored: restored,
		saveKick: make(chan struct{}, 1),
		// A quarter of the timeout: a crash can lose (and a replay
		// reuse) only that much of a node's packets, while a cluster of
		// 100 nodes at 2 packets a second no longer costs 200 fsynced
		// rewrites a second on the disks of the services watched.
		checkpoint: det.Timeout() / 4,
		save:       saveState,
		lock:       lock,
	}
	if cfg.OnFailover != "" {
		l.hooks = &hookRunner{command: cfg.OnFailover, timeout: cfg.HookTimeout, log: cfg.Logger}
	}
	return l, nil
}

// Run receives and judges packets until ctx is done, then waits for
// running failover hooks and returns nil. It returns an error only when
// the source fails. Bad packets are counted and dropped, never fatal.
func (l *Listener) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("peer listener: Run called twice")
	}
	// The last save releases the lock once it ends; before the saver
	// starts, returning does.
	unlockOnReturn := true
	defer func() {
		if unlockOnReturn {
			l.unlock()
		}
	}()
	if l.hooks != nil {
		defer l.hooks.wait()
	}
	start := l.now()
	if err := l.det.restore(l.restored, start); err != nil {
		return fmt.Errorf("peer listener: %w", err)
	}
	l.restored = nil
	if err := l.det.Expect(start, l.expect...); err != nil {
		return fmt.Errorf("peer listener: %w", err)
	}
	if l.statePath != "" {
		recs, loaded := l.det.snapshot()
		l.log.Info(event.ListenerStateLoaded, "path", l.statePath, "nodes", len(recs))
		saveCtx, stopSaving := context.WithCancel(ctx)
		var saver sync.WaitGroup
		saver.Go(func() { l.saveLoop(saveCtx, loaded) })
		// Deferred before the reader's stop, so it runs after it: the
		// last save holds every packet accepted.
		unlockOnReturn = false
		defer l.saveLast(stopSaving, &saver)
	}
	readCtx, stopReading := context.WithCancel(ctx)
	var reader sync.WaitGroup
	defer func() {
		stopReading()
		reader.Wait()
	}()
	packets := make(chan datagram, 64)
	readErr := make(chan error, 1)
	reader.Go(func() { l.read(readCtx, packets, readErr) })

	ticker := time.NewTicker(l.tick)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			return fmt.Errorf("peer listener: %w", err)
		case dg := <-packets:
			if l.handle(ctx, dg) {
				l.stateChanged()
			}
		case <-ticker.C:
			evs := l.det.Tick(l.now())
			for _, ev := range evs {
				l.emit(ctx, ev)
			}
			if len(evs) > 0 {
				l.stateChanged()
			}
		}
	}
}

// read stamps each datagram on arrival: the detector's timeout is about
// when we heard a node, not when the main loop got round to it.
func (l *Listener) read(ctx context.Context, out chan<- datagram, errc chan<- error) {
	for {
		b, err := l.src.Read(ctx)
		if err != nil {
			if ctx.Err() == nil {
				errc <- err
			}
			return
		}
		select {
		case out <- datagram{b: b, at: l.now()}:
		case <-ctx.Done():
			return
		}
	}
}

// handle judges one datagram and reports whether it was accepted.
func (l *Listener) handle(ctx context.Context, dg datagram) bool {
	p, err := heartbeat.Unmarshal(dg.b, l.keys)
	if err != nil {
		l.mu.Lock()
		l.stats.reject(err)
		l.mu.Unlock()
		l.logReject(err)
		return false
	}
	ev, changed, err := l.det.Observe(p, dg.at)
	if err != nil {
		l.logReject(err)
		return false
	}
	if changed {
		l.emit(ctx, ev)
	}
	return true
}

// maxLastSave bounds the save at stop: a hung file system must not keep
// the listener (and a systemctl stop) waiting for ever.
const maxLastSave = 5 * time.Second

// saveLast stops the saver and writes the state file one last time,
// after the saver's own write, so that an older snapshot never lands
// over it. It waits for both at most min(timeout, maxLastSave); past
// that it logs and returns, and the write goes on in the background (a
// restart knows the last state saved before).
func (l *Listener) saveLast(stopSaving context.CancelFunc, saver *sync.WaitGroup) {
	stopSaving()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Held until this save ends, even abandoned: another listener
		// must not take the file while an older state may still land.
		defer l.unlock()
		saver.Wait()
		if err := l.save(l.statePath, l.det.records()); err != nil {
			l.log.Error(event.ListenerStateSaveFailed, "path", l.statePath, "err", err)
		}
	}()
	wait := min(l.det.Timeout(), maxLastSave)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		l.log.Error(event.ListenerStateAbandoned, "path", l.statePath, "waited_seconds", wait.Seconds())
	}
}

// stateChanged asks the saver for a new state file; a save in progress
// takes the change in its next round.
func (l *Listener) stateChanged() {
	if l.statePath == "" {
		return
	}
	select {
	case l.saveKick <- struct{}{}:
	default:
	}
}

// saveLoop writes the state file after each change of a node's state,
// incarnation or failover, coalescing the changes that come while it
// writes; a change of sequence numbers alone is saved at the next
// checkpoint, at most one checkpoint interval after the last save. A
// failure is logged once per streak and retried at the next change: the
// listener goes on detecting (it would fail open if it stopped), only a
// restart would know less.
//
// saved is the version the file read at start holds.
func (l *Listener) saveLoop(ctx context.Context, saved saveVersion) {
	failing := false
	var lastSave time.Time
	var checkpoint <-chan time.Time // nil while no checkpoint is due
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.saveKick:
		case <-checkpoint:
			checkpoint = nil
		}
		recs, v := l.det.snapshot()
		if v == saved {
			continue
		}
		if v.changes == saved.changes {
			if wait := l.checkpoint - time.Since(lastSave); wait > 0 {
				if checkpoint == nil {
					checkpoint = time.After(wait)
				}
				continue
			}
		}
		err := l.save(l.statePath, recs)
		lastSave = time.Now()
		if err == nil {
			saved = v
		}
		switch {
		case err != nil && !failing:
			l.log.Error(event.ListenerStateSaveFailed, "path", l.statePath, "err", err)
		case err != nil:
			l.log.Debug(event.ListenerStateSaveFailed, "path", l.statePath, "err", err)
		case failing:
			l.log.Info(event.ListenerStateSaved, "path", l.statePath)
		}
		failing = err != nil
	}
}

// logReject warns on the first rejection of each kind and then drops to
// debug, so a flood of forged packets cannot flood the log as well.
func (l *Listener) logReject(err error) {
	reason := RejectReason(err)
	level := slog.LevelDebug
	if !l.warned[reason] {
		l.warned[reason] = true
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, event.PacketDropped, "reason", reason, "err", err)
}

func (l *Listener) emit(ctx context.Context, ev Event) {
	attrs := []any{"node", ev.Node, "state", ev.State, "previous", ev.Previous,
		"incarnation", ev.Incarnation, "seq", ev.Seq}
	if ev.Failover {
		l.log.Warn(event.NodeFailed, append(attrs, "reason", ev.Reason)...)
		if l.hooks != nil {
			// Started before OnEvent so that a Run stopped from inside
			// OnEvent still waits for this hook.
			l.hooks.start(ctx, ev)
		}
	} else {
		l.log.Info(event.NodeStateChanged, attrs...)
	}
	l.onEvent(ev)
}

// Stats returns accepted packets and rejections by reason, decoding and
// replay checks together.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.det.Stats().merge(l.stats)
}

// Nodes returns a snapshot of every node heard from.
func (l *Listener) Nodes() []NodeStatus { return l.det.Nodes() }
