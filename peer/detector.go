package peer

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
)

var (
	// ErrReplay: same incarnation, sequence not higher than one already seen.
	ErrReplay = errors.New("peer: replayed packet")
	// ErrStale: incarnation older than the node's current one.
	ErrStale = errors.New("peer: stale incarnation")
	// ErrOutsideWindow: an authenticated packet sent further than the
	// timeout from the receiver's clock: a recording replayed after the
	// receiver restarted and forgot the sequence numbers it had seen.
	ErrOutsideWindow = errors.New("peer: send time outside the window")
	// ErrAfterFailover: ALIVE from an incarnation the detector already
	// failed over from. Another node has taken over; this one stays failed
	// until it restarts with a new incarnation.
	ErrAfterFailover = errors.New("peer: alive after failover")
	// ErrTooManyNodes: a new node id while the detector tracks MaxNodes.
	ErrTooManyNodes = errors.New("peer: too many nodes")
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout  = 3 * time.Second
	DefaultMaxNodes = 1024
)

// Config tunes a Detector.
type Config struct {
	// Timeout after the last accepted packet at which a node is declared
	// Dead. Zero means DefaultTimeout.
	Timeout time.Duration
	// MaxNodes bounds memory when anyone can make up node ids (unauthenticated
	// mode). Nodes are never forgotten, because forgetting one would also
	// forget what a replay of its packets looks like. Zero means DefaultMaxNodes.
	MaxNodes int
	// FailoverOn says which failure fails a node over.
	FailoverOn FailoverOn
}

// FailoverOn is the failure a failover waits for.
type FailoverOn uint8

const (
	// FailoverOnStalled fails over on STALLED, FENCED or silence: the
	// fastest, for agents that fence a late return (the default there).
	FailoverOnStalled FailoverOn = iota
	// FailoverOnFenced waits for FENCED or silence: for agents that may
	// resume after a stall (--late-return=resume), whose STALLED is not
	// final.
	FailoverOnFenced
)

func (f FailoverOn) String() string {
	if f == FailoverOnFenced {
		return "fenced"
	}
	return "stalled"
}

// ParseFailoverOn reads "stalled" or "fenced".
func ParseFailoverOn(s string) (FailoverOn, error) {
	switch s {
	case "stalled":
		return FailoverOnStalled, nil
	case "fenced":
		return FailoverOnFenced, nil
	}
	return 0, fmt.Errorf("failover on %q: want stalled or fenced", s)
}

func (f FailoverOn) triggers(s State) bool {
	if f == FailoverOnFenced {
		return s == Fenced || s == Dead
	}
	return s.failed()
}

// Event reports what the detector concluded from one packet or one tick.
type Event struct {
	Node     string
	State    State
	Previous State
	// Failover is true at most once per incarnation: on the first entry
	// into a state Config.FailoverOn names (Stalled, Fenced or Dead; or
	// only Fenced or Dead) after the node was seen Alive in that
	// incarnation. Later steps of the same failure do not repeat it, and
	// the incarnation is never Alive again: only a restart (a new
	// incarnation) brings the node back.
	Failover bool
	// Reason is "stalled", "fenced" or "dead" when State is one of those
	// failed states, and "" otherwise.
	Reason        string
	Incarnation   uint64
	Seq           uint64
	Authenticated bool
	Time          time.Time // receive time of the packet, or the tick time
	// TakeoverDeadline is from the node's last accepted packet when that
	// was STALLED (or FENCED): the time, on this host's clock, by which its
	// agent promised to have killed the process (the promise's distance
	// from the send, counted from the packet's arrival). Zero if none, and
	// always zero after ALIVE: silence after ALIVE promises nothing
	// (docs/wire.md, "What a peer may rely on").
	TakeoverDeadline time.Time
	// Stall is the stuck syscall from the node's last accepted packet, when
	// that packet was not ALIVE.
	Stall heartbeat.Stall
}

