package agent

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
)

// Sender transmits one encoded heartbeat; *heartbeat.Sender is one.
type Sender interface {
	Send(b []byte) error
}

// HeartbeatConfig configures the heartbeat the agent sends for its target.
type HeartbeatConfig struct {
	Sender   Sender
	Interval time.Duration
	NodeID   string
	Key      *heartbeat.Key // nil: unauthenticated
	// Repeats is how many STALLED, FENCED or LEAVING packets are sent on a
	// transition, so that one lost datagram does not delay a failover.
	Repeats int
}

// beacon sends the heartbeat: ALIVE every interval while the gate is open,
// a burst of STALLED when it closes on a stall, then silence.
type beacon struct {
	cfg         HeartbeatConfig
	log         *slog.Logger
	gate        *gate
	kick        chan struct{}
	incarnation uint64
	seq         uint64
	deadline    func(now time.Time, j *judged) time.Time
	last        gateState
	silent      bool // heartbeat_stopped was logged and ALIVE has not resumed
	stats       *statsRecorder
}

func (b *beacon) run(ctx context.Context) {
	tick := time.NewTicker(b.cfg.Interval)
	defer tick.Stop()
	b.last = gateBlind
	b.step(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-b.kick:
		}
		b.step(time.Now())
	}
}

// poke makes the beacon re-read the gate now rather than at its next tick,
// so a stall goes out as STALLED without waiting up to an interval.
func (b *beacon) poke() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

func (b *beacon) step(now time.Time) {
	st, j := b.gate.state(now)
	prev := b.last
	b.last = st
	switch st {
	case gateAlive:
		b.send(heartbeat.StateAlive, nil, 1)
		if b.silent {
			b.log.Info(EvHeartbeatResumed, "seq", b.seq)
		}
		b.silent = false
	case gateStalled:
		if prev != gateStalled {
			b.announce(j)
		}
	case gateBlind:
		if prev == gateAlive {
			b.log.Warn(EvHeartbeatStopped, "reason", "no_fresh_poll")
			b.silent = true
		}
	case gateFenced:
		// The fencing path sends FENCED itself once the kill is confirmed.
	}
}

// announce sends the STALLED burst for j. It is logged as the heartbeat
// stopping once per silence: a stall seen again after a blind spell
// (the agent starved) is announced again, not reported again.
func (b *beacon) announce(j *judged) {
	b.send(heartbeat.StateStalled, j, b.cfg.Repeats)
	b.last = gateStalled
	if !b.silent {
		b.log.Warn(EvHeartbeatStopped, "reason", "stall", "tid", j.thread.TID, "syscall", j.thread.Syscall,
			"elapsed_seconds", j.span.Seconds(), "rule", j.reason)
		b.silent = true
	}
}

// send transmits n packets of state, each with its own sequence number.
func (b *beacon) send(state heartbeat.State, j *judged, n int) {
	for range n {
		now := time.Now()
		b.seq++
		p := heartbeat.Packet{
			State:       state,
			NodeID:      b.cfg.NodeID,
			Incarnation: b.incarnation,
			Seq:         b.seq,
			SendTime:    now.UnixNano(),
		}
		if d := b.deadline(now, j); !d.IsZero() {
			p.TakeoverDeadline = d.UnixNano()
		}
		if j != nil {
			p.Stall = heartbeat.Stall{
				TID:     uint32(j.thread.TID),
				Syscall: int32(j.thread.Nr),
				Name:    j.thread.Syscall,
				Elapsed: j.span,
			}
		}
		raw, err := p.Marshal(b.cfg.Key)
		if err != nil {
			b.log.Error("encoding heartbeat", "err", err)
			return
		}
		err = b.cfg.Sender.Send(raw)
		if err != nil {
			b.log.Warn("sending heartbeat", "state", state.String(), "err", err)
		}
		b.stats.sent(strings.ToLower(state.String()), err)
	}
}
