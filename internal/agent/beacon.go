package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/sink"
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
	// Incarnation numbers each agent's heartbeat; it must grow from one
	// agent to the next (see identity.NextIncarnation). Nil: the clock.
	Incarnation func() uint64
}

// beacon is the multicast heartbeat, one sink among the others: ALIVE at
// every verdict while the target is alive, a burst of STALLED when it
// stalls, then silence; a burst of FENCED or LEAVING at the end.
type beacon struct {
	cfg         HeartbeatConfig
	log         *slog.Logger
	incarnation uint64
	seq         uint64
	last        sink.State
	silent      bool // heartbeat_stopped was logged and ALIVE has not resumed
	stats       *statsRecorder
	err         error // the current Apply's encoding failure
	now         func() time.Time
}

func newBeacon(cfg HeartbeatConfig, log *slog.Logger, stats *statsRecorder) *beacon {
	inc := uint64(time.Now().UnixNano())
	if cfg.Incarnation != nil {
		inc = cfg.Incarnation()
	}
	return &beacon{cfg: cfg, log: log, incarnation: inc, last: sink.Blind, stats: stats, now: time.Now}
}

func (b *beacon) Name() string { return "heartbeat" }
func (b *beacon) Close() error { return nil }

// Apply sends what v calls for. A datagram that cannot be sent is logged
// and counted, not retried: the next interval's packet supersedes it. A
// packet that cannot be encoded is an error, so the sink reads as down.
func (b *beacon) Apply(_ context.Context, v sink.Verdict) error {
	b.err = nil
	prev := b.last
	b.last = v.State
	switch v.State {
	case sink.Alive:
		// Checked again here, next to the send: an agent stopped (SIGSTOP,
		// a VM pause) between the hub's check and this one must not wake
		// up to an ALIVE its last poll no longer backs.
		if !v.Fresh(b.now()) {
			b.last = prev
			return nil
		}
		b.send(heartbeat.StateAlive, v, 1)
		if b.silent {
			b.log.Info(event.HeartbeatResumed, "seq", b.seq)
		}
		b.silent = false
	case sink.Stalled:
		if prev != sink.Stalled {
			b.announce(v)
		}
	case sink.Blind:
		if prev == sink.Alive {
			if v.Unknown != "" {
				b.log.Warn(event.HeartbeatStopped, "reason", "thread_unknown", "detail", v.Unknown)
			} else {
				b.log.Warn(event.HeartbeatStopped, "reason", "no_fresh_poll")
			}
			b.silent = true
		}
	case sink.Fenced, sink.Leaving:
		if v.Final {
			state := heartbeat.StateFenced
			if v.State == sink.Leaving {
				state = heartbeat.StateLeaving
			}
			b.send(state, v, b.cfg.Repeats)
			b.log.Info(event.HeartbeatFinal, "state", state.String(), "seq", b.seq)
		}
	default:
		return fmt.Errorf("unknown verdict %v", v.State)
	}
	return b.err
}

// announce sends the STALLED burst for v. It is logged as the heartbeat
// stopping once per silence: a stall seen again after a blind spell
// (the agent starved) is announced again, not reported again.
func (b *beacon) announce(v sink.Verdict) {
	b.send(heartbeat.StateStalled, v, b.cfg.Repeats)
	if !b.silent && v.Stall != nil {
		s := v.Stall
		b.log.Warn(event.HeartbeatStopped, "reason", "stall", "tid", s.TID, "syscall", s.Syscall,
			"elapsed_seconds", s.Elapsed.Seconds(), "rule", s.Reason)
		b.silent = true
	}
}

// send transmits n packets of state, each with its own sequence number.
func (b *beacon) send(state heartbeat.State, v sink.Verdict, n int) {
	for range n {
		b.seq++
		p := heartbeat.Packet{
			State:            state,
			NodeID:           b.cfg.NodeID,
			Incarnation:      b.incarnation,
			Seq:              b.seq,
			SendTime:         time.Now().UnixNano(),
			TakeoverDeadline: deadlineNanos(v.Deadline),
		}
		if s := v.Stall; s != nil {
			name := s.Syscall
			if name == "none" {
				name = ""
			}
			p.Stall = heartbeat.Stall{TID: uint32(s.TID), Syscall: int32(s.Nr), Name: name, Elapsed: s.Elapsed}
		}
		raw, err := p.Marshal(b.cfg.Key)
		if err != nil {
			b.err = fmt.Errorf("encoding heartbeat: %w", err)
			return
		}
		err = b.cfg.Sender.Send(raw)
		if err != nil {
			b.log.Warn(event.HeartbeatSendFailed, "state", state.String(), "err", err)
		}
		b.stats.sent(strings.ToLower(state.String()), err)
	}
}

func deadlineNanos(d time.Time) int64 {
	if d.IsZero() {
		return 0
	}
	return d.UnixNano()
}