// NodeStatus is a snapshot of one node as the detector sees it.
type NodeStatus struct {
	Node          string
	State         State
	Incarnation   uint64
	Seq           uint64
	Authenticated bool
	LastSeen      time.Time
}

type node struct {
	state         State
	incarnation   uint64
	seq           uint64
	authenticated bool
	lastSeen      time.Time
	// silentSince is when the silence that makes a node Dead began: its
	// last accepted packet, or for a node expected or restored from a
	// state file, when this detector began to listen for it (it cannot
	// vouch for a time it was not listening).
	silentSince time.Time
	deadline    time.Time
	stall       heartbeat.Stall
	// wasAlive and failedOver are per incarnation.
	wasAlive, failedOver bool
	// expected nodes are armed from the start: a failure fails them over
	// even in an incarnation never seen alive (see Expect).
	expected bool
	// blindFailover is when the node was failed over without any packet
	// of it heard (an expected node silent since the listener began). It
	// took over from whatever ran there then, an incarnation not known:
	// see coveredByBlindFailover.
	blindFailover time.Time
}

// coveredByBlindFailover reports whether incarnation inc of n is the one
// a blind failover already took over from. Incarnations are their start
// times in unix nanoseconds (or a little later: see internal/identity),
// and an authenticated node's clock is within the timeout of ours (the
// send-time window), so one that began before failover - timeout surely
// ran when the hook did. Counting it as new would accept its ALIVE and,
// when it fell silent again, run the hook a second time for the same
// process. A later incarnation may have started after the takeover, and
// comes up as any restart does.
func (d *Detector) coveredByBlindFailover(n *node, inc uint64) bool {
	if n.blindFailover.IsZero() || inc <= n.incarnation {
		return false
	}
	cutoff := n.blindFailover.Add(-d.timeout).UnixNano()
	return cutoff > 0 && inc < uint64(cutoff)
}

// Detector decides node states from decoded packets and the passage of
// time. It starts no goroutines and never reads the clock: callers pass
// now. It is safe for concurrent use.
type Detector struct {
	timeout    time.Duration
	maxNodes   int
	failoverOn FailoverOn

	mu    sync.Mutex
	nodes map[string]*node
	stats Stats
	// changes counts changes a state file must hold at once: a state,
	// an incarnation, a failover. Stats.Accepted counts every packet,
	// sequence-only ones included, which a checkpoint may batch.
	changes uint64
}

// NewDetector returns a detector; zero Config fields take the defaults.
func NewDetector(cfg Config) (*Detector, error) {
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("peer detector: negative timeout %v", cfg.Timeout)
	}
	if cfg.MaxNodes < 0 {
		return nil, fmt.Errorf("peer detector: negative MaxNodes %d", cfg.MaxNodes)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxNodes == 0 {
		cfg.MaxNodes = DefaultMaxNodes
	}
	return &Detector{timeout: cfg.Timeout, maxNodes: cfg.MaxNodes, failoverOn: cfg.FailoverOn, nodes: make(map[string]*node)}, nil
}

// Timeout is the silence after which a node is declared Dead.
func (d *Detector) Timeout() time.Duration { return d.timeout }

// Expect names nodes that belong to the cluster, heard yet or not. A node
// expected and not heard for the timeout after now is declared Dead and
// failed over (Previous Unknown, incarnation 0), as a node heard alive
// then silent is: a listener started after a node went silent would
// otherwise never fail it over. That failover covers every incarnation
// that began before it by more than the timeout: heard later, such an
// incarnation is taken as the one failed over (its ALIVE dropped as
// ErrAfterFailover, its STALLED no new failover); a later one is new.
// An expected node is armed in every incarnation: a failure fails it
// over even when that incarnation was never seen alive (its first
// packet a STALLED, say), since this listener was told the node should
// be running. Nodes expected count against MaxNodes.
func (d *Detector) Expect(now time.Time, ids ...string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		if err := heartbeat.CheckNodeID(id); err != nil {
			return fmt.Errorf("expected node %q: %w", id, err)
		}
		n, known := d.nodes[id]
		if !known {
			if len(d.nodes) >= d.maxNodes {
				return fmt.Errorf("expected node %q: tracking %d nodes already: %w", id, len(d.nodes), ErrTooManyNodes)
			}
			n = &node{silentSince: now}
			d.nodes[id] = n
		}
		n.expected = true
	}
	return nil
}

