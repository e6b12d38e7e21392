package systemd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/sink"
)

// Config configures the systemd sink.
type Config struct {
	// Socket is the notify socket of the manager running the service:
	// a path, or "@name" in the abstract namespace.
	Socket string
	// Target is the watched service.
	Target Target
	// KeepAlive, when set, pings WATCHDOG=1 as stallmon itself; see
	// KeepAliveFromEnv.
	KeepAlive *KeepAlive
	Logger    *slog.Logger
}

// Sink sends WATCHDOG=trigger once per stall.
type Sink struct {
	cfg Config
	log *slog.Logger
	// triggered is set once the current stall was reported, and
	// cleared when the target is seen alive again or the run ends.
	triggered bool
}

// New checks cfg and returns the sink.
func New(cfg Config) (*Sink, error) {
	if err := CheckSocket(cfg.Socket); err != nil {
		return nil, err
	}
	if cfg.Target.PID < 0 {
		return nil, fmt.Errorf("target pid %d", cfg.Target.PID)
	}
	if cfg.KeepAlive != nil {
		if err := CheckSocket(cfg.KeepAlive.Socket); err != nil {
			return nil, fmt.Errorf("keep-alive: %w", err)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{cfg: cfg, log: log.With("sink", "systemd")}, nil
}

func (s *Sink) Name() string { return "systemd" }

// Apply sends WATCHDOG=trigger on the first Stalled verdict of a stall
// whose rule kills; a stall under a rule that never kills sends nothing.
// A repeated Stalled, even after a Blind or a Fenced one, is the same
// stall (the agent announces the stall it kills for after it fenced);
// only Alive, or the Final verdict that ends a run (stallmon run starts
// the service again after it), ends it: a final Stalled is still the
// stall it names, so it triggers only if nothing did yet. Blind, Fenced and Leaving send
// nothing: Blind is stallmon's own failure to see, not evidence against
// the service, and the keep-alive (if any) covers it; Fenced means
// stallmon killed the target or saw it exit, which systemd sees too;
// Leaving says nothing about the service. A failed send is returned and
// the hub retries it.
func (s *Sink) Apply(ctx context.Context, v sink.Verdict) error {
	return errors.Join(s.trigger(ctx, v), s.keepAlive(ctx, v))
}

func (s *Sink) trigger(ctx context.Context, v sink.Verdict) error {
	if v.State == sink.Alive {
		s.triggered = false
	}
	if v.Final {
		// The run ends after this verdict, not before it: a final
		// STALLED (a stop under --no-kill or --late-return=resume) is
		// the stall already triggered, and must not trigger it twice.
		defer func() { s.triggered = false }()
	}
	if v.State != sink.Stalled {
		return nil
	}
	if s.triggered {
		return nil
	}
	if v.Stall == nil || !v.Stall.Kills {
		// The rule broken never kills (a stopped, traced or frozen
		// service: gdb, gcore, CRIU, docker pause, systemctl freeze;
		// kill_after: never): the trigger would have systemd kill it
		// all the same (WatchdogSignal=, Restart=on-watchdog).
		return nil
	}
	pid, err := s.cfg.Target.pid(v)
	if err != nil {
		return fmt.Errorf("systemd: choosing the pid to notify as: %w", err)
	}
	if err := Send(ctx, s.cfg.Socket, pid, triggerMessage(v)); err != nil {
		return fmt.Errorf("systemd: WATCHDOG=trigger to %s: %w", s.cfg.Socket, err)
	}
	s.triggered = true
	s.log.Warn(event.SystemdWatchdogTriggered, "socket", s.cfg.Socket, "as_pid", pid, "status", statusText(v))
	return nil
}

func (s *Sink) Close() error { return nil }

// KeepAlive pings systemd's watchdog for stallmon's own unit.
type KeepAlive struct {
	// Socket is stallmon's own notify socket ($NOTIFY_SOCKET).
	Socket string
	// Every is the least time between two pings.
	Every time.Duration

	last time.Time
}

// KeepAliveFromEnv returns the keep-alive systemd asks stallmon for, as
// sd_watchdog_enabled(3) reads it: $WATCHDOG_USEC set, and
// $WATCHDOG_PID unset or stallmon's pid. Nil when systemd expects no
// pings from stallmon.
func KeepAliveFromEnv() (*KeepAlive, error) {
	usec := os.Getenv("WATCHDOG_USEC")
	if usec == "" {
		return nil, nil
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" && p != fmt.Sprint(os.Getpid()) {
		return nil, nil
	}
	var n int64
	if _, err := fmt.Sscan(usec, &n); err != nil || n <= 0 {
		return nil, fmt.Errorf("$WATCHDOG_USEC=%q is not a positive number of microseconds", usec)
	}
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return nil, fmt.Errorf("$WATCHDOG_USEC is set but $NOTIFY_SOCKET is not")
	}
	// Four pings per period: one lost or late still leaves margin.
	return &KeepAlive{Socket: sock, Every: time.Duration(n) * time.Microsecond / 4}, nil
}

// keepAlive pings while the agent has a fresh view of its target: a
// Blind agent, or one whose loop hangs and publishes nothing, stops the
// pings, and systemd restarts stallmon's unit after WatchdogSec=.
func (s *Sink) keepAlive(ctx context.Context, v sink.Verdict) error {
	k := s.cfg.KeepAlive
	if k == nil || v.State == sink.Blind || v.State == sink.Leaving {
		return nil
	}
	now := time.Now()
	if !k.last.IsZero() && now.Sub(k.last) < k.Every {
		return nil
	}
	if err := Send(ctx, k.Socket, os.Getpid(), "WATCHDOG=1"); err != nil {
		return fmt.Errorf("systemd: keep-alive WATCHDOG=1 to %s: %w", k.Socket, err)
	}
	k.last = now
	return nil
}
