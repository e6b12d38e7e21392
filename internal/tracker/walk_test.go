package tracker

import (
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// The churn: old threads end one every churnGap, for churnOld*churnGap,
// fewer where the kernel allows fewer threads (a VM of 1 GiB, about 7,800).
const (
	churnOld = 8000
	churnGap = 500 * time.Microsecond
)

// startChurn starts ctarget's churn, attaches to it (every thread listed:
// no quiet set) and sends its reader into a read that hangs. It returns
// the tracker, the reader's tid and when the churn of old threads ends.
func startChurn(t *testing.T, opts Options) (*Tracker, int, time.Time) {
	t.Helper()
	old := churnOld
	b, err := os.ReadFile("/proc/sys/kernel/threads-max")
	if err != nil {
		t.Fatal(err)
	}
	if most, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		t.Fatal(err)
	} else if old > most/4 {
		old = most / 4
	}
	fs := fusehang.Mount(t, fusehang.Options{})
	bin := ctarget.Build(t, "churn")
	p := ctarget.Start(t, bin, strconv.Itoa(old), strconv.Itoa(int(churnGap/time.Microsecond)), fs.File)
	// Cleanups run last first: the held read is answered before the
	// target is killed and waited for.
	t.Cleanup(fs.Release)
	m := attachWith(t, p.Cmd.Process.Pid, opts)
	if _, err := io.WriteString(p.Stdin, "hang\n"); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(time.Duration(old) * churnGap)
	if _, err := fs.WaitFor("the reader's read", 10*time.Second, func(s fusehang.Stats) bool { return s.Pending > 0 }); err != nil {
		t.Fatal(err)
	}
	return m, p.Int(t, "reader"), end
}

// A thread stuck in the kernel is in every snapshot, however fast the
// threads around it come and go: threads older than it exit one after the
// other, and the task iterator, cut short now and then by the exit of the
// very thread it stands on, would leave out every thread after that one.
// A pass cut short is taken again; should every attempt be, the snapshot
// fails, and the agent goes blind rather than judge a part of the process.
//
// This is the per-visit walk's case; the thread walk's, which nothing but
// an overflow can cut short, is TestThreadWalkNeverJudgedCutShort.
func TestChurnNeverHidesStuckThread(t *testing.T) {
	testChurnNeverHides(t, Options{NoThreadWalk: true})
}

// walks are the two ways a pass walks a process: per visit, and in one
// visit of its leader where the kernel can (threads.go).
var walks = []struct {
	name string
	opts Options
}{
	{"per-visit", Options{NoThreadWalk: true}},
	{"thread-walk", Options{}},
}

// churnQuiet leaves out the churn's old threads, which wait in futex:
// the rest fits one read, so the thread walk's passes are thread walks,
// not overflows walked per visit.
func churnQuiet(syscall string, _ ...fdkind.Kind) bool { return syscall == "futex" }

func testChurnNeverHides(t *testing.T, opts Options) {
	opts.Quiet = churnQuiet
	m, reader, end := startChurn(t, opts)
	requireWalk(t, m, opts)
	start := time.Now()
	var snaps, missed, failed int
	for time.Now().Before(end) {
		s, err := m.Snapshot()
		if err != nil {
			t.Logf("snapshot failed: %v", err)
			failed++
			continue
		}
		snaps++
		if _, ok := s.Thread(reader); !ok {
			missed++
		}
	}
	c, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d snapshots in %v of churn: %d without the stuck reader, %d failed; %d passes cut short and taken again",
		snaps, time.Since(start).Round(time.Millisecond), missed, failed, c.PartialWalks)
	if missed > 0 {
		t.Errorf("%d of %d snapshots lack the stuck reader", missed, snaps)
	}
	if failed > snaps/100 {
		t.Errorf("%d of %d snapshots failed: the retries should make a failure rare", failed, snaps+failed)
	}
}

// Each pass that left the stuck reader out is found cut short: the check
// has no false negatives. (Passes found cut short that still hold the
// reader were cut after it, or had a tail that exited after its visit.)
func TestPartialWalkIsDetected(t *testing.T) {
	m, reader, end := startChurn(t, Options{NoThreadWalk: true})
	var passes, hidden, flagged, flaggedSeen int
	for time.Now().Before(end) {
		if err := m.startPass(true); err != nil {
			t.Fatal(err)
		}
		if err := m.objs.WalkLast.Set(uint32(0)); err != nil {
			t.Fatal(err)
		}
		iters, _, err := m.passIters()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := readIter(iters[0].walkLink(), nil)
		if err != nil {
			t.Fatal(err)
		}
		end, err := m.walkEnd()
		if err != nil {
			t.Fatal(err)
		}
		whole := end != gen.StallmonWalkEndWALK_MID
		seen := false
		for _, rec := range records(raw) {
			seen = seen || int(rec.Tid) == reader
		}
		passes++
		switch {
		case !seen && whole:
			hidden++
		case !seen:
			flagged++
		case !whole:
			flaggedSeen++
		}
	}
	t.Logf("%d passes: %d without the reader, all found cut short; %d cut short with the reader in them", passes, flagged, flaggedSeen)
	if hidden > 0 {
		t.Errorf("%d of %d passes lack the stuck reader, yet were taken for whole", hidden, passes)
	}
}
