package peer

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

const testTimeout = 3 * time.Second

func pkt(node string, s heartbeat.State, inc, seq uint64) *heartbeat.Packet {
	p := &heartbeat.Packet{State: s, NodeID: node, Incarnation: inc, Seq: seq}
	if s != heartbeat.StateAlive {
		p.Stall = heartbeat.Stall{TID: 77, Syscall: 0, Name: "read", Elapsed: time.Second}
	}
	return p
}

const (
	alive   = heartbeat.StateAlive
	stalled = heartbeat.StateStalled
	fenced  = heartbeat.StateFenced
	leaving = heartbeat.StateLeaving
)

// tr is the part of an Event the transition tables check.
type tr struct {
	node     string
	from, to State
	failover bool
	reason   string
}

func (t tr) String() string {
	return fmt.Sprintf("%s %s->%s failover=%v reason=%q", t.node, t.from, t.to, t.failover, t.reason)
}

func trOf(ev Event) tr { return tr{ev.Node, ev.Previous, ev.State, ev.Failover, ev.Reason} }

// step is one packet (p != nil) or one Tick (p == nil) at t0+at.
type step struct {
	at   time.Duration
	p    *heartbeat.Packet
	want []tr
	err  error
}

func tick(at time.Duration, want ...tr) step { return step{at: at, want: want} }

func obs(at time.Duration, p *heartbeat.Packet, want ...tr) step {
	return step{at: at, p: p, want: want}
}

func rej(at time.Duration, p *heartbeat.Packet, err error) step {
	return step{at: at, p: p, err: err}
}

