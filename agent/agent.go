// Package agent runs stallmon's poll loop: it takes snapshots from the
// tracker, judges each in-flight syscall against its budget, and reports.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/stallmon/stallmon/monitor"
)

// BudgetFunc returns how long thread t's current syscall may take before
// it counts as a stall; ok=false means it may wait forever.
type BudgetFunc func(t monitor.Thread) (budget time.Duration, ok bool)

// Config configures an Agent.
type Config struct {
	PollInterval time.Duration
	Budget       BudgetFunc
	Logger       *slog.Logger
}

// Agent watches one attached process.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	mon     *monitor.Monitor
	stalls  *stallSet
	threads map[int]bool
}

// New returns an agent for an attached monitor. It does not own mon.
func New(mon *monitor.Monitor, cfg Config) (*Agent, error) {
	if cfg.PollInterval <= 0 {
		return nil, fmt.Errorf("poll interval must be positive, got %v", cfg.PollInterval)
	}
	if cfg.Budget == nil {
		return nil, errors.New("no budget function")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Agent{cfg: cfg, log: cfg.Logger, mon: mon, stalls: newStallSet()}, nil
}

// ErrTargetExited is returned by Run when the watched process exits.
var ErrTargetExited = errors.New("target exited")

// Run polls until ctx is done or the target exits (ErrTargetExited).
func (a *Agent) Run(ctx context.Context) error {
	tick := time.NewTicker(a.cfg.PollInterval)
	defer tick.Stop()
	if err := a.poll(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-a.mon.Done():
			a.targetExited()
			return ErrTargetExited
		case <-tick.C:
			if err := a.poll(); err != nil {
				return err
			}
		}
	}
}

func (a *Agent) poll() error {
	snap, err := a.mon.Snapshot()
	if err != nil {
		return fmt.Errorf("taking snapshot: %w", err)
	}
	a.trackThreads(snap)
	var over []monitor.Thread
	for _, t := range snap.InFlight() {
		if b, ok := a.cfg.Budget(t); ok && t.Elapsed > b {
			over = append(over, t)
		}
	}
	started, cleared := a.stalls.update(over, snap.Taken)
	for _, st := range started {
		a.event(slog.LevelWarn, EvStall, threadAttrs(snap.PID, st.thread)...)
	}
	for _, st := range cleared {
		attrs := threadAttrs(snap.PID, st.thread)
		// The syscall returned between this poll and the last one that
		// saw it: its duration is at least the elapsed time seen then.
		attrs = append(attrs, slog.Float64("duration_seconds", st.thread.Elapsed.Seconds()))
		a.event(slog.LevelInfo, EvStallCleared, attrs...)
	}
	return nil
}

func (a *Agent) trackThreads(snap monitor.Snapshot) {
	now := make(map[int]bool, len(snap.Threads))
	for _, t := range snap.Threads {
		now[t.TID] = true
		if a.threads != nil && !a.threads[t.TID] {
			a.event(slog.LevelDebug, EvThreadStarted, slog.Int("pid", snap.PID), slog.Int("tid", t.TID), slog.String("comm", t.Comm))
		}
	}
	for tid := range a.threads {
		if !now[tid] {
			a.event(slog.LevelDebug, EvThreadExited, slog.Int("pid", snap.PID), slog.Int("tid", tid))
		}
	}
	a.threads = now
}

func (a *Agent) targetExited() {
	attrs := []slog.Attr{slog.Int("pid", a.mon.PID())}
	st, ok, err := a.mon.ExitStatus()
	switch {
	case err != nil:
		a.log.Warn("reading exit status", "err", err)
	case ok && st.Signaled:
		attrs = append(attrs, slog.Int("signal", int(st.Signal)), slog.String("status", st.String()))
	case ok:
		attrs = append(attrs, slog.Int("exit_code", st.Code), slog.String("status", st.String()))
	}
	a.event(slog.LevelInfo, EvTargetExited, attrs...)
}