// Observe takes one decoded packet received at now. It returns the node's
// event and whether its state changed; a rejected packet (replay, stale
// incarnation, too many nodes) returns an error and changes nothing.
func (d *Detector) Observe(p heartbeat.Packet, now time.Time) (Event, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ev, changed, err := d.observe(p, now)
	if err != nil {
		d.stats.reject(err)
		return Event{}, false, err
	}
	d.stats.Accepted++
	return ev, changed, nil
}

func (d *Detector) observe(p heartbeat.Packet, now time.Time) (Event, bool, error) {
	next := fromWire(p.State)
	if next == Unknown {
		return Event{}, false, fmt.Errorf("observing packet: state %d: %w", p.State, heartbeat.ErrBadState)
	}
	if p.NodeID == "" {
		return Event{}, false, fmt.Errorf("observing packet: empty node id: %w", heartbeat.ErrMalformed)
	}
	if p.Authenticated {
		// Only a packet whose MAC holds has a send time worth checking;
		// an unauthenticated one could carry any.
		if skew := now.Sub(time.Unix(0, p.SendTime)); skew > d.timeout || skew < -d.timeout {
			return Event{}, false, fmt.Errorf("node %q: sent %v from this clock, over the %v timeout: %w",
				p.NodeID, skew.Round(time.Millisecond), d.timeout, ErrOutsideWindow)
		}
	}
	n, known := d.nodes[p.NodeID]
	switch {
	case !known && len(d.nodes) >= d.maxNodes:
		return Event{}, false, fmt.Errorf("node %q: tracking %d nodes already: %w", p.NodeID, len(d.nodes), ErrTooManyNodes)
	case !known:
		n = &node{}
		d.nodes[p.NodeID] = n
	case p.Incarnation < n.incarnation:
		return Event{}, false, fmt.Errorf("node %q: incarnation %d older than %d: %w", p.NodeID, p.Incarnation, n.incarnation, ErrStale)
	case p.Incarnation == n.incarnation && p.Seq <= n.seq:
		return Event{}, false, fmt.Errorf("node %q: incarnation %d seq %d not after %d: %w", p.NodeID, p.Incarnation, p.Seq, n.seq, ErrReplay)
	case p.Incarnation == n.incarnation && n.failedOver && next == Alive:
		return Event{}, false, fmt.Errorf("node %q: incarnation %d was failed over: %w", p.NodeID, p.Incarnation, ErrAfterFailover)
	case next == Alive && d.coveredByBlindFailover(n, p.Incarnation):
		return Event{}, false, fmt.Errorf("node %q: incarnation %d began before the failover at %v, unheard: %w",
			p.NodeID, p.Incarnation, n.blindFailover.UTC().Format(time.RFC3339Nano), ErrAfterFailover)
	}
	if p.Incarnation != n.incarnation {
		d.changes++
	}
	switch {
	case d.coveredByBlindFailover(n, p.Incarnation):
		// Adopted as the incarnation failed over: its STALLED or FENCED
		// is news, not a new failure.
		n.wasAlive, n.failedOver = false, true
	case p.Incarnation != n.incarnation:
		n.wasAlive, n.failedOver = false, false
		n.blindFailover = time.Time{}
	}
	n.incarnation, n.seq, n.authenticated, n.lastSeen, n.silentSince = p.Incarnation, p.Seq, p.Authenticated, now, now
	n.deadline = time.Time{}
	if next != Alive {
		// Agents before this one put a deadline on ALIVE too, which no one
		// enforced: a healthy target cut off from its peers runs on past
		// it. Only a declared stall is killed whatever the network does,
		// so only that promise is handed on.
		n.deadline = localDeadline(p, now)
	}
	n.stall = p.Stall
	ev, changed := d.enter(p.NodeID, n, next, now)
	return ev, changed, nil
}

