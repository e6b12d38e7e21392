package bench

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/agent"
	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/tracker"
	"github.com/stallmon/stallmon/internal/waitsite"
	"github.com/stallmon/stallmon/internal/workload"
)

// runSnapshotCost measures one tracker snapshot (the iterator's pass and
// its decoding, in this process) of targets of each cfg.snapshotCases,
// with the wait sites taken, as stallmon does, and without
// (tracker.Options.NoWaitSites): what the kernel stacks cost, in one run,
// against the same build. The quiet set is the built-in table's, as under
// stallmon attach, so threads idle in futex are only counted, and only
// the Bounded cases' threads (asleep in openat of a FIFO) are listed and
// walked. The two trackers take their snapshots in alternation, round
// after round.
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
	pc := PollCase{Threads: sc.Threads, Bounded: sc.Bounded}
	fifo := ""
	if sc.Bounded {
		fifo = filepath.Join(t.TempDir(), "fifo")
		if err := unix.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	makeThreads(t, []*workload.Proc{target}, pc, fifo)
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
			for range cfg.snapshots {
				s, err := m.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				if err := checkListed(s, sc, sites); err != nil {
					t.Fatalf("%s, round %d: %v", sc, r+1, err)
				}
			}
			rows[sites].Samples = append(rows[sites].Samples, float64(time.Since(start).Microseconds())/float64(cfg.snapshots))
		}
	}
}

// checkListed checks a snapshot is what the figure claims to measure:
// every FIFO opener of a Bounded case listed, and its wait site read
// (pipe: wait_for_partner) when taken.
func checkListed(s tracker.Snapshot, sc SnapshotCase, sites bool) error {
	if !sc.Bounded {
		return nil
	}
	listed, read := 0, 0
	for _, th := range s.Threads {
		if th.Syscall != "openat" {
			continue
		}
		listed++
		if th.Wait.Class == waitsite.Pipe {
			read++
		}
	}
	switch {
	case listed < sc.Threads:
		return fmt.Errorf("%d threads listed in openat, want %d", listed, sc.Threads)
	case sites && read < sc.Threads:
		return fmt.Errorf("%d of the %d FIFO openers seen waiting on the pipe", read, sc.Threads)
	case !sites && read > 0:
		return fmt.Errorf("wait sites read with NoWaitSites")
	}
	return nil
}
