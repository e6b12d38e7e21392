package e2e

import (
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/testutil/workloadtest"
)

// A process whose child hangs: with --tree the child's hang is found (with
// the child's pid) and the whole tree is killed through pidfds; without
// --tree the same hang goes unseen, which is why the option exists.
func TestTreeFindsChildHang(t *testing.T) {
	privtest.Require(t)
	const budget, killAfter = 300 * time.Millisecond, time.Second
	for _, tree := range []bool{false, true} {
		name := map[bool]string{false: "pid only", true: "tree"}[tree]
		t.Run(name, func(t *testing.T) {
			w := workloadtest.StartChild(t)
			args := []string{"attach", "--pid", itoa(w.Parent), "--no-heartbeat", "--log-format", "json",
				"--metrics-addr", "", "--budget", budget.String(), "--kill-after", killAfter.String()}
			if tree {
				args = append(args, "--tree")
			}
			agent := startStallmon(t, args...)
			agent.Events.Next("attached", 10*time.Second)
			r, err := w.Do("uffd-hang")
			if err != nil {
				t.Fatal(err)
			}
			tid, _ := r.Int("tid")
			if !tree {
				// Three kill_afters of silence: the child is not watched.
				select {
				case <-agent.Done():
					t.Fatalf("stallmon exited %d while the parent lives", agent.Code())
				case <-time.After(3 * killAfter):
				}
				for _, ev := range agent.Events.Drain() {
					if ev["msg"] == "stall" {
						t.Fatalf("a child's hang was seen without --tree: %v", ev)
					}
				}
				return
			}
			stall := agent.Events.Next("stall", 10*time.Second)
			wantFields(t, "stall", stall, map[string]any{"pid": w.PID, "tid": tid, "syscall": "read"})
			if code := agent.Wait(t, 10*time.Second); code != exitKilled {
				t.Fatalf("stallmon exited %d, want %d (killed)", code, exitKilled)
			}
			for _, pid := range []int{w.Parent, w.PID} {
				if !processExited(t, pid) {
					t.Errorf("process %d of the tree outlived the kill", pid)
				}
			}
		})
	}
}

// A process forked after attach joins the tree at fork: a shell that,
// once stallmon watches it, runs cat on a FUSE file whose read hangs.
func TestTreeFollowsForkAfterAttach(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	sh := exec.Command("sh", "-c", `read go && cat "$0"`)
	stdin, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	fs := fusehang.Mount(t, fusehang.Options{HonourInterrupts: true})
	sh.Args = append(sh.Args, fs.File)
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	shDone := make(chan struct{})
	go func() { sh.Wait(); close(shDone) }()
	t.Cleanup(func() { sh.Process.Kill(); <-shDone })
	agent := startStallmon(t, "attach", "--pid", itoa(sh.Process.Pid), "--tree", "--no-heartbeat", "--log-format", "json",
		"--metrics-addr", "", "--budget", "300ms", "--kill-after", "1s")
	agent.Events.Next("attached", 10*time.Second)
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	stall := agent.Events.Next("stall", 10*time.Second)
	wantFields(t, "stall", stall, map[string]any{"comm": "cat", "syscall": "read", "fs": "fuse"})
	if pid, _ := stall["pid"].(float64); int(pid) == sh.Process.Pid || pid == 0 {
		t.Errorf("stall in process %v, want the forked cat, not the shell %d", pid, sh.Process.Pid)
	}
	if code := agent.Wait(t, 10*time.Second); code != exitKilled {
		t.Fatalf("stallmon exited %d, want %d (killed)", code, exitKilled)
	}
	select {
	case <-shDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the shell outlived the kill of its tree")
	}
}
