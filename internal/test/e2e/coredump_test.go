package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// holdCoreDumps routes every core dump of the host to a helper that holds
// it until release is called: the kernel's dump of a process ends only
// when its core_pattern pipe's reader exits. It returns a channel closed
// once a dump has started. core_pattern is the host's: restored on
// cleanup.
func holdCoreDumps(t *testing.T) (started <-chan struct{}, release func()) {
	t.Helper()
	const pattern = "/proc/sys/kernel/core_pattern"
	old, err := os.ReadFile(pattern)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	helper := filepath.Join(dir, "hold.sh")
	script := "#!/bin/sh\ntouch " + dir + "/started\nwhile [ ! -e " + dir + "/release ]; do sleep 0.05; done\nexec cat >/dev/null\n"
	if err := os.WriteFile(helper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pattern, []byte("|/bin/sh "+helper), 0o644); err != nil {
		t.Fatal(err)
	}
	release = func() { os.WriteFile(filepath.Join(dir, "release"), nil, 0o644) }
	t.Cleanup(func() {
		release()
		if err := os.WriteFile(pattern, old, 0o644); err != nil {
			t.Errorf("restoring core_pattern: %v", err)
		}
	})
	ch := make(chan struct{})
	go func() {
		for {
			if _, err := os.Stat(filepath.Join(dir, "started")); err == nil {
				close(ch)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return ch, release
}

// One worker of a tree dumping core is a worker dying while the service
// serves: neither a stall while the dump lasts (3s, past the dumping_core
// budget of 1s) nor a kill when it ends. Before, the dump stalled the
// whole tree and its end, a late return, killed the healthy parent.
func TestWorkerCoreDumpSparesTree(t *testing.T) {
	privtest.Require(t)
	started, release := holdCoreDumps(t)
	root := exec.Command("sh", "-c", `sleep 1000 & echo $!; exec sleep 1000`)
	out, err := root.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Process.Kill(); root.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	worker, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(worker, syscall.SIGKILL) })

	agent := startStallmon(t, "attach", "--pid", itoa(root.Process.Pid), "--tree", "--no-heartbeat", "--log-format", "json",
		"--metrics-addr", "127.0.0.1:0", "--budget", "1s", "--kill-after", "3s", "--poll-interval", "100ms")
	addr := agent.Events.Next("metrics_listening", 10*time.Second)["addr"].(string)
	agent.Events.Next("attached", 10*time.Second)
	if err := syscall.Kill(worker, syscall.SIGSEGV); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker's core dump did not start")
	}
	waitPolls(t, addr, 30) // 3s: the 1s budget and twenty polls past it
	release()
	for deadline := time.Now().Add(10 * time.Second); !processExited(t, worker); {
		if time.Now().After(deadline) {
			t.Fatal("the worker outlived its core dump")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitPolls(t, addr, 10)
	select {
	case <-agent.Done():
		t.Fatalf("stallmon exited %d", agent.Code())
	default:
	}
	for _, ev := range agent.Events.Drain() {
		switch ev["msg"] {
		case "stall", "late_return", "kill":
			t.Errorf("%v: a worker's core dump concerns the worker alone", ev)
		}
	}
	if processExited(t, root.Process.Pid) {
		t.Fatal("the tree's root was killed")
	}
	if body := scrape(t, addr); !strings.Contains(body, `stallmon_gate_state{state="alive"} 1`) {
		t.Errorf("gate not alive after a worker's core dump:\n%s", body)
	}
}
