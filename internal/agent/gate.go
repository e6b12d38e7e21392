package agent

import (
	"sync"
	"time"
)

// gateState is what the heartbeat may say right now.
type gateState int

const (
	gateAlive   gateState = iota // latest poll is fresh and found nothing over budget
	gateStalled                  // a syscall is over its budget
	gateBlind                    // no fresh successful poll, or a thread it could not judge: cannot vouch for the target
	gateFenced                   // the target is being or has been killed: never alive again
)

func (s gateState) String() string {
	return [...]string{"alive", "stalled", "blind", "fenced"}[s]
}

// gate is shared by the poll loop, which writes it, and the beacon, which
// reads it before every packet. Staleness is judged at read time, so a
// poll loop that stops (the agent itself stuck) silences the heartbeat
// without anyone having to notice.
type gate struct {
	mu     sync.Mutex
	maxAge time.Duration
	lastOK time.Time // when the latest successful poll was taken
	worst  *judged   // the stall to report, nil if none
	// unknown says why the latest poll could not vouch for every thread
	// of the target, "" if it could.
	unknown string
	fenced  bool
	// untrusted is set for good once the tracker was found tampered
	// with: no poll after that can vouch for the target.
	untrusted bool
}

func newGate(maxAge time.Duration) *gate { return &gate{maxAge: maxAge} }

func (g *gate) polled(at time.Time, over []judged) { g.polledUnknown(at, over, "") }

// polledUnknown is polled for a poll that saw threads it cannot judge,
// for the reason unknown: the gate is blind, unless a stall is known.
func (g *gate) polledUnknown(at time.Time, over []judged, unknown string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastOK = at
	g.unknown = unknown
	g.worst = nil
	for i := range over {
		if g.worst == nil || worse(over[i], *g.worst) {
			g.worst = &over[i]
		}
	}
}

// worse orders the stalls the heartbeat reports: a thread the kernel
// killed first (it can never recover), then one whose rule kills (its
// kill is what the takeover deadline promises, and what systemd's
// trigger is for: a stopped thread beside it must not hide it), then the
// longest running.
func worse(a, b judged) bool {
	if (a.death != nil) != (b.death != nil) {
		return a.death != nil
	}
	if ka, kb := a.rule.Kills(), b.rule.Kills(); ka != kb {
		return ka
	}
	return a.span > b.span
}

// distrust makes the gate blind for the rest of its life, unless fenced.
func (g *gate) distrust() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.untrusted = true
}

func (g *gate) fence() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fenced = true
}

// state returns the gate's verdict at now, and the stall when stalled.
func (g *gate) state(now time.Time) (gateState, *judged) {
	st, j, _, _ := g.read(now)
	return st, j
}

// read is state, with the time at which an alive verdict goes stale and,
// when blind on a fresh poll, why that poll could not vouch.
func (g *gate) read(now time.Time) (st gateState, j *judged, validUntil time.Time, unknown string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st, j = g.stateLocked(now)
	if st == gateBlind && !g.stale(now) {
		unknown = g.unknown
	}
	return st, j, g.lastOK.Add(g.maxAge), unknown
}

func (g *gate) stale(now time.Time) bool {
	return g.lastOK.IsZero() || now.Sub(g.lastOK) > g.maxAge
}

func (g *gate) stateLocked(now time.Time) (gateState, *judged) {
	switch {
	case g.fenced:
		return gateFenced, g.worst
	case g.untrusted || g.stale(now):
		return gateBlind, nil
	case g.worst != nil:
		// A known stall says more than an unknown thread, and is
		// fenced on whatever else the target does.
		return gateStalled, g.worst
	case g.unknown != "":
		return gateBlind, nil
	}
	return gateAlive, nil
}
