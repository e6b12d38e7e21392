package cgroup_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/workloadtest"
)

// Without cgroup.kill (forced here on a kernel that has it) a service is
// killed by freezing its cgroup and signalling each member through a
// pidfd: a multi-threaded process, one hung in a syscall (userfaultfd), a
// shell forking children in a loop and a process in a child cgroup all
// die of SIGKILL, the cgroup is left thawed and empty, and a process in a
// sibling cgroup lives on.
func TestFreezeKillEmptiesTheCgroup(t *testing.T) {
	parent := cgrouptest.New(t)
	svc := mkdir(t, parent, "svc")
	workers := mkdir(t, svc, "workers")
	sibling := mkdir(t, parent, "sibling")

	threads := workloadtest.Start(t)
	if _, err := threads.Do("sleepers 8"); err != nil {
		t.Fatal(err)
	}
	hung := workloadtest.Start(t)
	for _, c := range []struct {
		d   cgroup.Dir
		pid int
	}{{svc, threads.PID}, {workers, hung.PID}} {
		if err := c.d.Add(c.pid); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hung.Do("uffd-hang"); err != nil {
		t.Fatal(err)
	}
	forker := startIn(t, svc, "sh", "-c", "while :; do sleep 30 & sleep 0.01; done")
	bystander := startIn(t, sibling, "sleep", "600")
	waitProcs(t, svc, 10)

	cgroup.ForceFreezeKill(t)
	start := time.Now()
	if err := svc.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	t.Logf("freeze-path kill returned in %v", time.Since(start))
	waitEmpty(t, svc)
	for name, wait := range map[string]func() error{"multi-threaded": threads.Wait, "hung": hung.Wait, "forking": forker.wait} {
		if err := waitErr(wait); !killed(err) {
			t.Errorf("the %s process: %v, want killed by SIGKILL", name, err)
		}
	}
	wantThawed(t, svc)
	if err := bystander.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the process of the sibling cgroup: %v, want alive", err)
	}
	if pids, err := sibling.Procs(); err != nil || len(pids) != 1 || pids[0] != bystander.cmd.Process.Pid {
		t.Errorf("sibling cgroup holds %v (%v), want [%d]", pids, err, bystander.cmd.Process.Pid)
	}
}

// A process moved into the cgroup while it is being killed (frozen),
// after the first round's signals, is killed by the next round.
func TestFreezeKillCatchesLateJoiner(t *testing.T) {
	parent := cgrouptest.New(t)
	svc, outside := mkdir(t, parent, "svc"), mkdir(t, parent, "outside")
	first := startIn(t, svc, "sleep", "600")
	late := startIn(t, outside, "sleep", "600")
	err := svc.FreezeKill(3*time.Second, func(round int) {
		if round == 1 {
			if err := svc.Add(late.cmd.Process.Pid); err != nil {
				t.Error(err)
			}
		}
	})
	if err != nil {
		t.Fatalf("kill: %v", err)
	}
	waitEmpty(t, svc)
	for name, p := range map[string]*proc{"first": first, "late": late} {
		if err := waitErr(p.wait); !killed(err) {
			t.Errorf("the %s process: %v, want killed by SIGKILL", name, err)
		}
	}
	wantThawed(t, svc)
}

// Processes that keep joining fail the kill at its deadline, and the
// cgroup is thawed all the same: a failed kill never leaves a service
// frozen.
func TestFreezeKillFailsThawed(t *testing.T) {
	parent := cgrouptest.New(t)
	svc, outside := mkdir(t, parent, "svc"), mkdir(t, parent, "outside")
	startIn(t, svc, "sleep", "600")
	join, last := joinEveryRound(t, svc, outside)
	rounds := 0
	err := svc.FreezeKill(300*time.Millisecond, func(round int) {
		rounds = round
		join(round)
	})
	if !errors.Is(err, cgroup.ErrStillJoining) {
		t.Fatalf("kill: %v, want %v", err, cgroup.ErrStillJoining)
	}
	t.Logf("gave up after %d rounds", rounds)
	wantThawed(t, svc)
	if err := last().cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the last joiner: %v, want alive (joined after the last round)", err)
	}
}

// A pidfd is signalled only if its PID is listed again after it was
// opened: a process that left the cgroup in between (as a PID reused by
// a stranger would be: no longer a member) is spared, the member that
// stayed is killed.
func TestFreezeKillSignalsOnlyMembersListedAfterOpen(t *testing.T) {
	parent := cgrouptest.New(t)
	svc, outside := mkdir(t, parent, "svc"), mkdir(t, parent, "outside")
	stays := startIn(t, svc, "sleep", "600")
	// Exits 0 on SIGTERM: it dies of SIGKILL only if the kill sent one.
	leaves := startIn(t, svc, "sh", "-c", `trap "exit 0" TERM; while :; do :; done`)
	waitProcs(t, svc, 2)
	waitCatches(t, leaves.cmd.Process.Pid, syscall.SIGTERM)
	moved := false
	err := svc.FreezeKillAfterOpen(func() {
		if moved {
			return
		}
		moved = true
		if err := outside.Add(leaves.cmd.Process.Pid); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatalf("kill: %v", err)
	}
	if !moved {
		t.Fatal("the kill never opened a pidfd")
	}
	if err := waitErr(stays.wait); !killed(err) {
		t.Errorf("the member that stayed: %v, want killed by SIGKILL", err)
	}
	wantThawed(t, svc)
	// A SIGKILL the kill sent would be what it dies of, before our
	// SIGTERM's trap could exit 0.
	if err := leaves.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("the process that left before the confirming listing: %v, want alive", err)
	}
	if err := waitErr(leaves.wait); err != nil {
		t.Errorf("the process that left before the confirming listing: %v, want exit 0 on our SIGTERM, never the kill's SIGKILL", err)
	}
}