func TestDetectorTransitions(t *testing.T) {
	const s = time.Second
	cases := []struct {
		name  string
		on    FailoverOn
		steps []step
	}{
		{"first seen alive is not a failure", FailoverOnStalled, []step{
			obs(0, pkt("a", alive, 1, 1), tr{"a", Unknown, Alive, false, ""}),
		}},
		{"repeated alive changes nothing", FailoverOnStalled, []step{
			obs(0, pkt("a", alive, 1, 1), tr{"a", Unknown, Alive, false, ""}),
			obs(1*s, pkt("a", alive, 1, 2)),
			obs(2*s, pkt("a", alive, 1, 3)),
		}},
		{"alive to stalled fails over", FailoverOnStalled, []step{
			obs(0, pkt("a", alive, 1, 1), tr{"a", Unknown, Alive, false, ""}),
			obs(1*s, pkt("a", stalled, 1, 2), tr{"a", Alive, Stalled, true, "stalled"}),
			obs(2*s, pkt("a", stalled, 1, 3)),
		}},
		{"alive to fenced fails over", FailoverOnStalled, []step{
			obs(0, pkt("a", alive, 1, 1), tr{"a", Unknown, Alive, false, ""}),
			obs(1*s, pkt("a", fenced, 1, 2), tr{"a", Alive, Fenced, true, "fenced"}),
		}},
		{"dead exactly at the timeout, not before", FailoverOnStalled, []step{
			obs(0, pkt("a", alive, 1, 1), tr{"a", Unknown, Alive, false, ""}),
			tick(testTimeout - time.Nanosecond),
			tick(testTimeout, tr{"a", Alive, Dead, true, "dead"}),
			tick(10 * testTimeout),
		}},
		{"an accepted packet restarts the timeout", FailoverOnStalled, []step{
			obs(0, pkt("a", alive, 1, 1), tr{"a", Unknown, Alive, false, ""}),
			obs(2*s, pkt("a", alive, 1, 2)),
			tick(3 * s),
			tick(5*s, tr{"a", Alive, Dead, true, "dead"}),
		}},
		{"a rejected packet does not restart the timeout", FailoverOnStalled, []step{
			obs(0, pkt("a", alive, 1, 5), tr{"a", Unknown, Alive, false, ""}),
			rej(2*s, pkt("a", alive, 1, 5), ErrReplay),
			tick(3*s, tr{"a", Alive, Dead, true, "dead"}),
		}},
		{"one failover per failure: stalled, fenced, dead", FailoverOnStalled, []step{
			obs(0, pkt("a", alive, 1, 1), tr{"a", Unknown, Alive, false, ""}),
			obs(1*s, pkt("a", stalled, 1, 2), tr{"a", Alive, Stalled, true, "stalled"}),
			obs(2*s, pkt("a", fenced, 1, 3), tr{"a", Stalled, Fenced, false, "fenced"}),
			tick(5*s, tr{"a", Fenced, Dead, false, "dead"}),
		}},
		{"stalled then silent is the same failure", FailoverOnStalled, []step{
			obs(0, pkt("a", alive, 1, 1), tr{"a", Unknown, Alive, false, ""}),
			obs(1*s, pkt("a", stalled, 1, 2), tr{"a", Alive, Stalled, true, "stalled"}),
			tick(4*s, tr{"a", Stalled, Dead, false, "dead"}),
		}},
		{"a failed-over incarnation is never alive again", FailoverOnStalled, []step{
			obs(0, pkt("a", alive, 1, 1), tr{"a", Unknown, Alive, false, ""}),
			obs(1*s, pkt("a", stalled, 1, 2), tr{"a", Alive, Stalled, true, "stalled"}),
			rej(2*s, pkt("a", alive, 1, 3), ErrAfterFailover),
			obs(2*s, pkt("a", fenced, 1, 4), tr{"a", Stalled, Fenced, false, "fenced"}),
			obs(3*s, pkt("a", alive, 2, 1), tr{"a", Fenced, Alive, false, ""}),
			obs(4*s, pkt("a", stalled, 2, 2), tr{"a", Alive, Stalled, true, "stalled"}),
		}},
		{"healed partition: dead stays dead in that incarnation", FailoverOnStalled, []step{
			obs(0, pkt("a", alive, 1, 1), tr{"a", Unknown, Alive, false, ""}),
			tick(3*s, tr{"a", Alive, Dead, true, "dead"}),
			rej(4*s, pkt("a", alive, 1, 2), ErrAfterFailover),
		}},
		{"dead node back with a new incarnation", FailoverOnStalled, []step{
			obs(0, pkt("a", alive, 1, 9), tr{"a", Unknown, Alive, false, ""}),
			tick(3*s, tr{"a", Alive, Dead, true, "dead"}),
			obs(4*s, pkt("a", alive, 2, 1), tr{"a", Dead, Alive, false, ""}),
			tick(7*s, tr{"a", Alive, Dead, true, "dead"}),
		}},
		{"dead then stalled is the same failure", FailoverOnStalled, []step{
			obs(0, pkt("a", alive, 1, 1), tr{"a", Unknown, Alive, false, ""}),
			tick(3*s, tr{"a", Alive, Dead, true, "dead"}),
			obs(4*s, pkt("a", stalled, 1, 2), tr{"a", Dead, Stalled, false, "stalled"}),
		}},
		{"first seen stalled is not a failure until alive was seen", FailoverOnStalled, []step{
			obs(0, pkt("a", stalled, 1, 1), tr{"a", Unknown, Stalled, false, "stalled"}),
			tick(3*s, tr{"a", Stalled, Dead, false, "dead"}),
			obs(4*s, pkt("a", alive, 2, 1), tr{"a", Dead, Alive, false, ""}),
			obs(5*s, pkt("a", fenced, 2, 2), tr{"a", Alive, Fenced, true, "fenced"}),
		}},
		{"leaving is not a failure and never dies", FailoverOnStalled, []step{
			obs(0, pkt("a", alive, 1, 1), tr{"a", Unknown, Alive, false, ""}),
			obs(1*s, pkt("a", leaving, 1, 2), tr{"a", Alive, Left, false, ""}),
			tick(100 * s),
			obs(101*s, pkt("a", alive, 2, 1), tr{"a", Left, Alive, false, ""}),
		}},
		{"replay: same seq and lower seq", FailoverOnStalled, []step{
			obs(0, pkt("a", alive, 5, 10), tr{"a", Unknown, Alive, false, ""}),
			rej(1*s, pkt("a", stalled, 5, 10), ErrReplay),
			rej(1*s, pkt("a", stalled, 5, 3), ErrReplay),
			obs(1*s, pkt("a", stalled, 5, 11), tr{"a", Alive, Stalled, true, "stalled"}),
		}},
		{"stale incarnation even with a higher seq", FailoverOnStalled, []step{
			obs(0, pkt("a", alive, 5, 1), tr{"a", Unknown, Alive, false, ""}),
			rej(1*s, pkt("a", stalled, 4, 1000), ErrStale),
			obs(1*s, pkt("a", alive, 6, 0)), // a restart may start seq anywhere
			rej(1*s, pkt("a", stalled, 5, 2), ErrStale),
		}},
		{"failover on fenced: a stall that resumes is no failure", FailoverOnFenced, []step{
			obs(0, pkt("a", alive, 1, 1), tr{"a", Unknown, Alive, false, ""}),
			obs(1*s, pkt("a", stalled, 1, 2), tr{"a", Alive, Stalled, false, "stalled"}),
			obs(2*s, pkt("a", alive, 1, 3), tr{"a", Stalled, Alive, false, ""}),
			obs(3*s, pkt("a", stalled, 1, 4), tr{"a", Alive, Stalled, false, "stalled"}),
			obs(4*s, pkt("a", fenced, 1, 5), tr{"a", Stalled, Fenced, true, "fenced"}),
		}},
		{"failover on fenced: silence after a stall fails over", FailoverOnFenced, []step{
			obs(0, pkt("a", alive, 1, 1), tr{"a", Unknown, Alive, false, ""}),
			obs(1*s, pkt("a", stalled, 1, 2), tr{"a", Alive, Stalled, false, "stalled"}),
			tick(4*s, tr{"a", Stalled, Dead, true, "dead"}),
		}},
		{"nodes are independent", FailoverOnStalled, []step{
			obs(0, pkt("a", alive, 1, 1), tr{"a", Unknown, Alive, false, ""}),
			obs(1*s, pkt("b", alive, 1, 1), tr{"b", Unknown, Alive, false, ""}),
			obs(2*s, pkt("b", alive, 1, 2)),
			tick(3*s, tr{"a", Alive, Dead, true, "dead"}),
			tick(5*s, tr{"b", Alive, Dead, true, "dead"}),
		}},
		{"several dead in one tick, ordered by node", FailoverOnStalled, []step{
			obs(0, pkt("c", alive, 1, 1), tr{"c", Unknown, Alive, false, ""}),
			obs(0, pkt("a", stalled, 1, 1), tr{"a", Unknown, Stalled, false, "stalled"}),
			obs(0, pkt("b", alive, 1, 1), tr{"b", Unknown, Alive, false, ""}),
			tick(3*s, tr{"a", Stalled, Dead, false, "dead"}, tr{"b", Alive, Dead, true, "dead"}, tr{"c", Alive, Dead, true, "dead"}),
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := NewDetector(Config{Timeout: testTimeout, FailoverOn: c.on})
			if err != nil {
				t.Fatal(err)
			}
			for i, st := range c.steps {
				runStep(t, d, i, st)
			}
		})
	}
}

