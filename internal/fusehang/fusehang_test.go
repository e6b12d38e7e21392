package fusehang_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/fusehang"
	"github.com/stallmon/stallmon/workload"
	"github.com/stallmon/stallmon/workload/workloadtest"
)

// TestMain turns the re-executed test binary into the workload, the
// process that reads the file.
func TestMain(m *testing.M) {
	workload.RunIfChild()
	os.Exit(m.Run())
}

// startReader starts a workload. Call it before fusehang.Mount, so that the
// mount's cleanup (which releases the reads) runs before the workload's.
func startReader(t *testing.T) *workload.Proc {
	t.Helper()
	return workloadtest.Start(t)
}

// readFile makes the workload read f.File and returns the reading thread.
func readFile(t *testing.T, p *workload.Proc, f *fusehang.FS) int {
	t.Helper()
	r, err := p.Do("read-file " + f.File)
	if err != nil {
		t.Fatalf("read-file: %v", err)
	}
	tid, err := r.Int("tid")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := r.Int("fd")
	if err != nil {
		t.Fatal(err)
	}
	if link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", p.PID, fd)); err != nil || link != f.File {
		t.Fatalf("fd %d of the workload is %q (%v), want %s", fd, link, err, f.File)
	}
	if _, err := f.WaitFor("held read", 5*time.Second, func(s fusehang.Stats) bool { return s.Pending == 1 }); err != nil {
		t.Fatal(err)
	}
	return tid
}

type task struct{ state, wchan, stack string }

func inspect(t *testing.T, pid, tid int) task {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/task/%d/", pid, tid)
	read := func(name string) string {
		b, err := os.ReadFile(dir + name)
		if err != nil {
			t.Fatalf("thread %d: %v", tid, err)
		}
		return strings.TrimSpace(string(b))
	}
	stat := read("stat")
	rest := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	return task{state: rest[0], wchan: read("wchan"), stack: read("stack")}
}

// waitTask returns what /proc says about the thread once ok holds for it,
// reading stat and wchan until they agree; it fails the test after 5s.
func waitTask(t *testing.T, pid, tid int, want string, ok func(task) bool) task {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		th := inspect(t, pid, tid)
		if ok(th) {
			return th
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d: state %q wchan %q, want %s", tid, th.state, th.wchan, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exited reports whether pid has exited (its pidfd is readable), without
// waiting.
func exited(t *testing.T, pid int) bool {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return true
	}
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	if err != nil {
		t.Fatalf("poll(pidfd %d): %v", pid, err)
	}
	return n > 0
}

// waitKilled waits for the workload to end and checks SIGKILL ended it.
func waitKilled(t *testing.T, p *workload.Proc, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("workload %d still alive %v after SIGKILL", p.PID, timeout)
	}
	ws := p.Cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("workload status %v, want killed by SIGKILL", ws)
	}
	return time.Since(start)
}

func mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

func TestReadHangsUntilRelease(t *testing.T) {
	p := startReader(t)
	f := fusehang.Mount(t, fusehang.Options{})
	if _, err := os.Stat(f.File); err != nil {
		t.Fatal(err)
	}
	tid := readFile(t, p, f)

	// The server has the request; the reader may still be on its way to
	// sleep.
	th := waitTask(t, p.PID, tid, "S in request_wait_answer", func(th task) bool {
		return th.state == "S" && th.wchan == "request_wait_answer"
	})
	if !strings.Contains(th.stack, "fuse_") {
		t.Errorf("reader's kernel stack does not mention fuse:\n%s", th.stack)
	}
	// The workload must not hold the FUSE device: go-fuse's own
	// DirectMount leaks it into children (no O_CLOEXEC).
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.PID))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p.PID, e.Name())); link == "/dev/fuse" {
			t.Errorf("workload inherited /dev/fuse as fd %s", e.Name())
		}
	}

	// Still held a while later: nothing but Release answers it.
	time.Sleep(200 * time.Millisecond)
	if s := f.Stats(); s.Pending != 1 || s.Reads != 1 {
		t.Fatalf("stats %+v, want the one read still held", s)
	}
	f.Release()
	if _, err := f.WaitFor("answered read", 5*time.Second, func(s fusehang.Stats) bool { return s.Pending == 0 }); err != nil {
		t.Fatal(err)
	}
	// The reader's thread ends once its read returned.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", p.PID, tid)); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reader thread %d still there after release: %+v", tid, inspect(t, p.PID, tid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if mounted(t, f.Dir) {
		t.Fatalf("%s still mounted after Close", f.Dir)
	}
}

