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
	gateBlind                    // no fresh successful poll: cannot vouch for the target
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
	fenced bool
	// untrusted is set for good once the tracker was found tampered
	// with: no poll after that can vouch for the target.
	untrusted bool
}

func newGate(maxAge time.Duration) *gate { return &gate{maxAge: maxAge} }

func (g *gate) polled(at time.Time, over []judged) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastOK = at
	g.worst = nil
	for i := range over {
		if g.worst == nil || worse(over[i], *g.worst) {
			g.worst = &over[i]
		}
	}
}

// worse orders the stalls the heartbeat reports: a thread the kernel
// killed first (it can never recover), then the longest running.
func worse(a, b judged) bool {
	if (a.death != nil) != (b.death != nil) {
		return a.death != nil
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
	st, j, _ := g.read(now)
	return st, j
}

// read is state, with the time at which an alive verdict goes stale.
func (g *gate) read(now time.Time) (gateState, *judged, time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st, j := g.stateLocked(now)
	return st, j, g.lastOK.Add(g.maxAge)
}

func (g *gate) stateLocked(now time.Time) (gateState, *judged) {
	switch {
	case g.fenced:
		return gateFenced, g.worst
	case g.untrusted || g.lastOK.IsZero() || now.Sub(g.lastOK) > g.maxAge:
		return gateBlind, nil
	case g.worst != nil:
		return gateStalled, g.worst
	}
	return gateAlive, nil
}