func runStep(t *testing.T, d *Detector, i int, st step) {
	t.Helper()
	now := t0.Add(st.at)
	if st.p == nil {
		var got []tr
		for _, ev := range d.Tick(now) {
			got = append(got, trOf(ev))
		}
		if !reflect.DeepEqual(got, st.want) {
			t.Fatalf("step %d Tick(+%v) = %v, want %v", i, st.at, got, st.want)
		}
		return
	}
	ev, changed, err := d.Observe(*st.p, now)
	if st.err != nil {
		if !errors.Is(err, st.err) || changed || !reflect.DeepEqual(ev, Event{}) {
			t.Fatalf("step %d Observe = %+v, %v, %v; want rejection %v", i, ev, changed, err, st.err)
		}
		return
	}
	if err != nil {
		t.Fatalf("step %d Observe: %v", i, err)
	}
	if changed != (len(st.want) == 1) {
		t.Fatalf("step %d Observe changed=%v (%v), want %v", i, changed, trOf(ev), st.want)
	}
	if changed && trOf(ev) != st.want[0] {
		t.Fatalf("step %d Observe = %v, want %v", i, trOf(ev), st.want[0])
	}
	if !changed && (ev.State != ev.Previous || ev.Failover) {
		t.Fatalf("step %d unchanged event is %v", i, trOf(ev))
	}
}

