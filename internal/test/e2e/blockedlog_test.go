package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// fullPipe returns a pipe whose buffer is already full and that nobody
// reads: a write to w blocks, as on a hung journald or a terminal on ^S.
func fullPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	fd := int(w.Fd())
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, 4096); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 4096)
	for {
		if _, err := unix.Write(fd, junk); errors.Is(err, unix.EAGAIN) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		t.Fatal(err)
	}
	return r, w
}

// An event log nobody reads stops neither the judging nor the heartbeat:
// with stdout blocked from the start, stallmon still sends ALIVE, sees the
// hang, sends STALLED, kills the target and exits, its last lines given up
// after a bounded wait. Before, the first log write blocked the agent for
// good, and the heartbeat went silent over a healthy target.
func TestBlockedStdoutDoesNotStopJudging(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	w := startWorkload(t)
	_, out := fullPipe(t)
	cmd := exec.Command(stallmonBin, append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json",
		"--log-level", "debug", "--node-id", "blocked-log", "--budget", "300ms", "--kill-after", "1s",
		"--poll-interval", "100ms", "--interval", "100ms", "--metrics-addr", ""}, c.GroupFlags()...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})

	isFrom := func(st heartbeat.State) func(heartbeat.Packet) bool {
		return func(p heartbeat.Packet) bool { return p.NodeID == "blocked-log" && p.State == st }
	}
	first := c.WaitPacket("ALIVE", 20*time.Second, isFrom(heartbeat.StateAlive))
	// Still alive a second later: the log has been blocked all along.
	c.WaitPacket("ALIVE a second on", 10*time.Second, func(p heartbeat.Packet) bool {
		return isFrom(heartbeat.StateAlive)(p) && time.Unix(0, p.SendTime).Sub(time.Unix(0, first.SendTime)) > time.Second
	})
	if _, err := w.Do("uffd-hang"); err != nil {
		t.Fatal(err)
	}
	c.WaitPacket("STALLED", 10*time.Second, isFrom(heartbeat.StateStalled))
	select {
	case <-done:
		var ee *exec.ExitError
		if !errors.As(waitErr, &ee) || ee.ExitCode() != exitKilled {
			t.Fatalf("stallmon ended with %v, want exit %d (killed)", waitErr, exitKilled)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("stallmon did not exit with its log blocked")
	}
	if err := w.Wait(); err == nil {
		t.Fatal("the hung workload was not killed")
	}
	if ws := w.Cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("workload status %v, want SIGKILL", ws)
	}
}

// A listener whose stdout nobody reads still detects and still runs its
// failover hook: the node's first transition (to alive) is printed into
// the blocked pipe, and the stall after it must not wait behind it.
func TestListenerBlockedStdoutStillFailsOver(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	w := startWorkload(t)
	_, out := fullPipe(t)
	hookFile := filepath.Join(t.TempDir(), "hook")
	listener := exec.Command(stallmonBin, append([]string{"listen", "--json", "--timeout", "3s", "--metrics-addr", "",
		"--on-failover", `echo "$STALLMON_NODE $STALLMON_REASON $(date +%s%N)" >> ` + hookFile}, c.GroupFlags()...)...)
	listener.Stdout, listener.Stderr = out, out
	if err := listener.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		listener.Process.Signal(syscall.SIGTERM)
		listener.Wait()
	})
	agent := startStallmon(t, append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json",
		"--node-id", "blocked-listener", "--budget", "300ms", "--kill-after", "10s",
		"--poll-interval", "100ms", "--interval", "100ms", "--metrics-addr", ""}, c.GroupFlags()...)...)
	agent.Events.Next("attached", 20*time.Second)
	c.WaitPacket("ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })
	if _, err := w.Do("uffd-hang"); err != nil {
		t.Fatal(err)
	}
	c.WaitPacket("STALLED", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(hookFile); err == nil && len(b) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failover hook did not run within 10s of STALLED while stdout was blocked")
		}
		time.Sleep(20 * time.Millisecond)
	}
	readHook(t, hookFile, "blocked-listener stalled")
}
