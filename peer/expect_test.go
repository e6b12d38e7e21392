package peer

import (
	"errors"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
)

// A node named as expected and never heard is failed over a timeout
// after the listener began: a listener started after the node fell
// silent would otherwise never fail it over.
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
	evs := d.Tick(t0.Add(testTimeout))
	if len(evs) != 1 || evs[0].Node != "b" || evs[0].Previous != Unknown || evs[0].State != Dead ||
		!evs[0].Failover || evs[0].Reason != "dead" || evs[0].Incarnation != 0 {
		t.Fatalf("after the timeout: %+v, want b unknown -> dead with a failover", evs)
	}
	if evs := d.Tick(t0.Add(2 * testTimeout)); len(evs) != 0 {
		t.Fatalf("failed over twice: %+v", evs)
	}
	// Heard at last, in an incarnation of its own: alive, and armed again.
	if _, _, err := d.Observe(*pkt("b", alive, 7, 1), t0.Add(3*testTimeout)); err != nil {
		t.Fatal(err)
	}
	evs = d.Tick(t0.Add(4 * testTimeout))
	if len(evs) != 1 || evs[0].Previous != Alive || !evs[0].Failover {
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
