package tracker

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

const exitNrName = "exit"

// 100 threads that start, make syscalls and exit, round after round, leave
// no kernel entry behind: created - released equals the threads that hold
// an entry now, and no live thread shows the exit syscall in flight (which
// never reaches sys_exit and would be stale in a tid-keyed map).
func TestThreadChurnLeavesNoStaleEntries(t *testing.T) {
	p := startWorkload(t)
	m := attach(t, p.PID)

	do(t, p, "churn 5 100")

	s := snapshot(t, m)
	tracked := 0
	for _, th := range s.Threads {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", p.PID, th.TID)); err != nil {
			t.Errorf("snapshot shows thread %d that does not exist: %v", th.TID, err)
		}
		if th.InSyscall && th.Syscall == exitNrName {
			t.Errorf("thread %d shows a stale exit in flight: %+v", th.TID, th)
		}
		if th.Tracked {
			tracked++
		}
	}
	c, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.StorageCreated < 500 {
		t.Fatalf("only %d entries created for 500 churned threads: the churn was not traced", c.StorageCreated)
	}
	if c.Live() != uint64(tracked) {
		t.Fatalf("kernel holds %d entries (created %d - released %d), but %d live threads are tracked",
			c.Live(), c.StorageCreated, c.StorageReleased, tracked)
	}
	if c.StorageFailed != 0 {
		t.Errorf("%d entries could not be created", c.StorageFailed)
	}
}

// A tid that an exited thread used and a new thread gets again starts
// clean: the new thread shows its own syscall, not the old one's exit.
// ns_last_pid steers the kernel into handing out the old tid.
func TestReusedTIDStartsClean(t *testing.T) {
	p := startWorkload(t)
	m := attach(t, p.PID)

	round := do(t, p, "churn 1 20")
	if len(round.Progress) != 1 {
		t.Fatalf("churn of one round reported %d rounds", len(round.Progress))
	}
	old, err := round.Progress[0].Fields.Ints("tids")
	if err != nil || len(old) == 0 {
		t.Fatalf("churn reply has no tids: %v %v", round, err)
	}
	// Each attempt steers to another tid of the churn: whatever takes the
	// steered tid first (a new runtime thread of the workload, a kworker)
	// may keep it for good, so retrying the same tid can never land.
	var misses []string
	for _, want := range old {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(want-1)), 0); err != nil {
			t.Fatalf("steering tid allocation: %v", err)
		}
		r := do(t, p, "spawn-wait")
		tid := fieldInt(t, r, "tid")
		if tid != want {
			do(t, p, "spawn-release")
			misses = append(misses, fmt.Sprintf("want %d got %d", want, tid))
			continue
		}
		th := mustThread(t, snapshot(t, m), tid)
		if !th.InSyscall || th.Syscall != "read" || th.FD != fieldInt(t, r, "fd") || th.SinceAttach {
			t.Fatalf("reused tid %d = %+v, want its own read of fd %s", tid, th, r.Fields["fd"])
		}
		do(t, p, "spawn-release")
		return
	}
	t.Fatalf("no churned tid was reused: %s", strings.Join(misses, "; "))
}
