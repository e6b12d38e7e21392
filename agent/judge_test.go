package agent

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/budget"
	"github.com/stallmon/stallmon/fdkind"
	"github.com/stallmon/stallmon/monitor"
)

const testTable = `
default: {budget: 1s, kill_after: 5s}
syscalls:
  futex: unbounded
  fsync: {budget: 10s, kill_after: never}
  read:
    by_fd: {pipe: unbounded}
`

func TestJudgeAppliesTableAndFDKind(t *testing.T) {
	table, err := budget.Parse([]byte(testTable), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Real fds of this process, so the fd kind is resolved for real.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	f, err := os.CreateTemp(t.TempDir(), "regular")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	th := func(tid int, name string, fd int, el time.Duration) monitor.Thread {
		return monitor.Thread{TID: tid, InSyscall: true, Syscall: name, FD: fd, Elapsed: el, Entered: uint64(tid)}
	}
	snap := monitor.Snapshot{Threads: []monitor.Thread{
		th(1, "futex", -1, time.Hour),             // unbounded
		th(2, "read", p[0], time.Hour),            // read on a pipe: a wait
		th(3, "read", int(f.Fd()), 2*time.Second), // read on a file: over 1s
		th(4, "read", int(f.Fd()), 500*time.Millisecond),
		th(5, "fsync", 3, 9*time.Second),   // under its own 10s
		th(6, "fsync", 3, time.Hour),       // over, but never killed
		th(7, "openat", -1, 6*time.Second), // default rule, past kill_after
		th(8, "read", 9999, 2*time.Second), // fd gone: syscall rule, never unbounded
	}}
	j := newJudge(table, os.Getpid())
	got := map[int]judged{}
	for _, o := range j.over(snap) {
		got[o.thread.TID] = o
	}
	want := map[int]struct {
		kind fdkind.Kind
		kill bool
	}{3: {fdkind.Regular, false}, 6: {fdkind.None, false}, 7: {fdkind.None, true}, 8: {fdkind.None, false}}
	if len(got) != len(want) {
		t.Fatalf("over budget: %v, want tids %v", keys(got), want)
	}
	for tid, w := range want {
		o, ok := got[tid]
		if !ok || o.kind != w.kind || o.overKill() != w.kill {
			t.Errorf("tid %d: %+v (kill %v), want kind %v kill %v", tid, o, o.overKill(), w.kind, w.kill)
		}
	}
}

func keys(m map[int]judged) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	return out
}
