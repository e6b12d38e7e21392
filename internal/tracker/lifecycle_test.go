package tracker

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// The target's exit is seen at once through the pidfd (well within a
// 100ms poll interval), with its exit status.
func TestTargetExitNoticed(t *testing.T) {
	p := startWorkload(t)
	m := attach(t, p.PID)
	if err := p.Send("exit 7"); err != nil {
		t.Fatal(err)
	}
	waited := make(chan time.Time, 1)
	go func() { p.Wait(); waited <- time.Now() }()
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("exit not noticed")
	}
	noticed := time.Now()
	reaped := <-waited
	if lag := noticed.Sub(reaped); lag > 100*time.Millisecond {
		t.Fatalf("exit noticed %v after the parent reaped it, want < one poll interval", lag)
	}
	st, ok, err := m.ExitStatus()
	if err != nil || !ok || st.Signaled || st.Code != 7 {
		t.Fatalf("exit status = %+v ok=%v err=%v, want code 7", st, ok, err)
	}
}

// Attach then Close leaves no file descriptor behind, so no program, map
// or link stays loaded through us.
func TestCloseLeaksNothing(t *testing.T) {
	p := startWorkload(t)
	before := countFDs(t)
	for i := 0; i < 3; i++ {
		m, err := Attach(Process(p.PID), nil, Options{})
		if err != nil {
			t.Fatalf("attach: %v", err)
		}
		snapshot(t, m)
		if err := m.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		select {
		case <-m.Done():
			t.Fatal("Close reported as the target exiting")
		default:
		}
	}
	if after := countFDs(t); after != before {
		t.Fatalf("%d fds before attach, %d after close", before, after)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestAttachRejectsBadTargets(t *testing.T) {
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	defer zombie.Wait()
	waitZombie(t, zombie.Process.Pid)

	p := startWorkload(t)
	thread := fieldInt(t, do(t, p, "pipe-wait"), "tid")

	for _, tc := range []struct {
		name string
		pid  int
		want error
	}{
		{"missing", 1 << 22, ErrNoProcess}, // above pid_max
		{"negative", -1, ErrNoProcess},
		{"zombie", zombie.Process.Pid, ErrZombie},
		{"kernel thread", 2, ErrNotProcess}, // kthreadd
		{"thread id", thread, ErrNotProcess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Attach(Process(tc.pid), nil, Options{})
			if err == nil {
				m.Close()
				t.Fatalf("Attach(%d) succeeded", tc.pid)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Attach(%d) = %v, want %v", tc.pid, err, tc.want)
			}
		})
	}
}

// waitZombie waits until pid has exited but is not reaped. The kernel has
// no notification for "became a zombie" short of reaping it, so poll.
func waitZombie(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat"); err == nil {
			if st, _, err := parseStat(b); err == nil && st == 'Z' {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("process %d did not become a zombie", pid)
}

func itoa(i int) string { return strconv.Itoa(i) }

// Once the wait for the target's exit has failed (not through Close), an
// exit would go unseen: no snapshot vouches for the target any more, and
// the agent, whose polls then fail, goes blind. The kernel gives no way
// to make poll(2) on a pidfd fail on demand, so the failure is stored as
// watchExit stores it.
func TestFailedExitWaitFailsSnapshots(t *testing.T) {
	w := startWorkload(t)
	m := attach(t, w.PID)
	snapshot(t, m)
	werr := errors.New("poll on pidfd: no memory")
	m.waitErr.Store(&werr)
	if _, err := m.Snapshot(); !errors.Is(err, werr) {
		t.Fatalf("snapshot after a failed exit wait: err %v, want %v", err, werr)
	}
}
