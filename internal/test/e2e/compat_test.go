package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// A 64-bit shell watched with --tree runs a static 32-bit helper whose
// worker thread returns and which then exits 0: its threads end through
// ia32's exit and exit_group, legitimate ends, with the built-in table.
// No death, no stall, no kill: the heartbeat stays ALIVE, and the shell
// lives on. Judged by amd64's numbers they were deaths inside write and
// ioprio_get, and the whole tree was killed (issue 18).
func TestIA32HelperInTree(t *testing.T) {
	privtest.Require(t)
	helper := ctarget.Build(t, "threadexit", "-m32", "-static")
	ctarget.RequireIA32(t, helper)
	const interval, watch = 200 * time.Millisecond, 2 * time.Second
	c := newCluster(t)

	sh := exec.Command("sh", "-c", `read go && "$0"; echo "helper=$?"; read end`, helper)
	stdin, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := sh.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	shDone := make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		sh.Wait()
		close(shDone)
	}()
	t.Cleanup(func() { sh.Process.Kill(); <-shDone })

	agent := startStallmon(t, append([]string{"attach", "--pid", itoa(sh.Process.Pid), "--tree", "--log-format", "json",
		"--node-id", "ia32-tree", "--metrics-addr", "", "--poll-interval", "100ms", "--interval", interval.String()},
		c.GroupFlags()...)...)
	agent.Events.Next("attached", 10*time.Second)
	c.WaitPacket("ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })

	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-lines:
		if l != "helper=0" {
			t.Fatalf("the shell said %q, want helper=0", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the 32-bit helper did not finish within 10s")
	}
	ended := time.Now()
	// Every poll after the helper's end would have taken in its deaths.
	last := c.WaitPacket(fmt.Sprintf("%v of heartbeats after the helper", watch), watch+10*time.Second, func(p heartbeat.Packet) bool {
		return time.Unix(0, p.SendTime).Sub(ended) >= watch || p.State != heartbeat.StateAlive
	})
	for _, tp := range c.Seen() {
		if tp.P.State != heartbeat.StateAlive {
			t.Fatalf("a healthy tree lost its heartbeat: %+v", tp.P)
		}
	}
	for _, ev := range agent.Events.Drain() {
		switch ev["msg"] {
		case "died_in_syscall", "stall", "kill", "heartbeat_stopped":
			t.Fatalf("false alarm on a 32-bit helper's ordinary end: %v", ev)
		}
	}
	select {
	case <-shDone:
		t.Fatal("the shell ended while it waited for its last line: killed")
	case <-agent.Done():
		t.Fatalf("stallmon exited %d while the shell lives", agent.Code())
	default:
	}

	if _, err := io.WriteString(stdin, "end\n"); err != nil {
		t.Fatal(err)
	}
	if code := agent.Wait(t, 10*time.Second); code != exitOK {
		t.Fatalf("stallmon exited %d after the shell's own exit, want %d", code, exitOK)
	}
	select {
	case <-shDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the shell did not exit")
	}
	if !sh.ProcessState.Success() {
		t.Errorf("the shell ended with %v, want exit status 0", sh.ProcessState)
	}
	t.Logf("helper ended; ALIVE through seq %d, %v later", last.Seq, time.Unix(0, last.SendTime).Sub(ended).Round(time.Millisecond))
}
