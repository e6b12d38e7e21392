package ctarget

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/workload"
)

// The benchmark's bounded poll case (internal/test/bench) rests on this:
// "fifo N PATH" leaves N threads asleep inside openat(2), where stallmon's
// table bounds them, not in user space or in a wait it leaves out as
// quiet.
func TestIdleThreadsFIFOWaiters(t *testing.T) {
	bin := Build(t, "idlethreads")
	p, err := workload.Start(context.Background(), bin, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	const n = 5
	r, err := p.Do("fifo " + strconv.Itoa(n) + " " + fifo)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.Int("threads"); err != nil || got != n+1 {
		t.Fatalf("threads=%d (%v), want %d", got, err, n+1)
	}
	// The reply comes once the threads run, a moment before they block.
	deadline := time.Now().Add(10 * time.Second)
	for {
		waiting, seen := fifoWaiters(t, p.PID)
		if waiting == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d threads asleep in openat after 10s: %v", waiting, n, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A reader is there: a writer that does not wait is let in.
	w, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("opening the FIFO for writing: %v, want a waiting reader", err)
	}
	unix.Close(w)

	_, err = p.Do("fifo 1 " + filepath.Join(t.TempDir(), "not-a-fifo"))
	var re *workload.ReplyError
	if !errors.As(err, &re) {
		t.Errorf("fifo on a path that is no FIFO: %v, want an err reply", err)
	}
	if _, err := p.Do("calls"); err != nil {
		t.Errorf("after an err reply: %v", err)
	}
}

// fifoWaiters counts the threads of pid other than the first asleep (S) in
// openat, and says what each thread was doing.
func fifoWaiters(t *testing.T, pid int) (int, []task) {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var seen []task
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil || tid == pid {
			continue
		}
		th, ok := inspect(pid, tid)
		if !ok {
			continue
		}
		seen = append(seen, th)
		nr, _, _ := strings.Cut(th.syscall, " ")
		if th.state == "S" && nr == strconv.Itoa(unix.SYS_OPENAT) {
			n++
		}
	}
	return n, seen
}
