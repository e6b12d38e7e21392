package tracker

import (
	"testing"
	"time"
)

// A thread stuck for real in the kernel (a read into a userfaultfd page no
// one resolves) is reported with its tid, syscall and fd, and its elapsed
// time grows from one snapshot to the next.
func TestHungSyscallReported(t *testing.T) {
	p := startWorkload(t)
	m := attach(t, p.PID)
	r := do(t, p, "uffd-hang")
	tid, fd := fieldInt(t, r, "tid"), fieldInt(t, r, "fd")

	first := mustThread(t, snapshot(t, m), tid)
	if !first.InSyscall || first.Syscall != "read" || first.FD != fd || first.SinceAttach {
		t.Fatalf("hung thread = %+v, want in read(fd=%d), tracked since entry", first, fd)
	}
	if first.State != StateInterruptible {
		t.Errorf("state = %v, want interruptible (userfaultfd wait)", first.State)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		th := mustThread(t, snapshot(t, m), tid)
		if th.Entered != first.Entered || th.Syscall != "read" {
			t.Fatalf("hung syscall changed identity: %+v then %+v", first, th)
		}
		if th.Elapsed > first.Elapsed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("elapsed did not grow past %v", first.Elapsed)
		}
	}

	do(t, p, "uffd-release")
	// The worker thread ends once its read returned; if it is still
	// there it must not be shown in the old read.
	if th, ok := snapshot(t, m).Thread(tid); ok && th.InSyscall && th.Entered == first.Entered {
		t.Fatalf("released thread still shown in its old read: %+v", th)
	}
}

// A syscall that was already stuck when the tracker attached has no entry
// record; it is still reported, marked SinceAttach, from /proc.
func TestSyscallInFlightBeforeAttach(t *testing.T) {
	p := startWorkload(t)
	r := do(t, p, "uffd-hang")
	tid := fieldInt(t, r, "tid")
	m := attach(t, p.PID)

	th := mustThread(t, snapshot(t, m), tid)
	if !th.InSyscall || th.Syscall != "read" || !th.SinceAttach || th.FD != fieldInt(t, r, "fd") {
		t.Fatalf("pre-attach hang = %+v, want read since attach", th)
	}
	deadline := time.Now().Add(5 * time.Second)
	for mustThread(t, snapshot(t, m), tid).Elapsed <= th.Elapsed {
		if time.Now().After(deadline) {
			t.Fatal("elapsed of a pre-attach syscall does not grow")
		}
	}
}

// A reader of an empty pipe is in flight (and must later be judged a
// legitimate wait); a loop of fast syscalls never looks long.
func TestPipeWaitAndFastLoop(t *testing.T) {
	p := startWorkload(t)
	m := attach(t, p.PID)
	pr := do(t, p, "pipe-wait")
	pipeTID, pipeFD := fieldInt(t, pr, "tid"), fieldInt(t, pr, "fd")
	before, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	busyTID := fieldInt(t, do(t, p, "busy"), "tid")

	const budget = 50 * time.Millisecond
	for i := 0; i < 200; i++ {
		s := snapshot(t, m)
		pipe := mustThread(t, s, pipeTID)
		if !pipe.InSyscall || pipe.Syscall != "read" || pipe.FD != pipeFD {
			t.Fatalf("pipe reader = %+v, want in read(fd=%d)", pipe, pipeFD)
		}
		// Only the loop's own getppid is judged: between two calls the Go
		// runtime may park the loop's thread in futex (it lost its P), a
		// real wait that lasted over 50ms in the 6.1 TCG guest.
		if busy := mustThread(t, s, busyTID); busy.InSyscall && busy.Syscall == "getppid" && busy.Elapsed > budget {
			t.Fatalf("fast loop shows getppid in flight for %v (> %v): its exit was missed", busy.Elapsed, budget)
		}
	}
	calls := fieldInt(t, do(t, p, "busy-stop"), "count")
	after, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	// Every getppid of the loop entered the tracker (other threads add more).
	if seen := after.Enter - before.Enter; calls == 0 || seen < uint64(calls) {
		t.Fatalf("tracker saw %d syscall entries, the loop alone made %d", seen, calls)
	}
	mustThread(t, snapshot(t, m), pipeTID)
}
