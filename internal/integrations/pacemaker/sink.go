// Package pacemaker makes Pacemaker see stallmon's verdict as a node
// attribute: red while the watched service is anything but alive, green
// while it is, yellow while a rule that never kills holds it (stopped,
// traced, frozen). With the default name, #health-stallmon, and the cluster
// option node-health-strategy=migrate-on-red, a red node runs no
// resource; with another name, a location rule on the attribute moves
// just the resources it names (see deploy/pacemaker/).
//
// The attribute is transient (pacemaker-attrd's, gone when the node
// leaves the cluster) and set through attrd_updater, Pacemaker's own
// tool for agents: no library, no CIB write of stallmon's own.
//
// At start the sink writes nothing: a node attribute cannot tell "not
// judged yet" from "never watched", and a red written before the first
// verdict would push away the very service stallmon is about to watch.
// What a node shows before stallmon's first verdict is what the last
// stallmon left there, which is red: every unhealthy verdict, the
// Leaving verdict and Close write red. A node that never ran stallmon
// has no attribute and stays eligible, as a standby node must.
//
// Each stallmon on a node needs an attribute of its own: two writing one
// would overwrite each other's red. Pacemaker takes the worst of all
// #health- attributes, so #health-stallmon-redis and
// #health-stallmon-nginx compose.
package pacemaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/sink"
)

// DefaultAttribute is a node-health attribute: Pacemaker reads names
// that start with #health as the node's health.
const DefaultAttribute = "#health-stallmon"

// The values the sink writes, the colours node-health-strategy reads.
const (
	Red    = "red"
	Yellow = "yellow"
	Green  = "green"
)

// Defaults of Config.
const (
	DefaultCloseTimeout = 5 * time.Second
	// defaultCallTimeout bounds a call whose context has no deadline.
	defaultCallTimeout = 5 * time.Second
)

// Config sets up a Sink.
type Config struct {
	// Attribute is the node attribute to set (default DefaultAttribute).
	Attribute string
	// AttrdUpdater is the attrd_updater program; "" looks it up on PATH.
	AttrdUpdater string
	// CloseTimeout bounds the red that Close writes (default 5s).
	CloseTimeout time.Duration
	Logger       *slog.Logger
}

// Sink sets the node attribute from the verdict.
type Sink struct {
	attr    string
	updater string
	closeTO time.Duration
	log     *slog.Logger

	mu sync.Mutex
	// last is the value this sink last wrote with success; "" until the
	// first, and after a failure, whose effect is unknown (attrd may have
	// taken the value before the call timed out).
	last string
	// spare is set when the last verdict applied was a final STALLED
	// whose rule never kills (a stopped, traced or frozen service): the
	// run ended holding it, and Close must not turn it red.
	spare bool
}

// New checks the configuration and finds attrd_updater. It does not
// contact the cluster: that is the first Apply's job.
func New(cfg Config) (*Sink, error) {
	if cfg.Attribute == "" {
		cfg.Attribute = DefaultAttribute
	}
	if err := checkAttribute(cfg.Attribute); err != nil {
		return nil, err
	}
	updater, err := findUpdater(cfg.AttrdUpdater)
	if err != nil {
		return nil, err
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sink{attr: cfg.Attribute, updater: updater, closeTO: cfg.CloseTimeout, log: cfg.Logger}, nil
}

// checkAttribute refuses names that attrd_updater or a CIB rule would
// read differently from what the user typed.
func checkAttribute(name string) error {
	if strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("attribute name %q: no spaces or control characters", name)
	}
	return nil
}

// Name implements sink.Sink.
func (s *Sink) Name() string { return "pacemaker" }

// Attribute is the node attribute the sink sets.
func (s *Sink) Attribute() string { return s.attr }

// Health is the value v sets: green only for an Alive verdict that is
// still fresh; yellow for a stall whose rule never kills (a stopped,
// traced or frozen service: gdb, gcore, CRIU, docker pause); red for
// anything else. Red moves the resources away, and moving one stops it
// here: Pacemaker's stop would kill a service the rule spares, so such a
// stall is yellow, which migrate-on-red and the location rule on red
// leave alone.
func Health(v sink.Verdict, now time.Time) string {
	switch {
	case v.State.Healthy() && v.Fresh(now):
		return Green
	case v.State == sink.Stalled && v.Stall != nil && !v.Stall.Kills:
		return Yellow
	}
	return Red
}

// Apply writes the value v calls for, unless this sink already wrote it:
// attrd_updater runs only on a change, or again after a failure.
func (s *Sink) Apply(ctx context.Context, v sink.Verdict) error {
	want := Health(v, time.Now())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spare = v.Final && want == Yellow
	if s.last == want {
		return nil
	}
	return s.set(ctx, want, v.State.String())
}

// Close writes red unless red is what this sink last wrote: once stallmon
// is gone, nobody vouches for the service here. That covers a sink that
// never wrote, or whose last write failed: a green left by a stallmon
// that was killed, or by a write that timed out after attrd took it, must
// not outlive this one.
//
// The one exception is a run that ended on a STALLED whose rule never
// kills (stallmon stopped while the service was SIGSTOPped, traced or
// frozen): red would make Pacemaker stop, that is kill, the very service
// the rule spares, so Close leaves yellow, writing it again if its
// write failed. Yellow still keeps new resources off the node.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := Red
	if s.spare {
		want = Yellow
	}
	if s.last == want {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.closeTO)
	defer cancel()
	return s.set(ctx, want, "closing")
}

// set runs attrd_updater; called with mu held.
func (s *Sink) set(ctx context.Context, value, why string) error {
	s.last = ""
	t0 := time.Now()
	if err := update(ctx, s.updater, s.attr, value); err != nil {
		return err
	}
	s.last = value
	s.log.Info(event.PacemakerAttributeSet, "attribute", s.attr, "value", value, "state", why,
		"took_seconds", time.Since(t0).Seconds())
	return nil
}

// errNoUpdater is wrapped when attrd_updater cannot be found.
var errNoUpdater = errors.New("attrd_updater not found")
