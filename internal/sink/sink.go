// Package sink carries the agent's verdict on its target to whatever acts
// on it: stallmon's own multicast heartbeat, keepalived, Pacemaker, etcd,
// systemd. The agent publishes; each sink runs in its own goroutine, so a
// sink that hangs or fails (etcd unreachable, attrd_updater missing)
// delays neither the poll loop nor any other sink.
package sink

import (
	"context"
	"time"
)

// State is what the agent can say about its target.
type State int

const (
	// Alive: the latest poll is fresh and found nothing over budget.
	Alive State = iota
	// Stalled: a syscall is over its budget.
	Stalled
	// Blind: no fresh successful poll; the agent cannot vouch for the target.
	Blind
	// Fenced: the target is being or has been killed, or has exited.
	Fenced
	// Leaving: stallmon is stopping and will say nothing more.
	Leaving
)

func (s State) String() string {
	switch s {
	case Alive:
		return "alive"
	case Stalled:
		return "stalled"
	case Blind:
		return "blind"
	case Fenced:
		return "fenced"
	case Leaving:
		return "leaving"
	}
	return "unknown"
}

// Healthy reports whether a cluster manager may keep the service here.
func (s State) Healthy() bool { return s == Alive }

// Stall is the syscall that made the target stalled.
type Stall struct {
	PID, TID int
	Comm     string
	Syscall  string // "none" for a kernel worker judged by its state
	// Nr is Syscall's number in the native table, whatever ABI the thread
	// called it through; -1 if that table has none.
	Nr      int
	Elapsed time.Duration
	Reason  string // the rule that fired: over_budget, uninterruptible, ...
	// Kills says the rule broken ends in a kill (it has a kill_after, or
	// the thread died in the kernel). False for the rules that never
	// kill (a stopped, traced or frozen target, kill_after: never): an
	// integration that would end the service (systemd's watchdog) must
	// leave those alone.
	Kills bool
}

// Verdict is one statement of the agent about its target.
type Verdict struct {
	State State
	// At is when the agent formed the verdict.
	At time.Time
	// ValidUntil bounds when an Alive verdict may still be applied: it
	// rests on a poll that goes stale then, and the hub drops it unapplied
	// after (see Fresh). A sink that holds a level (a file, an attribute,
	// a lease) holds it until the next verdict, which the agent publishes
	// at least every heartbeat interval while it runs: if its poll loop
	// stops, that next verdict is Blind. Zero for other states.
	ValidUntil time.Time
	// Stall is set when State is Stalled, and when Fenced by a kill.
	Stall *Stall
	// Deadline is the takeover promise: if nothing more is heard, the
	// target is dead by then. Zero when nothing is promised.
	Deadline time.Time
	// PID is the service's main process, 0 when the target is a cgroup.
	PID int
	// Final is set on the last verdict of this run (Fenced or Leaving).
	Final bool
	// Unknown is set on a Blind verdict whose poll was fresh but saw a
	// thread the tracker could not follow: it says which and why. Empty
	// when the agent is blind for want of a fresh poll.
	Unknown string
}

// Fresh reports whether v may still be acted on at now: an Alive verdict
// expires with the poll it rests on; every other verdict stands.
func (v Verdict) Fresh(now time.Time) bool {
	return v.State != Alive || v.ValidUntil.IsZero() || now.Before(v.ValidUntil)
}

// Sink makes the outside world reflect the agent's verdict.
//
// Apply is called from the sink's own goroutine, never concurrently, with
// the current verdict at every heartbeat interval (it is a level, not an
// edge: a failed Apply is retried by the next one) and at once on a
// change. It must honour ctx's deadline. A sink that acts only on changes
// compares v with what it last applied successfully.
//
// Close is called once by the sink's owner, after the last Apply, to
// release resources. The hub does not call it: one sink serves the
// successive runs of a supervised service.
type Sink interface {
	Name() string
	Apply(ctx context.Context, v Verdict) error
	Close() error
}

// Target is what an integration knows of the watched service when its
// sink is built.
type Target struct {
	// NodeID names this node: --node-id, or the default one.
	NodeID string
	// PID is the watched process for attach --pid, 0 otherwise.
	PID int
	// Cgroup is the watched cgroup's absolute path for attach --cgroup,
	// "" otherwise. Under run, both are unset: stallmon is the service's
	// main process itself.
	Cgroup string
}