// localDeadline turns p's takeover deadline into this host's time: the
// sender's clock only measures how far it lies after the send, and that
// duration starts here when the packet arrived. Clocks need not agree.
// A packet without a send time (a hand-made one) keeps its deadline as is.
func localDeadline(p heartbeat.Packet, received time.Time) time.Time {
	d, ok := p.Deadline()
	if !ok {
		return time.Time{}
	}
	if p.SendTime <= 0 {
		return d
	}
	return received.Add(d.Sub(time.Unix(0, p.SendTime)))
}

// enter moves n to next and builds the event. This is the one place that
// decides failover, so packets and timeouts follow the same rule.
func (d *Detector) enter(id string, n *node, next State, now time.Time) (Event, bool) {
	prev := n.state
	n.state = next
	failover := prev != next && (n.wasAlive || n.expected) && !n.failedOver && d.failoverOn.triggers(next)
	n.failedOver = n.failedOver || failover
	if failover && prev == Unknown && next == Dead {
		n.blindFailover = now // no packet heard: the incarnation is unknown
	}
	if failover || prev != next {
		d.changes++
	}
	n.wasAlive = n.wasAlive || next == Alive
	return d.event(id, n, prev, failover, now), prev != next
}

// event describes n, just come from prev.
func (d *Detector) event(id string, n *node, prev State, failover bool, now time.Time) Event {
	next := n.state
	ev := Event{
		Node:             id,
		State:            next,
		Previous:         prev,
		Failover:         failover,
		Incarnation:      n.incarnation,
		Seq:              n.seq,
		Authenticated:    n.authenticated,
		Time:             now,
		TakeoverDeadline: n.deadline,
		Stall:            n.stall,
	}
	if next.failed() {
		ev.Reason = next.String()
	}
	return ev
}

// Tick declares Dead every node that has been silent for the timeout and
// returns those transitions, ordered by node id. Nodes that left are not
// expected to speak again and stay Left. An expected node never heard is
// silent since Expect. An expected node restored Dead from a state file
// but never failed over (the run that saw it die was not told to expect
// it, nor saw it alive) is failed over once silent for the timeout, with
// an event from Dead to Dead: it is a node of the cluster, heard before
// or not.
func (d *Detector) Tick(now time.Time) []Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	var evs []Event
	for id, n := range d.nodes {
		if n.state == Dead && n.expected && !n.failedOver && now.Sub(n.silentSince) >= d.timeout {
			n.failedOver = true
			d.changes++
			evs = append(evs, d.event(id, n, Dead, true, now))
			continue
		}
		if n.state == Dead || n.state == Left {
			continue
		}
		if now.Sub(n.silentSince) >= d.timeout {
			ev, _ := d.enter(id, n, Dead, now)
			evs = append(evs, ev)
		}
	}
	slices.SortFunc(evs, func(a, b Event) int { return strings.Compare(a.Node, b.Node) })
	return evs
}

// Stats returns a copy of the packet counters.
func (d *Detector) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats.clone()
}

// Nodes returns a snapshot of every known node, ordered by node id.
func (d *Detector) Nodes() []NodeStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]NodeStatus, 0, len(d.nodes))
	for id, n := range d.nodes {
		if n.state == Unknown {
			continue // expected, not heard yet, not yet declared dead
		}
		out = append(out, NodeStatus{
			Node: id, State: n.state, Incarnation: n.incarnation, Seq: n.seq,
			Authenticated: n.authenticated, LastSeen: n.lastSeen,
		})
	}
	slices.SortFunc(out, func(a, b NodeStatus) int { return strings.Compare(a.Node, b.Node) })
	return out
}
