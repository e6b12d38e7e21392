package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// freezeKillEnv makes a stallmon built for tests kill cgroups the way it
// must without cgroup.kill (Linux 5.2-5.13), and log each such kill.
const freezeKillEnv = "STALLMON_TEST_FREEZE_KILL"

// On a kernel without cgroup.kill (forced here), attach --cgroup and run
// still kill a hung service whole: frozen, each process killed through a
// pidfd, thawed. The shipped binary holds no such switch.
func TestHungServiceKilledWithoutCgroupKill(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	shipped, err := os.ReadFile(stallmonBin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(shipped, []byte(freezeKillEnv)) {
		t.Fatalf("the shipped stallmon (%s) reads %s", stallmonBin, freezeKillEnv)
	}
	bin := harness.BuildForTests(t)

	t.Run("attach --cgroup", func(t *testing.T) {
		log := filepath.Join(t.TempDir(), "freeze-kills")
		t.Setenv(freezeKillEnv, log)
		const budget, killAfter = 300 * time.Millisecond, time.Second
		first, hung := startWorkload(t), startWorkload(t)
		cg := cgrouptest.New(t)
		sub, err := cgroup.Mkdir(cg.Path, "workers")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := first.Do("sleepers 4"); err != nil {
			t.Fatal(err)
		}
		if err := cg.Add(first.PID); err != nil {
			t.Fatal(err)
		}
		if err := sub.Add(hung.PID); err != nil {
			t.Fatal(err)
		}
		agent := startAgent(t, bin, []string{"attach", "--cgroup", cg.Path, "--no-heartbeat", "--log-format", "json",
			"--metrics-addr", "", "--budget", budget.String(), "--kill-after", killAfter.String(), "--poll-interval", "100ms"}...)
		agent.Events.Next("attached", 10*time.Second)
		r, err := hung.Do("uffd-hang")
		if err != nil {
			t.Fatal(err)
		}
		tid, _ := r.Int("tid")
		kill := agent.Events.Next("kill", 10*time.Second)
		wantFields(t, "kill", kill, map[string]any{"pid": hung.PID, "tid": tid})
		if code := agent.Wait(t, 10*time.Second); code != exitKilled {
			t.Fatalf("stallmon exited %d, want %d (killed)", code, exitKilled)
		}
		for name, pid := range map[string]int{"multi-threaded": first.PID, "hung": hung.PID} {
			if !processExited(t, pid) {
				t.Errorf("the %s process (%d) outlived the kill of its cgroup", name, pid)
			}
		}
		wantFreezeKilled(t, log, cg.Path)
	})

	t.Run("run", func(t *testing.T) {
		log := filepath.Join(t.TempDir(), "freeze-kills")
		t.Setenv(freezeKillEnv, log)
		fs := fusehang.Mount(t, fusehang.Options{HonourInterrupts: true})
		bgFile := filepath.Join(t.TempDir(), "bg")
		// The service leaves a child in the background, then hangs in a
		// read of the FUSE file: both must die.
		agent := startAgent(t, bin, []string{"run", "--log-format", "json", "--metrics-addr", "", "--no-heartbeat",
			"--node-id", "svc", "--budget", "300ms", "--kill-after", "1s", "--",
			"sh", "-c", `sleep 600 & echo $! > "$1.tmp"; mv "$1.tmp" "$1"; exec cat "$2"`, "sh", bgFile, fs.File}...)
		started := agent.Events.Next("service_started", 10*time.Second)
		waitFile(t, bgFile, "the service's background child")
		b, err := os.ReadFile(bgFile)
		if err != nil {
			t.Fatal(err)
		}
		bg, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		stall := agent.Events.Next("stall", 10*time.Second)
		wantFields(t, "stall", stall, map[string]any{"comm": "cat", "syscall": "read"})
		agent.Events.Next("kill", 10*time.Second)
		exited := agent.Events.Next("service_exited", 10*time.Second)
		wantFields(t, "service_exited", exited, map[string]any{"exit_code": 128 + int(syscall.SIGKILL)})
		agent.Wait(t, 15*time.Second)
		if !processExited(t, bg) {
			t.Errorf("the service's background child (%d) outlived the kill", bg)
		}
		cgPath, _ := started["cgroup"].(string)
		wantFreezeKilled(t, log, cgPath)
	})
}

// wantFreezeKilled checks that the test build killed cgroup path by
// freezing it, without error.
func wantFreezeKilled(t *testing.T, log, path string) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("no freeze-path kill was logged: %v", err)
	}
	if !strings.Contains(string(b), path+" <nil>\n") {
		t.Errorf("freeze-path kills %q, want one of %s without error", b, path)
	}
}
