package tracker

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Kill sends sig to the whole target: the process through its pidfd (if
// the PID was recycled after the target exited, the signal fails with
// ESRCH instead of reaching a stranger), or every process of the cgroup
// through cgroup.kill.
func (m *Tracker) Kill(sig unix.Signal) error { return m.scope.signal(sig) }

// signal sends sig to the process through its pidfd.
func (t *target) signal(sig unix.Signal) error {
	rc, err := t.pidfd.SyscallConn()
	if err != nil {
		return fmt.Errorf("pidfd of %d: %w", t.pid, err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.PidfdSendSignal(int(fd), sig, nil, 0)
	}); err != nil {
		return fmt.Errorf("pidfd of %d: %w", t.pid, err)
	}
	if serr != nil {
		return fmt.Errorf("sending %s to %d: %w", unix.SignalName(sig), t.pid, serr)
	}
	return nil
}

// Diagnosis is what the kernel shows about a thread that did not die.
type Diagnosis struct {
	TID   int
	State string // the /proc state letter and name, e.g. "D (disk sleep)"
	Wchan string
	Stack string // kernel stack, one frame per line; needs root
	// TimedOut is set when /proc did not answer in time.
	TimedOut bool
}

// DiagnoseWithin is Diagnose bounded in time: reading a thread's kernel
// stack takes a lock of the target's (exec_update_lock), which a target
// stuck in execve can hold for good. Past the deadline the caller gets
// what it has, with TimedOut set, and the read is left to finish on its
// own goroutine.
func (m *Tracker) DiagnoseWithin(tid int, deadline time.Duration) Diagnosis {
	got := make(chan Diagnosis, 1)
	go func() { got <- m.Diagnose(tid) }()
	t := time.NewTimer(deadline)
	defer t.Stop()
	select {
	case d := <-got:
		return d
	case <-t.C:
		return Diagnosis{TID: tid, TimedOut: true}
	}
}

// Diagnose reads a thread's scheduler state, wait channel and kernel stack.
// Missing pieces are left empty: this runs when things already went wrong.
// It may block on the target (see DiagnoseWithin): never call it from a
// loop that must keep going.
func (m *Tracker) Diagnose(tid int) Diagnosis {
	// /proc/TID/ serves any thread, of whichever process of the target.
	dir := fmt.Sprintf("/proc/%d/", tid)
	d := Diagnosis{TID: tid}
	if b, err := os.ReadFile(dir + "status"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "State:"); ok {
				d.State = strings.TrimSpace(v)
			}
		}
	}
	if b, err := os.ReadFile(dir + "wchan"); err == nil {
		d.Wchan = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(dir + "stack"); err == nil {
		d.Stack = strings.TrimSpace(string(b))
	}
	return d
}
