package procgroup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A command that outlives its context dies with what it started in the
// background, through the group kill.
func TestRunKillsTheGroupAtTheBound(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "bg")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.Command("/bin/sh", "-c", `sleep 600 & echo $! > `+pidFile+`.tmp; mv `+pidFile+`.tmp `+pidFile+`; sleep 600`)
	type result struct {
		killed bool
		err    error
	}
	done := make(chan result, 1)
	go func() {
		k, err := Run(ctx, cmd)
		done <- result{k, err}
	}()
	var bg int
	for end := time.Now().Add(10 * time.Second); bg == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the command's background child never said its pid")
		}
		if b, err := os.ReadFile(pidFile); err == nil {
			if bg, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
				t.Fatal(err)
			}
		}
	}
	bgfd, err := unix.PidfdOpen(bg, 0)
	if err != nil {
		t.Fatalf("pidfd of the background child %d: %v", bg, err)
	}
	defer unix.Close(bgfd)
	if pgid, err := unix.Getpgid(bg); err != nil || pgid != cmd.Process.Pid {
		t.Fatalf("background child's group %d (%v), want the hook's %d", pgid, err, cmd.Process.Pid)
	}
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run still waiting 10s after its context ended")
	}
	if !r.killed || r.err == nil || !strings.Contains(r.err.Error(), "killed") {
		t.Errorf("Run = %v, %v; want killed, and the shell's death by signal", r.killed, r.err)
	}
	fds := []unix.PollFd{{Fd: int32(bgfd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 5000); n != 1 || err != nil {
		t.Errorf("the background child %d is still alive 5s after the group kill (%v)", bg, err)
	}
}

// A command that ends within its bound is waited for, not killed.
func TestRunLeavesACommandThatEnds(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "exit 3")
	killed, err := Run(context.Background(), cmd)
	if killed || cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 3 {
		t.Errorf("Run = %v, %v, exit %d; want not killed, exit 3", killed, err, cmd.ProcessState.ExitCode())
	}
	if cmd.SysProcAttr.PidFD == nil || *cmd.SysProcAttr.PidFD < 0 {
		t.Error("Run had no pidfd of the command")
	}
}