// Killing a cgroup that was removed says so, as fs.ErrNotExist, with
// cgroup.kill and on the freeze path alike.
func TestKillRemovedCgroupIsNotExist(t *testing.T) {
	parent := cgrouptest.New(t)
	for _, force := range []bool{false, true} {
		gone := mkdir(t, parent, fmt.Sprintf("gone-%v", force))
		if err := os.Remove(gone.Path); err != nil {
			t.Fatal(err)
		}
		if force {
			cgroup.ForceFreezeKill(t)
		}
		if err := gone.Kill(); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("freeze path %v: kill of a removed cgroup: %v, want %v", force, err, fs.ErrNotExist)
		}
	}
}

// A member that SIGKILL cannot end yet (a FUSE read the server holds
// after the kernel handed it over, in D) never freezes: the kill does not
// wait for it for ever, kills the others, leaves the cgroup thawed, and
// the held one dies as soon as the server answers, of the SIGKILL it was
// sent meanwhile.
func TestFreezeKillBoundedByAnUnkillableMember(t *testing.T) {
	fusehang.Require(t)
	fs := fusehang.Mount(t, fusehang.Options{})
	svc := cgrouptest.New(t)
	reader := startIn(t, svc, "cat", fs.File)
	other := startIn(t, svc, "sleep", "600")
	for end := time.Now().Add(10 * time.Second); fs.Stats().Pending == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the read never reached the FUSE server")
		}
	}
	start := time.Now()
	err := svc.FreezeKill(3*time.Second, nil)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("kill: %v", err)
	}
	if took > 2*time.Second {
		t.Errorf("the kill took %v with a member that cannot freeze, want its two bounded waits (~0.5s)", took)
	}
	t.Logf("kill returned in %v, the held reader still in the kernel", took)
	if err := waitErr(other.wait); !killed(err) {
		t.Errorf("the sleeping member: %v, want killed by SIGKILL", err)
	}
	wantThawed(t, svc)
	if err := reader.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the held reader: %v, want still there until the server answers", err)
	}
	fs.Release()
	if err := waitErr(reader.wait); !killed(err) {
		t.Errorf("the held reader, once answered: %v, want killed by the SIGKILL sent before", err)
	}
	waitEmpty(t, svc)
}

type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

func (p *proc) wait() error {
	<-p.exited
	return p.err
}

// startIn starts a command straight into d (CLONE_INTO_CGROUP), so that
// nothing it forks is born outside; it is killed at the test's end.
func startIn(t *testing.T, d cgroup.Dir, name string, args ...string) *proc {
	t.Helper()
	fd, err := os.Open(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fd.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	// Reaped before the cgroup's own cleanup removes the cgroup, which a
	// process still dying would keep busy.
	t.Cleanup(func() {
		cmd.Process.Kill()
		if err := waitErr(p.wait); err != nil && !killed(err) {
			t.Errorf("%s: %v", name, err)
		}
	})
	return p
}

// waitCatches waits until pid has a handler for sig (SigCgt in
// /proc/PID/status).
func waitCatches(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "SigCgt:"); ok {
				if mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil && mask&(1<<(sig-1)) != 0 {
					return
				}
			}
		}
	}
	t.Fatalf("%d never caught %v", pid, sig)
}

func mkdir(t *testing.T, parent cgroup.Dir, name string) cgroup.Dir {
	t.Helper()
	d, err := cgroup.Mkdir(parent.Path, name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitProcs waits for the subtree of d to hold at least n processes.
func waitProcs(t *testing.T, d cgroup.Dir, n int) {
	t.Helper()
	var pids []int
	var err error
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if pids, _, err = d.SubtreeProcs(pids[:0], nil); err == nil && len(pids) >= n {
			return
		}
	}
	t.Fatalf("cgroup holds %d processes (%v), want %d", len(pids), err, n)
}

func waitEmpty(t *testing.T, d cgroup.Dir) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if populated, err := d.Populated(); err == nil && !populated {
			return
		}
	}
	pids, _, err := d.SubtreeProcs(nil, nil)
	t.Fatalf("cgroup still holds %v (%v) 10s after the kill", pids, err)
}

func waitErr(wait func() error) error {
	got := make(chan error, 1)
	go func() { got <- wait() }()
	select {
	case err := <-got:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("still running 10s after the kill")
	}
}

func killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

func wantThawed(t *testing.T, d cgroup.Dir) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.Path, "cgroup.freeze"))
	if err != nil || strings.TrimSpace(string(b)) != "0" {
		t.Errorf("cgroup.freeze = %q (%v), want 0", b, err)
	}
	b, err = os.ReadFile(filepath.Join(d.Path, "cgroup.events"))
	if err != nil || !strings.Contains(string(b), "frozen 0") {
		t.Errorf("cgroup.events = %q (%v), want frozen 0", b, err)
	}
}
