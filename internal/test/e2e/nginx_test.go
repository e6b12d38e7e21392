package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/nginxtest"
)

// Debian's nginx, a master and two workers, serving files from a FUSE
// mount that stops answering: the worker stuck in sendfile(2) is found
// through --cgroup and through --pid MASTER --tree (the master's PID alone
// would show nothing), the whole service is killed (cgroup.kill, or a
// pidfd per process of the tree), and stallmon reports it killed only
// once every process is gone.
func TestNginxWorkerStuckInSendfile(t *testing.T) {
	nginxtest.Require(t)
	fusehang.Require(t)
	for _, mode := range []string{"cgroup", "tree"} {
		t.Run(mode, func(t *testing.T) {
			fs := fusehang.Mount(t, fusehang.Options{PageCache: true})
			cg := cgrouptest.New(t)
			srv := nginxtest.Start(t, fs.Dir, cg.Path)
			target := []string{"--cgroup", cg.Path}
			if mode == "tree" {
				target = []string{"--pid", itoa(srv.Cmd.Process.Pid), "--tree"}
			}
			agent := startStallmon(t, append([]string{"attach", "--no-heartbeat", "--log-format", "json",
				"--metrics-addr", "", "--budget", "1s", "--kill-after", "3s"}, target...)...)
			agent.Events.Next("attached", 10*time.Second)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go srv.Get(ctx, "/"+fusehang.FileName) // never answered: its worker hangs
			issued := time.Now()
			stall := agent.Events.Next("stall", 15*time.Second)
			wantFields(t, "stall", stall, map[string]any{"syscall": "sendfile", "fd_kind": "regular", "fs": "fuse"})
			worker, _ := stall["pid"].(float64)
			if int(worker) == srv.Cmd.Process.Pid || worker == 0 {
				t.Errorf("stall in process %v, want a worker, not the master %d", worker, srv.Cmd.Process.Pid)
			}
			if code := agent.Wait(t, 15*time.Second); code != exitKilled {
				t.Fatalf("stallmon exited %d, want %d (killed)", code, exitKilled)
			}
			select {
			case <-srv.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("nginx's master outlived the kill")
			}
			if populated, err := cg.Populated(); err != nil || populated {
				t.Fatalf("nginx's cgroup still populated (%v, %v) after stallmon reported the kill", populated, err)
			}
			t.Logf("request to stall %v (worker %v, state %v, reason %v); stallmon exited %v after the request",
				eventTime(t, stall).Sub(issued).Round(time.Millisecond), worker, stall["state"], stall["reason"],
				time.Since(issued).Round(time.Millisecond))
		})
	}
}

// An idle nginx serving a local client's requests for 10s, with the
// built-in table, is never flagged.
func TestNginxServingNotFlagged(t *testing.T) {
	nginxtest.Require(t)
	root := t.TempDir()
	page := strings.Repeat("stallmon\n", 4096)
	if err := os.WriteFile(filepath.Join(root, "page.txt"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	cg := cgrouptest.New(t)
	srv := nginxtest.Start(t, root, cg.Path)
	stop := make(chan struct{})
	served := make(chan int, 1)
	go func() {
		n := 0
		defer func() { served <- n }()
		// Bounded: at most one request per 10ms, until the window ends.
		for tick := time.NewTicker(10 * time.Millisecond); ; {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			body, err := srv.Get(ctx, "/page.txt")
			cancel()
			if err != nil || body != page {
				t.Errorf("GET /page.txt: %v (%d bytes)", err, len(body))
				return
			}
			n++
		}
	}()
	watchHealthy(t, 10*time.Second, "--cgroup", cg.Path)
	close(stop)
	n := <-served
	if n < 100 {
		t.Errorf("nginx served %d requests in the window, want a steady stream", n)
	}
	t.Logf("nginx served %d requests in the 10s window, none flagged", n)
}
