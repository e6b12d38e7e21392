package agent

import (
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/tracker"
)

func TestGateDecisions(t *testing.T) {
	t0 := time.Unix(1000, 0)
	stall := judged{thread: tracker.Thread{TID: 7, Syscall: "read", Elapsed: time.Second}, span: time.Second}
	longer := judged{thread: tracker.Thread{TID: 8, Syscall: "fsync", Elapsed: 3 * time.Second}, span: 3 * time.Second}
	// A thread the stopped rule holds (never kills) for longer than a
	// read whose rule kills: the read is what the heartbeat and the
	// integrations must hear of.
	kills := judged{thread: tracker.Thread{TID: 10, Syscall: "read", Elapsed: time.Second}, span: time.Second,
		rule: budget.Rule{Budget: time.Second, KillAfter: 3 * time.Second}}
	stoppedLong := judged{thread: tracker.Thread{TID: 11, Elapsed: 9 * time.Second}, span: 9 * time.Second, reason: "stopped",
		rule: budget.Rule{Budget: 3 * time.Second}}
	for _, tc := range []struct {
		name    string
		setup   func(g *gate)
		at      time.Time
		want    gateState
		wantTID int
	}{
		{"never polled", func(*gate) {}, t0, gateBlind, 0},
		{"fresh clean poll", func(g *gate) { g.polled(t0, nil) }, t0.Add(150 * time.Millisecond), gateAlive, 0},
		{"clean poll at the age limit", func(g *gate) { g.polled(t0, nil) }, t0.Add(200 * time.Millisecond), gateAlive, 0},
		{"clean poll too old", func(g *gate) { g.polled(t0, nil) }, t0.Add(201 * time.Millisecond), gateBlind, 0},
		{"stall", func(g *gate) { g.polled(t0, []judged{stall}) }, t0, gateStalled, 7},
		{"worst stall is reported", func(g *gate) { g.polled(t0, []judged{stall, longer}) }, t0, gateStalled, 8},
		{"a stall whose rule kills beats a longer one that never kills",
			func(g *gate) { g.polled(t0, []judged{stoppedLong, kills}) }, t0, gateStalled, 10},
		{"stale stall is blind", func(g *gate) { g.polled(t0, []judged{stall}) }, t0.Add(time.Second), gateBlind, 0},
		{"stall then clean", func(g *gate) { g.polled(t0, []judged{stall}); g.polled(t0.Add(100*time.Millisecond), nil) },
			t0.Add(100 * time.Millisecond), gateAlive, 0},
		{"fenced stays fenced", func(g *gate) { g.fence(); g.polled(t0, nil) }, t0, gateFenced, 0},
		{"unknown thread is blind", func(g *gate) { g.polledUnknown(t0, nil, "thread 9 unknown") }, t0, gateBlind, 0},
		{"known stall beats unknown thread", func(g *gate) { g.polledUnknown(t0, []judged{stall}, "thread 9 unknown") },
			t0, gateStalled, 7},
		{"known again is alive", func(g *gate) {
			g.polledUnknown(t0, nil, "thread 9 unknown")
			g.polled(t0.Add(100*time.Millisecond), nil)
		}, t0.Add(100 * time.Millisecond), gateAlive, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate(200 * time.Millisecond)
			tc.setup(g)
			got, j := g.state(tc.at)
			if got != tc.want {
				t.Fatalf("state = %v, want %v", got, tc.want)
			}
			if tc.wantTID != 0 && (j == nil || j.thread.TID != tc.wantTID) {
				t.Fatalf("reported stall %+v, want tid %d", j, tc.wantTID)
			}
		})
	}
}

// A blind verdict says why when its poll was fresh (an unknown thread),
// and says nothing once the poll itself is stale.
func TestGateUnknownReason(t *testing.T) {
	t0 := time.Unix(1000, 0)
	g := newGate(200 * time.Millisecond)
	g.polledUnknown(t0, nil, "thread 9 unknown")
	if st, _, _, why := g.read(t0); st != gateBlind || why != "thread 9 unknown" {
		t.Fatalf("fresh poll with an unknown thread: %v %q", st, why)
	}
	if st, _, _, why := g.read(t0.Add(time.Second)); st != gateBlind || why != "" {
		t.Fatalf("stale poll: %v %q, want blind without a thread to blame", st, why)
	}
}

func TestStallSetReportsEachStallOnce(t *testing.T) {
	s := newStallSet()
	a := judged{thread: tracker.Thread{TID: 1, Entered: 100}}
	aAgain := judged{thread: tracker.Thread{TID: 1, Entered: 200}} // same thread, new syscall
	b := judged{thread: tracker.Thread{TID: 2, Entered: 100}}

	steps := []struct {
		over             []judged
		started, cleared int
	}{
		{[]judged{a}, 1, 0},
		{[]judged{a, b}, 1, 0},
		{[]judged{a, b}, 0, 0},
		{[]judged{aAgain, b}, 1, 1},
		{nil, 0, 2},
		{nil, 0, 0},
	}
	for i, st := range steps {
		started, cleared := s.update(st.over)
		if len(started) != st.started || len(cleared) != st.cleared {
			t.Fatalf("step %d: started %d cleared %d, want %d and %d", i, len(started), len(cleared), st.started, st.cleared)
		}
	}
}
