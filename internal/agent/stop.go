package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/sink"
)

// reasonStop is the kill's reason when stallmon, asked to stop, fences a
// stall it had declared rather than leave it running.
const reasonStop = "stop"

// Abandon makes the run end, when its context is done, without a last
// word: no LEAVING, no FENCED, no final poll. stallmon run gives up on a
// service that outlived its stop and its kill: peers must hear silence,
// which they fail over on, not that the node left, which they never do.
func (a *Agent) Abandon() { a.abandoned.Store(true) }

// Fenced reports whether the agent killed its target, or saw it exit,
// and so will never say it is alive again: under stallmon run, a start
// whose agent is fenced but whose cgroup is not empty yet is a service
// that did not die.
func (a *Agent) Fenced() bool {
	st, _ := a.gate.state(time.Now())
	return st == gateFenced
}

// stop ends a run whose context is done. It never contradicts what the
// heartbeat said: LEAVING ("the node goes, do not fail it over") only
// after a last poll found the target healthy. A stall declared (STALLED
// is final) is fenced first, within the kill's grace; a stall whose
// rule never kills, or under --no-kill or --late-return=resume, ends the
// run on STALLED; a target the last poll could not vouch for, on
// silence.
func (a *Agent) stop() (Outcome, error) {
	if a.abandoned.Load() {
		a.silentEnd()
		return Detached, nil
	}
	select {
	case <-a.mon.Done():
		a.gate.fence()
		a.targetExited()
		a.final(sink.Fenced, nil)
		return TargetExited, nil
	default:
	}
	// A last look, so that a stall that went over its budget since the
	// previous poll is declared now rather than left behind a LEAVING.
	victim := a.poll(context.Background())
	// A victim the last look found past its kill_after is killed for its
	// own rule, as the next poll would have done; only a stall declared
	// earlier and fenced because stallmon stops is killed for the stop.
	forStop := false
	st, worst := a.gate.state(time.Now())
	if a.failing > 0 && st == gateAlive {
		// The gate still trusts an earlier poll, but the last look
		// failed: it cannot vouch for the target now.
		st = gateBlind
	}
	switch {
	case st == gateAlive:
		a.left.Store(true)
		a.final(sink.Leaving, nil)
		return Detached, nil
	case st != gateStalled:
		a.log.Warn(event.StopSilent, "gate", st.String())
		a.silentEnd()
		return Detached, nil
	}
	if victim == nil && a.declared != nil && a.cfg.Kill && (a.declared.death != nil || a.declared.rule.Kills()) {
		// As the latest poll saw it, while it is still stuck.
		v := *a.declared
		if worst != nil && worst.key() == v.key() {
			v = *worst
		}
		victim = &v
		forStop = true
	}
	if victim == nil {
		// Nothing stallmon will kill: the stall stands, with no deadline.
		a.event(slog.LevelWarn, event.StopStalled, judgedAttrs(*worst)...)
		v := a.pub.judgedVerdict(sink.Stalled, worst, time.Now())
		v.Deadline = time.Time{}
		v.Final = true
		a.pub.publish(v)
		return Detached, nil
	}
	fenced := *victim
	if forStop {
		fenced.reason = reasonStop
	}
	a.event(slog.LevelWarn, event.StopFence, judgedAttrs(*victim)...)
	a.gate.fence()
	a.announceStall(victim)
	// Bounded: the kill's grace, the report of an unkillable target,
	// then silence. A stop must end.
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.KillGrace+DiagnoseDeadline+a.cfg.PollInterval)
	defer cancel()
	return a.fenceTarget(ctx, fenced, TargetUnkillable)
}

// silentEnd ends the run without a word on the heartbeat; the
// integrations, which hold a level rather than hear silence, are told
// the agent is blind, so that none is left saying healthy.
func (a *Agent) silentEnd() {
	if h := a.cfg.Integrations; h != nil {
		h.Publish(sink.Verdict{State: sink.Blind, At: time.Now(), PID: a.mon.PID(), Final: true})
	}
}
