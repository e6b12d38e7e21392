package agent

import (
	"context"
	"time"

	"github.com/stallmon/stallmon/internal/sink"
)

// defaultPublishInterval paces the verdicts when no heartbeat sets the
// pace: how soon an integration hears that the agent went blind.
const defaultPublishInterval = 500 * time.Millisecond

// stallSettle bounds how long a kill waits for the heartbeat to send the
// STALLED announced just before it.
const stallSettle = 200 * time.Millisecond

// publisher reads the gate at every interval, and at once when poked, and
// hands the verdict to the sinks. Staleness is judged at read time, so a
// poll loop that stops (the agent itself stuck) turns the verdict blind
// without anyone having to notice.
type publisher struct {
	gate     *gate
	hubs     []*sink.Hub // the heartbeat's, then the integrations'; set by Run
	interval time.Duration
	kick     chan struct{}
	deadline func(now time.Time, j *judged) time.Time
	pid      func() int
}

func (p *publisher) run(ctx context.Context) {
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	p.publish(p.verdict(time.Now()))
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-p.kick:
		}
		p.publish(p.verdict(time.Now()))
	}
}

func (p *publisher) publish(v sink.Verdict) {
	for _, h := range p.hubs {
		h.Publish(v)
	}
}

// poke makes the publisher re-read the gate now rather than at its next
// tick, so a stall goes out without waiting up to an interval.
func (p *publisher) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// verdict is the gate's verdict at now, as the sinks see it.
func (p *publisher) verdict(now time.Time) sink.Verdict {
	st, j, validUntil, unknown := p.gate.read(now)
	v := p.judgedVerdict(sinkState(st), j, now)
	if st == gateAlive {
		v.ValidUntil = validUntil
	}
	v.Unknown = unknown
	return v
}

func (p *publisher) judgedVerdict(st sink.State, j *judged, now time.Time) sink.Verdict {
	v := sink.Verdict{State: st, At: now, Deadline: p.deadline(now, j), PID: p.pid()}
	if j != nil {
		name := j.thread.Syscall
		if name == "" {
			name = "none"
		}
		v.Stall = &sink.Stall{
			PID: j.thread.PID, TID: j.thread.TID, Comm: j.thread.Comm, Syscall: name, Nr: j.thread.NativeNr(),
			Elapsed: j.span, Reason: j.reason, Kills: j.death != nil || j.rule.Kills(),
		}
	}
	return v
}

func sinkState(s gateState) sink.State {
	switch s {
	case gateAlive:
		return sink.Alive
	case gateStalled:
		return sink.Stalled
	case gateFenced:
		return sink.Fenced
	}
	return sink.Blind
}
