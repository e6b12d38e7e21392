package agent

import "time"

// EgressGate is the kernel's hold on the service's own heartbeat
// (--gate-egress): its packets pass only while the agent vouches for it.
// Both calls are a map write, cheap enough for the poll loop, and never
// wait on the target.
type EgressGate interface {
	// Vouch lets the packets pass until until, two poll intervals after
	// a poll that found the service alive: a poll loop that stops extends
	// nothing, and the kernel closes the gate on its own.
	Vouch(until time.Time)
	// Shut holds the packets back from now; reason is the agent's state.
	Shut(reason string)
}

// egressAfterPoll sets the egress gate from the gate's verdict at now:
// open for two poll intervals more while alive, shut otherwise. Under
// --late-return=fence a declared stall stays in the verdict, so the gate
// stays shut for the rest of the incarnation; under resume it reopens.
func (a *Agent) egressAfterPoll(now time.Time) {
	if a.cfg.Egress == nil {
		return
	}
	st, _, _, _ := a.gate.read(now)
	if st == gateAlive {
		// Two intervals from now, the poll done: from the poll's start,
		// a poll that took its time (a host with many tasks to walk, a
		// starved CPU) would let the deadline run out before the next
		// one could extend it, on a healthy service.
		a.cfg.Egress.Vouch(time.Now().Add(a.gate.maxAge))
		return
	}
	a.cfg.Egress.Shut(st.String())
}

// egressAfterFailedPoll is the gate after a poll that saw nothing: it
// never extends the opening (a failed poll vouches for nothing, so the
// packets stop two poll intervals after the last good poll, as promised),
// and shuts the gate once the last good poll is no longer fresh.
func (a *Agent) egressAfterFailedPoll(now time.Time) {
	if a.cfg.Egress == nil {
		return
	}
	if st, _, _, _ := a.gate.read(now); st != gateAlive {
		a.cfg.Egress.Shut(st.String())
	}
}

// shutEgress closes the egress gate for the rest of the run.
func (a *Agent) shutEgress(reason string) {
	if a.cfg.Egress != nil {
		a.cfg.Egress.Shut(reason)
	}
}

// EgressReleasable reports whether the run ended so that the egress gate
// may be released (--gate-egress-release-on-exit): on LEAVING, the target
// found healthy, or with the target gone. After a stop on STALLED or in
// silence the service's heartbeat must stay held, whatever the flag.
func (a *Agent) EgressReleasable() bool { return a.left.Load() || a.gone.Load() }