// The case stallmon reports as unkillable: SIGKILL reaches a reader whose
// request the server holds and whose interrupt it ignores.
func TestKilledReaderCannotDieUntilRelease(t *testing.T) {
	p := startReader(t)
	f := fusehang.Mount(t, fusehang.Options{})
	tid := readFile(t, p, f)

	if err := p.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WaitFor("interrupt", 5*time.Second, func(s fusehang.Stats) bool { return s.Interrupts >= 1 }); err != nil {
		t.Fatal(err)
	}
	// The interrupt is queued before the reader settles into its last,
	// uninterruptible wait; in between it runs, or sleeps killably (also
	// "D" in /proc).
	stuck := func(th task) bool { return th.state == "D" && th.wchan == "request_wait_answer" }
	th := waitTask(t, p.PID, tid, "D in request_wait_answer", stuck)
	// A killable sleep would have ended at once with SIGKILL pending.
	time.Sleep(500 * time.Millisecond)
	if exited(t, p.PID) {
		t.Fatal("workload exited while its read was held")
	}
	if th := inspect(t, p.PID, tid); !stuck(th) {
		t.Fatalf("killed reader left its wait while the read was held: %+v", th)
	}
	f.Release()
	took := waitKilled(t, p, 5*time.Second)
	t.Logf("killed reader: state D, wchan %s; exited %v after release; stack:\n%s", th.wchan, took.Round(time.Millisecond), th.stack)
}

// Aborting the connection frees a killed reader just as an answer does.
func TestAbortFreesKilledReader(t *testing.T) {
	p := startReader(t)
	f := fusehang.Mount(t, fusehang.Options{})
	readFile(t, p, f)
	if err := p.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WaitFor("interrupt", 5*time.Second, func(s fusehang.Stats) bool { return s.Interrupts >= 1 }); err != nil {
		t.Fatal(err)
	}
	if err := f.Abort(); err != nil {
		t.Fatal(err)
	}
	waitKilled(t, p, 5*time.Second)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if mounted(t, f.Dir) {
		t.Fatalf("%s still mounted after Close", f.Dir)
	}
}

// A server that honours interrupts lets SIGKILL end the reader at once.
func TestHonourInterruptsLetsKillWork(t *testing.T) {
	p := startReader(t)
	f := fusehang.Mount(t, fusehang.Options{HonourInterrupts: true})
	readFile(t, p, f)
	if err := p.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	took := waitKilled(t, p, 5*time.Second)
	if s := f.Stats(); s.Interrupts != 1 || s.Pending != 0 {
		t.Errorf("stats %+v, want one interrupt and no held read", s)
	}
	t.Logf("killed reader exited %v after SIGKILL", took.Round(time.Millisecond))
}

const childEnv = "FUSEHANG_FAILING_CHILD"

// TestChildFailsWithKilledReader is run by TestCleanupOnFailure in a child
// process: it leaves a killed reader stuck on the mount and fails.
func TestChildFailsWithKilledReader(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		t.Skip("helper for TestCleanupOnFailure")
	}
	p := startReader(t)
	f := fusehang.Mount(t, fusehang.Options{})
	readFile(t, p, f)
	p.Cmd.Process.Kill()
	if _, err := f.WaitFor("interrupt", 5*time.Second, func(s fusehang.Stats) bool { return s.Interrupts >= 1 }); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("child: mount=%s workload=%d\n", f.Dir, p.PID)
	t.Fatal("deliberate failure with a killed reader stuck on the mount")
}

// A test that fails with a reader stuck in D still ends, unmounts and lets
// the reader die.
func TestCleanupOnFailure(t *testing.T) {
	fusehang.Require(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "-test.run=^TestChildFailsWithKilledReader$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("child still running after a minute:\n%s", out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "--- FAIL: TestChildFailsWithKilledReader") {
		t.Fatalf("child: err=%v, want it to fail; output:\n%s", err, out)
	}
	m := regexp.MustCompile(`child: mount=(\S+) workload=(\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("child did not get to the failure; output:\n%s", out)
	}
	if mounted(t, m[1]) {
		t.Errorf("%s still mounted after the failed test", m[1])
	}
	if _, err := os.Stat(filepath.Dir(m[1])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary directory %s left behind (err=%v)", filepath.Dir(m[1]), err)
	}
	pid, _ := strconv.Atoi(m[2])
	if !exited(t, pid) {
		t.Errorf("workload %d still alive after the failed test", pid)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "fusehang cleanup:") {
			t.Errorf("cleanup reported a problem: %s", sc.Text())
		}
	}
}
