package agent

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/tracker"
)

// A death is a stall from the first poll that sees it, past kill_after at
// once even for a syscall the table lets wait forever, it keeps ageing,
// and it never clears, also once the kernel's record of it is gone.
func TestDeathIsAPermanentKillingStall(t *testing.T) {
	t0 := time.Unix(1000, 0)
	futex := tracker.Death{TID: 42, Comm: "main", Nr: unix.SYS_FUTEX, Syscall: "futex", FD: -1,
		InSyscall: 2 * time.Second, Ago: 500 * time.Millisecond, Signal: unix.SIGSEGV, Seq: 1}
	var w deathWatch

	if fresh := w.update(tracker.Snapshot{Taken: t0}); len(fresh) != 0 || len(w.over(t0)) != 0 {
		t.Fatalf("no deaths yet, got fresh %v over %v", fresh, w.over(t0))
	}
	fresh := w.update(tracker.Snapshot{Taken: t0, Deaths: []tracker.Death{futex}, DeathsTotal: 1})
	if len(fresh) != 1 {
		t.Fatalf("first sight: %d fresh deaths, want 1", len(fresh))
	}
	j := fresh[0]
	if !j.overBudget() || !j.overKill() || j.reason != "died_in_syscall" {
		t.Fatalf("death judged overBudget=%v overKill=%v reason=%q, want a killing stall", j.overBudget(), j.overKill(), j.reason)
	}
	if j.thread.TID != 42 || j.thread.Syscall != "futex" || j.thread.State != tracker.StateDead {
		t.Fatalf("death reported as %+v", j.thread)
	}
	if j.thread.Elapsed != 2500*time.Millisecond {
		t.Fatalf("elapsed %v, want in-syscall 2s + 0.5s since death", j.thread.Elapsed)
	}

	// Seen again: not fresh, still over. Then the record drops out of the
	// kernel's ring: still over, and older.
	if fresh := w.update(tracker.Snapshot{Taken: t0.Add(time.Second), Deaths: []tracker.Death{futex}, DeathsTotal: 1}); len(fresh) != 0 {
		t.Fatalf("same death reported again: %v", fresh)
	}
	w.update(tracker.Snapshot{Taken: t0.Add(2 * time.Second), DeathsTotal: 1})
	over := w.over(t0.Add(2 * time.Second))
	if len(over) != 1 || over[0].thread.Elapsed != 4500*time.Millisecond {
		t.Fatalf("after 2s: %+v, want the one death aged to 4.5s", over)
	}

	// The unbounded rule of futex does not soften it.
	table, err := budget.Parse([]byte(testTable), nil)
	if err != nil {
		t.Fatal(err)
	}
	j.rule = table.Lookup("futex", j.fd.Kind)
	if !j.rule.Unbounded || !j.overKill() {
		t.Fatalf("with futex's rule %v: overKill=%v, want true", j.rule, j.overKill())
	}
}

// More deaths between two polls than the kernel keeps records of: the
// count alone makes a stall.
func TestDeathCountWithoutRecordsIsAStall(t *testing.T) {
	var w deathWatch
	fresh := w.update(tracker.Snapshot{Taken: time.Unix(1000, 0), DeathsTotal: 40})
	if len(fresh) != 1 || !fresh[0].overKill() || fresh[0].thread.Syscall != "unknown" {
		t.Fatalf("40 deaths without records gave %+v, want one unknown killing stall", fresh)
	}
	if again := w.update(tracker.Snapshot{Taken: time.Unix(1001, 0), DeathsTotal: 40}); len(again) != 0 {
		t.Fatalf("reported again: %+v", again)
	}
	if len(w.over(time.Unix(1002, 0))) != 1 {
		t.Fatal("the stall cleared")
	}
}

// The heartbeat reports a death before any longer-running stall.
func TestGateReportsDeathFirst(t *testing.T) {
	t0 := time.Unix(1000, 0)
	slow := judged{thread: tracker.Thread{TID: 7, Syscall: "fsync", Elapsed: time.Hour}, span: time.Hour}
	dead := death{Death: tracker.Death{TID: 9, Syscall: "ioctl", Seq: 1}, at: t0}.judged(t0)
	g := newGate(time.Second)
	g.polled(t0, []judged{slow, dead})
	st, j := g.state(t0)
	if st != gateStalled || j == nil || j.thread.TID != 9 {
		t.Fatalf("gate %v reports %+v, want stalled on the dead thread 9", st, j)
	}
}

// A 32-bit thread's death is reported with its ABI: its number is the
// ia32 table's (ioctl is 54 there, 16 on amd64), and the event says so.
func TestDeathCarriesItsABI(t *testing.T) {
	t0 := time.Unix(1000, 0)
	j := death{Death: tracker.Death{TID: 9, Nr: 54, ABI: tracker.ABICompat, Syscall: "ioctl", FD: 3, Seq: 1}, at: t0}.judged(t0)
	if j.thread.ABI != tracker.ABICompat || j.thread.Nr != 54 {
		t.Fatalf("death judged as %+v, want ia32 number 54", j.thread)
	}
	for _, a := range judgedAttrs(j) {
		if a.Key == "abi" {
			if got := a.Value.String(); got != tracker.ABICompat.String() {
				t.Fatalf("abi=%s, want %s", got, tracker.ABICompat)
			}
			return
		}
	}
	t.Fatalf("no abi in the death's event: %v", judgedAttrs(j))
}
