package e2e

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// A target that SIGKILL cannot end, for real: its thread reads a FUSE file
// whose server (this test process) holds the request and ignores the
// interrupt the kill turns into, so the thread sits in D until the server
// answers. stallmon must kill it, report it unkillable once --kill-grace
// ran out (with the state, wchan and kernel stack of the stuck thread),
// keep waiting without exiting and without node fencing (the default
// --on-unkillable=none), and exit 4 once the answer lets the target die.
func TestUnkillableUntilFUSEServerAnswers(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	const (
		budget    = 300 * time.Millisecond
		killAfter = time.Second
		grace     = time.Second
		poll      = 100 * time.Millisecond
	)
	w := startWorkload(t)
	// Mounted after the workload started, so that its cleanup (which
	// answers the read) runs before the workload's, which waits for the
	// workload to exit.
	fs := fusehang.Mount(t, fusehang.Options{})
	agent := startStallmon(t, "attach", "--pid", itoa(w.PID), "--no-heartbeat", "--log-format", "json",
		"--budget", budget.String(), "--kill-after", killAfter.String(), "--kill-grace", grace.String(),
		"--poll-interval", poll.String())
	agent.Events.Next("attached", 10*time.Second)

	r, err := w.Do("read-file " + fs.File)
	if err != nil {
		t.Fatal(err)
	}
	hang := time.Now()
	tid, err := r.Int("tid")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := r.Int("fd")
	if err != nil {
		t.Fatal(err)
	}

	stall := agent.Events.Next("stall", 10*time.Second)
	wantFields(t, "stall", stall, map[string]any{
		"tid": tid, "syscall": "read", "fd": fd, "fd_kind": "regular", "state": "interruptible",
		"budget_seconds": budget.Seconds(), "kill_after_seconds": killAfter.Seconds(),
	})
	kill := agent.Events.Next("kill", 10*time.Second)
	killed := time.Now()
	wantFields(t, "kill", kill, map[string]any{"tid": tid, "syscall": "read", "signal": "SIGKILL"})
	if el, _ := kill["elapsed_seconds"].(float64); el < killAfter.Seconds() {
		t.Errorf("kill at elapsed %vs, before kill_after %v", el, killAfter)
	}

	unk := agent.Events.NextWhere("unkillable for the reader", grace+10*time.Second, func(ev map[string]any) bool {
		return ev["msg"] == "unkillable" && ev["tid"] == float64(tid)
	})
	wantFields(t, "unkillable", unk, map[string]any{
		"pid": w.PID, "tid": tid, "syscall": "read", "state": "uninterruptible",
		"wchan": "request_wait_answer", "grace_seconds": grace.Seconds(),
	})
	if ps, _ := unk["proc_state"].(string); !strings.HasPrefix(ps, "D") {
		t.Errorf("unkillable proc_state %q, want D (disk sleep)", ps)
	}
	stack, _ := unk["stack"].(string)
	for _, fn := range []string{"request_wait_answer", "fuse_", "vfs_read"} {
		if !strings.Contains(stack, fn) {
			t.Errorf("unkillable stack does not mention %s: %q", fn, stack)
		}
	}
	// stallmon's own timestamps: the pipe may delay either line.
	if since := eventTime(t, unk).Sub(eventTime(t, kill)); since < grace {
		t.Errorf("unkillable logged %v after the kill, before --kill-grace %v", since, grace)
	}

	// The kernel forwarded the kill to the server as an interrupt, which
	// the server ignored: the reader still waits for the answer.
	if st := fs.Stats(); st.Interrupts < 1 || st.Pending != 1 {
		t.Fatalf("FUSE server stats %+v, want the read held and its interrupt seen", st)
	}
	if processExited(t, w.PID) {
		t.Fatal("target exited while its read was held")
	}
	if st := taskState(t, w.PID, tid); st != "D" {
		t.Fatalf("reader thread %d in state %q while its read is held, want D", tid, st)
	}
	// Nothing can end the target now: stallmon waits, and does nothing
	// else (no node fencing without --on-unkillable). The window is one
	// more grace period; a premature exit would show as soon as it happens.
	select {
	case <-agent.Done():
		t.Fatalf("stallmon exited %d while the target could not die", agent.Code())
	case <-time.After(grace):
	}
	if processExited(t, w.PID) {
		t.Fatal("target exited while its read was held")
	}

	fs.Release()
	released := time.Now()
	if code := agent.Wait(t, 10*time.Second); code != exitUnkillable {
		t.Fatalf("stallmon attach exited %d, want %d (unkillable, then killed)", code, exitUnkillable)
	}
	exitedAt := time.Now()
	ev := agent.Events.Next("target_exited", time.Second)
	wantFields(t, "target_exited", ev, map[string]any{"pid": w.PID, "signal": int(syscall.SIGKILL)})
	if err := w.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("workload ended with %v, want killed by a signal", err)
	}
	if ws := w.Cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("workload status %v, want SIGKILL", ws)
	}

	// The whole stream, up to EOF: no node fencing, and the unkillable
	// report names the reader once.
	readerReports := 0
	for _, ev := range agent.Events.Rest() {
		msg, _ := ev["msg"].(string)
		if msg == "node_fence" || strings.Contains(msg, "node fencing") {
			t.Errorf("node fencing without --on-unkillable: %v", ev)
		}
		if msg != "unkillable" {
			continue
		}
		if ev["tid"] == float64(tid) {
			readerReports++
			continue
		}
		// stallmon reports every thread of its snapshot; after the
		// kill, the only other one left is the thread group leader,
		// which already exited and waits, a zombie, for the reader.
		if ps, _ := ev["proc_state"].(string); !strings.HasPrefix(ps, "Z") || ev["tid"] != float64(w.PID) {
			t.Errorf("unkillable event for thread %v, which is neither the reader %d nor the exited leader: %v", ev["tid"], tid, ev)
		}
		t.Logf("also reported unkillable, the exited leader: %v", ev)
	}
	if readerReports != 1 {
		t.Errorf("%d unkillable events for the reader, want 1", readerReports)
	}
	t.Logf("unkillable event: %v", unk)
	t.Logf("stall at elapsed %vs, kill at elapsed %vs (%v after read-file replied), unkillable logged %v after the kill, stallmon exited %v after the release",
		stall["elapsed_seconds"], kill["elapsed_seconds"], killed.Sub(hang).Round(time.Millisecond),
		eventTime(t, unk).Sub(eventTime(t, kill)).Round(time.Millisecond), exitedAt.Sub(released).Round(time.Millisecond))
}

// wantFields checks ev has each field with the given value; JSON numbers
// are float64, so ints are compared as such.
func wantFields(t *testing.T, name string, ev map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if i, ok := v.(int); ok {
			v = float64(i)
		}
		if ev[k] != v {
			t.Errorf("%s event: %s = %v (%T), want %v; event: %v", name, k, ev[k], ev[k], v, ev)
		}
	}
}

func eventTime(t *testing.T, ev map[string]any) time.Time {
	t.Helper()
	return harness.EventTime(t, ev)
}

// processExited reports, without waiting, whether pid has exited: its pidfd is
// readable (or the process is gone already).
func processExited(t *testing.T, pid int) bool {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return true
	}
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(fd)
	n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
	if err != nil {
		t.Fatalf("poll(pidfd of %d): %v", pid, err)
	}
	return n > 0
}

// taskState is the state letter of /proc/PID/task/TID/stat.
func taskState(t *testing.T, pid, tid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
	if err != nil {
		t.Fatalf("thread %d: %v", tid, err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) == 0 {
		t.Fatalf("thread %d: malformed stat %q", tid, s)
	}
	return f[0]
}
