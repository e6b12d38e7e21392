package e2e

import (
	"golang.org/x/sys/unix"

	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// stallmon run with --restart=on-failure: the first incarnation of the
// service hangs in a read of a FUSE file and is killed at kill_after; the
// second starts after the delay and is healthy. A listener hears ALIVE,
// STALLED and FENCED of the first incarnation, then ALIVE of a newer one.
// SIGHUP then reaches the service, which goes on; SIGTERM reaches it too,
// it is not restarted, and stallmon exits with its status (128+SIGTERM).
func TestRunRestartsKilledService(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	c := newCluster(t)
	fs := fusehang.Mount(t, fusehang.Options{HonourInterrupts: true})
	dir := t.TempDir()
	mark, reloaded, ready := filepath.Join(dir, "started-once"), filepath.Join(dir, "reloaded"), filepath.Join(dir, "ready")
	// The second start waits for ever, and takes SIGHUP as a reload once
	// it said it is ready (a SIGHUP before its trap would end it).
	script := `if [ -e "$1" ]; then trap ': > "$3"' HUP; : > "$4"; while :; do sleep 1 & wait $!; done; fi; : > "$1"; exec cat "$2"`
	agent := startStallmon(t, append(append([]string{"run", "--log-format", "json", "--metrics-addr", "",
		"--node-id", "svc", "--interval", "100ms", "--budget", "300ms", "--kill-after", "1s",
		"--restart=on-failure", "--max-restarts", "3", "--restart-delay", "200ms"}, c.GroupFlags()...),
		"--", "sh", "-c", script, "sh", mark, fs.File, reloaded, ready)...)

	first := agent.Events.Next("service_started", 10*time.Second)
	stall := agent.Events.Next("stall", 10*time.Second)
	wantFields(t, "stall", stall, map[string]any{"comm": "cat", "syscall": "read", "fs": "fuse"})
	agent.Events.Next("kill", 10*time.Second)
	exited := agent.Events.Next("service_exited", 10*time.Second)
	wantFields(t, "service_exited", exited, map[string]any{"exit_code": 128 + int(syscall.SIGKILL)})
	agent.Events.Next("service_restart", 10*time.Second)
	second := agent.Events.Next("service_started", 10*time.Second)
	wantFields(t, "second start", second, map[string]any{"incarnation": 2})
	if second["pid"] == first["pid"] {
		t.Fatalf("the restart reused pid %v", first["pid"])
	}

	fenced := c.WaitPacket("FENCED", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateFenced })
	c.WaitPacket("STALLED of the first incarnation", time.Second, func(p heartbeat.Packet) bool {
		return p.State == heartbeat.StateStalled && p.Incarnation == fenced.Incarnation
	})
	alive := c.WaitPacket("ALIVE of a newer incarnation", 10*time.Second, func(p heartbeat.Packet) bool {
		return p.State == heartbeat.StateAlive && p.Incarnation > fenced.Incarnation
	})
	for _, tp := range c.Seen() {
		if tp.P.Incarnation == fenced.Incarnation && tp.P.State == heartbeat.StateAlive && tp.P.Seq > fenced.Seq {
			t.Fatalf("ALIVE of the fenced incarnation after FENCED: %+v", tp.P)
		}
	}

	// SIGHUP reaches the service, which goes on.
	waitFile(t, ready, "the second start's ready mark")
	if err := agent.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	fwd := agent.Events.Next("signal_forwarded", 10*time.Second)
	wantFields(t, "signal_forwarded", fwd, map[string]any{"signal": "hangup", "pid": second["pid"]})
	waitFile(t, reloaded, "the reload the forwarded SIGHUP asked for")

	if err := agent.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := agent.Wait(t, 15*time.Second); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("stallmon run exited %d, want %d (the service's SIGTERM)", code, 128+int(syscall.SIGTERM))
	}
	for _, ev := range agent.Events.Rest() {
		if ev["msg"] == "service_started" && ev["incarnation"] == float64(3) {
			t.Fatalf("restarted after a SIGTERM: %v", ev)
		}
	}
	t.Logf("incarnations %d then %d; stall at elapsed %v", fenced.Incarnation, alive.Incarnation, stall["elapsed_seconds"])
}

// Bad run flags are refused before anything starts.
func TestRunBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--restart=sometimes", "--", "true"},
		{"run", "--restart-delay", "0s", "--", "true"},
		{"run", "--max-restarts", "-1", "--", "true"},
		{"run"},
	} {
		code, stderr := runStallmon(t, nil, args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d (%s), want %d", args, code, stderr, exitUsage)
		}
	}
}

// waitFile waits, up to 10s, for a file a service writes.
func waitFile(t *testing.T, path, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s (%s) within 10s", what, path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A run killed before it could clean up leaves an empty cgroup; the next
// run in the same parent removes it, and leaves alone those of a run
// still alive.
func TestRunRemovesStaleCgroups(t *testing.T) {
	privtest.Require(t)
	parent := cgrouptest.New(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale, err := cgroup.Mkdir(parent.Path, "stallmon-run-"+itoa(dead.Process.Pid)+"-1")
	if err != nil {
		t.Fatal(err)
	}
	// A run is alive while it holds the flock on its cgroup (the pid in
	// the name decides nothing): this test is that run.
	live, err := cgroup.Mkdir(parent.Path, "stallmon-run-0-1")
	if err != nil {
		t.Fatal(err)
	}
	lock, err := os.Open(live.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	code, stderr := runStallmon(t, nil, "run", "--cgroup-parent", parent.Path, "--no-heartbeat", "--metrics-addr", "", "--", "true")
	if code != 0 {
		t.Fatalf("stallmon run -- true exited %d: %s", code, stderr)
	}
	if _, err := os.Stat(stale.Path); !os.IsNotExist(err) {
		t.Errorf("the stale cgroup of a dead run is still there (%v)", err)
	}
	if _, err := os.Stat(live.Path); err != nil {
		t.Errorf("the cgroup of a live run was removed: %v", err)
	}
}
