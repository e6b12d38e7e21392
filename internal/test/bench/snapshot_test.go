package bench

import (
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/agent"
	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/tracker"
)

// runSnapshotCost measures one tracker snapshot (the iterator's pass and
// its decoding, in this process) of targets of each cfg.snapshotCases,
// with the wait sites taken, as stallmon does, and without
// (tracker.Options.NoWaitSites): what the kernel stacks cost, in one run.
// The quiet set is the built-in table's, as under stallmon attach, so
// idle threads are only counted and only the senders are walked. The two
// trackers take their snapshots in alternation, round after round.
func runSnapshotCost(t *testing.T, cfg config, tab *Table) {
	bin := ctarget.Build(t, "idlethreads")
	table, err := budget.Default(func(name string) bool { _, ok := tracker.SyscallNr(name); return ok })
	if err != nil {
		t.Fatal(err)
	}
	quiet := agent.Quiet(table)
	for _, sc := range cfg.snapshotCases {
		off := tab.Add(&Row{Key: SnapshotKey(sc, false), Bench: "time per snapshot", Unit: Micros,
			Case: sc.String() + ", no wait sites (before)"})
		on := tab.Add(&Row{Key: SnapshotKey(sc, true), Bench: "time per snapshot", Unit: Micros, Base: off,
			Case: sc.String() + ", wait sites taken"})
		measureSnapshots(t, cfg, bin, sc, quiet, map[bool]*Row{false: off, true: on})
		t.Logf("snapshot cost, %s: %s µs without wait sites, %s µs with", sc, Format(off.Figure()), Format(on.Figure()))
	}
}

func measureSnapshots(t *testing.T, cfg config, bin string, sc SnapshotCase, quiet tracker.QuietFunc, rows map[bool]*Row) {
	target := startProtocol(t, bin)
	defer target.Stop()
	spawnThreads(t, target, PollCase{Threads: sc.Threads, Senders: sc.Senders}, senderFile(t))
	trackers := map[bool]*tracker.Tracker{}
	for _, sites := range []bool{false, true} {
		m, err := tracker.Attach(tracker.Process(target.PID), nil, tracker.Options{Quiet: quiet, NoWaitSites: !sites})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		trackers[sites] = m
	}
	for r := range cfg.rounds {
		for _, sites := range []bool{false, true} {
			m := trackers[sites]
			start := time.Now()
			var listed int
			for range cfg.snapshots {
				s, err := m.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				listed = len(s.Threads)
				if sites {
					checkWaits(t, s, sc)
				}
			}
			if listed < sc.Senders {
				t.Fatalf("%s, round %d: %d threads listed, want the %d senders at least", sc, r+1, listed, sc.Senders)
			}
			rows[sites].Samples = append(rows[sites].Samples, float64(time.Since(start).Microseconds())/float64(cfg.snapshots))
		}
	}
}

// checkWaits fails unless every sender was seen waiting on its socket:
// the figure is that of stacks taken and read.
func checkWaits(t *testing.T, s tracker.Snapshot, sc SnapshotCase) {
	t.Helper()
	n := 0
	for _, th := range s.Threads {
		if th.Syscall == "sendfile" && th.Wait.Captured() {
			if th.Wait.Class.String() != "socket_send" {
				t.Fatalf("%s: sender %d waits in %s, want socket_send", sc, th.TID, th.Wait)
			}
			n++
		}
	}
	// A sender that woke (its peer's buffer moved) may be on a CPU at
	// one snapshot; nearly all sleep.
	if n < sc.Senders*9/10 {
		t.Fatalf("%s: %d senders seen waiting, want %d", sc, n, sc.Senders)
	}
}
