package cgroup_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
)

// A service that makes and removes child cgroups (a container runtime,
// systemd scopes) never fails the listing of its subtree: a child removed
// between the listing of its parent and the read of its cgroup.procs was
// empty, and is left out.
func TestSubtreeProcsWhileChildrenComeAndGo(t *testing.T) {
	d := cgrouptest.New(t)
	sleep := exec.Command("sleep", "600")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	if err := d.Add(sleep.Process.Pid); err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			child := filepath.Join(d.Path, fmt.Sprintf("c%d", i%4))
			if err := os.Mkdir(child, 0o755); err != nil {
				done <- err
				return
			}
			if err := os.Remove(child); err != nil {
				done <- err
				return
			}
		}
	}()
	var pids []int
	var buf []byte
	var err error
	n := 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); n++ {
		pids, buf, err = d.SubtreeProcs(pids[:0], buf)
		if err != nil {
			break
		}
		if !slices.Equal(pids, []int{sleep.Process.Pid}) {
			err = fmt.Errorf("listed %v, want [%d]", pids, sleep.Process.Pid)
			break
		}
	}
	close(stop)
	if cerr := <-done; cerr != nil {
		t.Fatalf("making and removing children: %v", cerr)
	}
	if err != nil {
		t.Fatalf("listing %d: %v", n, err)
	}
	t.Logf("%d listings while children came and went", n)
}
