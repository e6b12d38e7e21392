package supervise

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"

	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// service starts a sleeper straight into dir (CLONE_INTO_CGROUP), killed
// through cgroup.kill at cleanup: never a bare pid.
func service(t *testing.T, dir cgroup.Dir) {
	t.Helper()
	f, err := os.Open(dir.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := dir.Kill(); err != nil {
			t.Errorf("killing %s: %v", dir.Path, err)
		}
		cmd.Wait()
	})
}

func paths(ds []cgroup.Dir) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Path)
	}
	return out
}

// A cgroup's owner is alive while it holds the cgroup's lock, whatever
// the pid in its name says here:
//   - a live stallmon in another pid namespace (its pid names no process
//     here) is spared: before, it looked dead and its service was killed
//     through cgroup.kill;
//   - an earlier life of this very stallmon (PID 1 in a container, same
//     pid after a restart) is a leftover: before, it was skipped and the
//     service started beside it;
//   - a pid reused by an unrelated process does not keep a leftover
//     alive: before, it did.
func TestLeftoversByLockNotPID(t *testing.T) {
	privtest.Require(t)
	parent := cgrouptest.New(t)
	log := slog.New(slog.DiscardHandler)

	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	live, lock, err := claim(parent.Path, fmt.Sprintf("stallmon-run-%d-1", dead.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	t.Cleanup(func() { live.Remove() })
	service(t, live)

	ownOld, err := cgroup.Mkdir(parent.Path, fmt.Sprintf("stallmon-run-%d-1", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ownOld.Remove() })
	service(t, ownOld)

	reused, err := cgroup.Mkdir(parent.Path, fmt.Sprintf("stallmon-run-%d-1", os.Getppid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reused.Remove() })
	service(t, reused)

	got := paths(leftovers(parent.Path, log))
	if slices.Contains(got, live.Path) {
		t.Errorf("the cgroup of a live run (lock held, its pid dead here) is a leftover: %v", got)
	}
	for _, d := range []cgroup.Dir{ownOld, reused} {
		if !slices.Contains(got, d.Path) {
			t.Errorf("%s (unlocked, populated, its pid alive here) is not a leftover: %v", d.Path, got)
		}
	}
	if populated, err := live.Populated(); err != nil || !populated {
		t.Errorf("the live run's service: populated %v, %v", populated, err)
	}

	// The lock decides: once its owner is gone, the same cgroup is left over.
	lock.Close()
	if got := paths(leftovers(parent.Path, log)); !slices.Contains(got, live.Path) {
		t.Errorf("after its owner let go, %s is not a leftover: %v", live.Path, got)
	}
}

// An empty unowned cgroup is removed; one made by claim is not, and the
// owner keeps it.
func TestClaimSurvivesAScan(t *testing.T) {
	privtest.Require(t)
	parent := cgrouptest.New(t)
	log := slog.New(slog.DiscardHandler)
	stale, err := cgroup.Mkdir(parent.Path, "stallmon-run-999999999-1")
	if err != nil {
		t.Fatal(err)
	}
	d, lock, err := claim(parent.Path, "stallmon-run-999999998-1")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	t.Cleanup(func() { d.Remove() })
	if got := leftovers(parent.Path, log); len(got) != 0 {
		t.Errorf("leftovers %v, want none", paths(got))
	}
	if _, err := os.Stat(stale.Path); !os.IsNotExist(err) {
		t.Errorf("the empty unowned cgroup is still there (%v)", err)
	}
	if same, err := sameFile(lock, d.Path); err != nil || !same {
		t.Errorf("the claimed cgroup: still there %v, %v", same, err)
	}
}
