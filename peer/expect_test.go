package peer

import (
	"errors"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
)

// A node named as expected and never heard is failed over a timeout
// after the listener began: a listener started after the node fell
// silent would otherwise never fail it over. That failover took over
// from whatever ran on the node then: an incarnation begun before it
// (by more than the timeout, the clocks' allowed skew) is the one failed
// over, whose ALIVE is dropped and whose STALLED runs no second hook;
// one begun later comes up, and fails over, as any restart.
func TestExpectedNodeNeverHeardFailsOver(t *testing.T) {
	d, err := NewDetector(Config{Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Expect(t0, "b"); err != nil {
		t.Fatal(err)
	}
	if evs := d.Tick(t0.Add(testTimeout - time.Nanosecond)); len(evs) != 0 {
		t.Fatalf("before the timeout: %+v", evs)
	}
	if n := d.Nodes(); len(n) != 0 {
		t.Fatalf("Nodes() lists a node never heard nor declared: %+v", n)
	}
	failover := t0.Add(testTimeout)
	evs := d.Tick(failover)
	if len(evs) != 1 || evs[0].Node != "b" || evs[0].Previous != Unknown || evs[0].State != Dead ||
		!evs[0].Failover || evs[0].Reason != "dead" || evs[0].Incarnation != 0 {
		t.Fatalf("after the timeout: %+v, want b unknown -> dead with a failover", evs)
	}
	if evs := d.Tick(t0.Add(2 * testTimeout)); len(evs) != 0 {
		t.Fatalf("failed over twice: %+v", evs)
	}
	// The process failed over, running all along behind a cut link (or
	// its STALLED burst lost), is heard at last.
	old := uint64(t0.Add(-time.Hour).UnixNano())
	if _, _, err := d.Observe(*pkt("b", alive, old, 1), t0.Add(3*testTimeout)); !errors.Is(err, ErrAfterFailover) {
		t.Fatalf("ALIVE of an incarnation begun before the blind failover: %v, want ErrAfterFailover", err)
	}
	ev, _, err := d.Observe(*pkt("b", stalled, old, 2), t0.Add(3*testTimeout))
	if err != nil || ev.Failover || ev.State != Stalled {
		t.Fatalf("STALLED of the incarnation failed over: %+v, %v; want stalled, no second failover", ev, err)
	}
	if evs := d.Tick(t0.Add(5 * testTimeout)); len(evs) != 1 || evs[0].Failover {
		t.Fatalf("silent again: %+v, want stalled -> dead without a failover", evs)
	}
	// Just inside the skew allowed: still the one failed over.
	edge := uint64(failover.Add(-testTimeout).UnixNano()) - 1
	if _, _, err := d.Observe(*pkt("b", alive, edge, 1), t0.Add(6*testTimeout)); !errors.Is(err, ErrAfterFailover) {
		t.Fatalf("ALIVE of an incarnation begun a timeout before the failover: %v, want ErrAfterFailover", err)
	}
	// A restart after the takeover: alive, and armed again.
	restart := uint64(failover.UnixNano())
	if _, _, err := d.Observe(*pkt("b", alive, restart, 1), t0.Add(7*testTimeout)); err != nil {
		t.Fatal(err)
	}
	evs = d.Tick(t0.Add(9 * testTimeout))
	if len(evs) != 1 || evs[0].Previous != Alive || !evs[0].Failover || evs[0].Incarnation != restart {
		t.Fatalf("silent again: %+v, want alive -> dead with a failover", evs)
	}
}

// An expected node is armed in every incarnation: one whose first packet
// is STALLED (its service hung from the start) is failed over, while a
// node nobody named and first heard stalled is not, as before.
func TestExpectedNodeFirstHeardStalled(t *testing.T) {
	d, err := NewDetector(Config{Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Expect(t0, "named"); err != nil {
		t.Fatal(err)
	}
	ev, _, err := d.Observe(*pkt("named", stalled, 3, 1), t0)
	if err != nil || !ev.Failover || ev.Previous != Unknown {
		t.Fatalf("expected node first heard stalled: %+v, %v; want a failover", ev, err)
	}
	ev, _, err = d.Observe(*pkt("stranger", stalled, 3, 1), t0)
	if err != nil || ev.Failover {
		t.Fatalf("unexpected node first heard stalled: %+v, %v; want no failover", ev, err)
	}
}

func TestExpectRefuses(t *testing.T) {
	d, err := NewDetector(Config{Timeout: testTimeout, MaxNodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Expect(t0, "bad\nid"); !errors.Is(err, heartbeat.ErrMalformed) {
		t.Fatalf("control character in an expected id: %v", err)
	}
	if err := d.Expect(t0, "a", "b"); !errors.Is(err, ErrTooManyNodes) {
		t.Fatalf("two expected nodes with MaxNodes 1: %v", err)
	}
}

// A node restored dead and never failed over (the run that saw it die
// neither expected it nor saw it alive) is failed over once silent for
// the timeout when it is now expected: --expect fails over a node not
// heard within the timeout of the start, heard before or not. Once.
func TestExpectedNodeRestoredDeadFailsOver(t *testing.T) {
	rec := stateRecord{Node: "a", State: "dead", Incarnation: 5, Seq: 3}
	for _, expected := range []bool{true, false} {
		d, err := NewDetector(Config{Timeout: testTimeout})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.restore([]stateRecord{rec}, t0); err != nil {
			t.Fatal(err)
		}
		if expected {
			if err := d.Expect(t0, "a"); err != nil {
				t.Fatal(err)
			}
		}
		if evs := d.Tick(t0.Add(testTimeout - time.Nanosecond)); len(evs) != 0 {
			t.Fatalf("expected=%v, before the timeout: %+v", expected, evs)
		}
		evs := d.Tick(t0.Add(testTimeout))
		if !expected {
			if len(evs) != 0 {
				t.Fatalf("not expected: %+v, want nothing (no one said it should run)", evs)
			}
			continue
		}
		if len(evs) != 1 || evs[0].Previous != Dead || evs[0].State != Dead || !evs[0].Failover ||
			evs[0].Reason != "dead" || evs[0].Incarnation != 5 {
			t.Fatalf("after the timeout: %+v, want a dead -> dead failover of incarnation 5", evs)
		}
		if evs := d.Tick(t0.Add(2 * testTimeout)); len(evs) != 0 {
			t.Fatalf("failed over twice: %+v", evs)
		}
		if recs := d.records(); len(recs) != 1 || !recs[0].FailedOver {
			t.Fatalf("saved %+v, want the failover kept", recs)
		}
		if _, _, err := d.Observe(*pkt("a", alive, 5, 4), t0.Add(3*testTimeout)); !errors.Is(err, ErrAfterFailover) {
			t.Fatalf("ALIVE of the incarnation failed over: %v, want ErrAfterFailover", err)
		}
	}
}