func TestDetectorEventCarriesPacket(t *testing.T) {
	d, err := NewDetector(Config{Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Observe(*pkt("n1", alive, 42, 1), t0); err != nil {
		t.Fatal(err)
	}
	p := pkt("n1", stalled, 42, 2)
	p.Authenticated, p.KeyID = true, 3
	p.TakeoverDeadline = t0.Add(5 * time.Second).UnixNano()
	at := t0.Add(time.Second)
	p.SendTime = at.Add(-time.Millisecond).UnixNano()
	ev, changed, err := d.Observe(*p, at)
	if err != nil || !changed {
		t.Fatalf("Observe = %v, %v", changed, err)
	}
	want := Event{
		Node: "n1", State: Stalled, Previous: Alive, Failover: true, Reason: "stalled",
		Incarnation: 42, Seq: 2, Authenticated: true, Time: at,
		// 5s after t0 as the sender said, 1ms after its send: counted here
		// from the arrival, 5.001s after t0 on this clock.
		TakeoverDeadline: at.Add(5*time.Second + time.Millisecond - time.Second), Stall: p.Stall,
	}
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("event\n got %+v\nwant %+v", ev, want)
	}
	// The dead event reports what was last heard.
	evs := d.Tick(at.Add(testTimeout))
	if len(evs) != 1 || evs[0].Seq != 2 || evs[0].Incarnation != 42 || !evs[0].TakeoverDeadline.Equal(want.TakeoverDeadline) {
		t.Fatalf("dead event = %+v", evs)
	}
	nodes := d.Nodes()
	if len(nodes) != 1 || nodes[0].State != Dead || !nodes[0].LastSeen.Equal(at) {
		t.Fatalf("Nodes() = %+v", nodes)
	}
}

func TestDetectorStats(t *testing.T) {
	d, err := NewDetector(Config{Timeout: testTimeout, MaxNodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		p   *heartbeat.Packet
		err error
	}{
		{pkt("a", alive, 2, 1), nil},
		{pkt("a", alive, 2, 2), nil},
		{pkt("a", alive, 2, 2), ErrReplay},
		{pkt("a", alive, 2, 1), ErrReplay},
		{pkt("a", alive, 1, 9), ErrStale},
		{pkt("b", alive, 1, 1), nil},
		{pkt("c", alive, 1, 1), ErrTooManyNodes},
		{&heartbeat.Packet{NodeID: "a", State: 0, Incarnation: 3}, heartbeat.ErrBadState},
	}
	for i, s := range steps {
		if _, _, err := d.Observe(*s.p, t0); !errors.Is(err, s.err) {
			t.Fatalf("#%d: got %v, want %v", i, err, s.err)
		}
	}
	got := d.Stats()
	want := Stats{Accepted: 3, Rejected: map[string]uint64{"replay": 2, "stale": 1, "too_many_nodes": 1, "bad_state": 1}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Stats() = %+v, want %+v", got, want)
	}
	got.Rejected["replay"] = 100
	if d.Stats().Rejected["replay"] != 2 {
		t.Fatal("Stats() shares its map with the detector")
	}
	if got := want.TotalRejected(); got != 5 {
		t.Fatalf("TotalRejected() = %d, want 5", got)
	}
}

func TestNewDetectorRefuses(t *testing.T) {
	if _, err := NewDetector(Config{Timeout: -time.Second}); err == nil {
		t.Fatal("negative timeout accepted")
	}
	if _, err := NewDetector(Config{MaxNodes: -1}); err == nil {
		t.Fatal("negative MaxNodes accepted")
	}
	d, err := NewDetector(Config{})
	if err != nil || d.Timeout() != DefaultTimeout {
		t.Fatalf("zero Config: %v, timeout %v", err, d.Timeout())
	}
}

func TestRejectReason(t *testing.T) {
	cases := map[error]string{
		heartbeat.ErrTruncated: "truncated", heartbeat.ErrOversized: "oversized",
		heartbeat.ErrBadMagic: "bad_magic", heartbeat.ErrBadVersion: "bad_version",
		heartbeat.ErrBadState: "bad_state", heartbeat.ErrUnknownKey: "unknown_key",
		heartbeat.ErrBadMAC: "bad_mac", heartbeat.ErrUnauthenticated: "unauthenticated",
		heartbeat.ErrMalformed: "malformed", ErrReplay: "replay", ErrStale: "stale",
		ErrTooManyNodes: "too_many_nodes", errors.New("boom"): "other",
	}
	for err, want := range cases {
		if got := RejectReason(fmt.Errorf("wrapped: %w", err)); got != want {
			t.Errorf("RejectReason(%v) = %q, want %q", err, got, want)
		}
	}
}

// An authenticated packet sent further than the timeout from the
// receiver's clock is a recording, whichever side of now it lies: a
// listener that restarted has forgotten the sequence numbers it saw, and
// must not let a replayed ALIVE vouch for a node again. Unauthenticated
// packets carry no send time worth checking.
func TestDetectorRejectsAuthenticatedPacketsOutsideWindow(t *testing.T) {
	d, err := NewDetector(Config{Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	for _, c := range []struct {
		name   string
		sent   time.Duration // from now
		authed bool
		want   error
	}{
		{"recorded an hour ago", -time.Hour, true, ErrOutsideWindow},
		{"just over the timeout ago", -testTimeout - time.Millisecond, true, ErrOutsideWindow},
		{"from the future", testTimeout + time.Millisecond, true, ErrOutsideWindow},
		{"within the window", -testTimeout + time.Millisecond, true, nil},
		{"unauthenticated, old", -time.Hour, false, nil},
	} {
		p := pkt("n-"+c.name, alive, 1, 1)
		p.Authenticated = c.authed
		p.SendTime = now.Add(c.sent).UnixNano()
		_, _, err := d.Observe(*p, now)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Observe = %v, want %v", c.name, err, c.want)
		}
	}
	if got := d.Stats().Rejected["outside_window"]; got != 3 {
		t.Errorf("outside_window rejections %d, want 3", got)
	}
}

// A hook may wait for the node's takeover deadline: its time starts then.
func TestHookTimeoutCountsFromTheDeadline(t *testing.T) {
	now := t0
	for _, c := range []struct {
		deadline time.Time
		want     time.Duration
	}{
		{time.Time{}, 30 * time.Second},
		{now.Add(-time.Second), 30 * time.Second},
		{now.Add(20 * time.Second), 50 * time.Second},
	} {
		if got := hookTimeout(30*time.Second, Event{TakeoverDeadline: c.deadline}, now); got != c.want {
			t.Errorf("deadline %v: %v, want %v", c.deadline, got, c.want)
		}
	}
}

// The takeover deadline is a duration from the send on the sender's
// clock, moved onto the receiver's: a sender whose clock is an hour off
// still promises the same number of seconds.
func TestTakeoverDeadlineIgnoresClockOffset(t *testing.T) {
	d, err := NewDetector(Config{Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	received := t0
	senderNow := t0.Add(-time.Hour) // the sender's clock is an hour behind
	p := pkt("skewed", stalled, 1, 1)
	p.SendTime = senderNow.UnixNano()
	p.TakeoverDeadline = senderNow.Add(7 * time.Second).UnixNano()
	ev, _, err := d.Observe(*p, received)
	if err != nil {
		t.Fatal(err)
	}
	if want := received.Add(7 * time.Second); !ev.TakeoverDeadline.Equal(want) {
		t.Fatalf("deadline %v, want %v: 7s after arrival", ev.TakeoverDeadline, want)
	}
}

// An ALIVE packet's takeover deadline (older agents sent one) is not
// handed on: no one kills a healthy target cut off from its peers, so a
// node dead by silence after ALIVE comes with no deadline, while silence
// after STALLED keeps the stall's.
func TestDeadAfterAliveCarriesNoDeadline(t *testing.T) {
	d, err := NewDetector(Config{Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	a := pkt("a", alive, 1, 1)
	a.SendTime = t0.UnixNano()
	a.TakeoverDeadline = t0.Add(2 * time.Second).UnixNano()
	if ev, _, err := d.Observe(*a, t0); err != nil || !ev.TakeoverDeadline.IsZero() {
		t.Fatalf("ALIVE: %+v, %v; want no deadline", ev, err)
	}
	evs := d.Tick(t0.Add(testTimeout))
	if len(evs) != 1 || !evs[0].Failover || !evs[0].TakeoverDeadline.IsZero() {
		t.Fatalf("dead after ALIVE: %+v, want a failover with no deadline", evs)
	}

	s := pkt("s", stalled, 1, 1)
	s.SendTime = t0.UnixNano()
	s.TakeoverDeadline = t0.Add(2 * time.Second).UnixNano()
	if _, _, err := d.Observe(*pkt("s", alive, 1, 1), t0); err != nil {
		t.Fatal(err)
	}
	s.Seq = 2
	if _, _, err := d.Observe(*s, t0); err != nil {
		t.Fatal(err)
	}
	evs = d.Tick(t0.Add(2 * testTimeout))
	if len(evs) != 1 || evs[0].Node != "s" || !evs[0].TakeoverDeadline.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("dead after STALLED: %+v, want the stall's deadline", evs)
	}
}
