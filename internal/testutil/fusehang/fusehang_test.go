package fusehang_test

import (
	"bufio"
	"bytes"
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

	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/testutil/workloadtest"
	"github.com/stallmon/stallmon/internal/workload"
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
	tid, _ := readFileFD(t, p, f)
	return tid
}

// readFileFD is readFile that also returns the workload's descriptor of
// the file.
func readFileFD(t *testing.T, p *workload.Proc, f *fusehang.FS) (tid, fd int) {
	t.Helper()
	r, err := p.Do("read-file " + f.File)
	if err != nil {
		t.Fatalf("read-file: %v", err)
	}
	tid, err = r.Int("tid")
	if err != nil {
		t.Fatal(err)
	}
	fd, err = r.Int("fd")
	if err != nil {
		t.Fatal(err)
	}
	if link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", p.PID, fd)); err != nil || link != f.File {
		t.Fatalf("fd %d of the workload is %q (%v), want %s", fd, link, err, f.File)
	}
	if _, err := f.WaitFor("held read", 5*time.Second, func(s fusehang.Stats) bool { return s.Pending == 1 }); err != nil {
		t.Fatal(err)
	}
	return tid, fd
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

// inFolioWait tells a thread waits for a locked page-cache folio: the wait
// itself (folio_wait_bit_common) or the lock around it, as /proc names it.
func inFolioWait(th task) bool {
	return th.state == "D" && strings.HasPrefix(th.wchan, "folio_")
}

// With PageCache the read waits for the folio that readahead locked, in
// killable D: unlike a direct-IO reader it dies at once on SIGKILL, with
// the READ still held by the server.
func TestPageCacheReadWaitsKillably(t *testing.T) {
	p := startReader(t)
	f := fusehang.Mount(t, fusehang.Options{PageCache: true})
	tid := readFile(t, p, f)
	th := waitTask(t, p.PID, tid, "D waiting for a folio", inFolioWait)
	t.Logf("page-cache reader: state %s, wchan %s; stack:\n%s", th.state, th.wchan, th.stack)

	if err := p.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	took := waitKilled(t, p, 5*time.Second)
	// Readahead is a background request, which the kernel never
	// interrupts: the server still holds it.
	if s := f.Stats(); s.Reads != 1 || s.Pending != 1 || s.Interrupts != 0 {
		t.Errorf("stats %+v after the reader died, want the one read still held and no interrupt", s)
	}
	t.Logf("killed page-cache reader exited %v after SIGKILL", took.Round(time.Millisecond))
}

// A released page-cache read returns the content, like a direct one.
func TestPageCacheReadReleases(t *testing.T) {
	p := startReader(t)
	f := fusehang.Mount(t, fusehang.Options{PageCache: true})
	tid := readFile(t, p, f)
	waitTask(t, p.PID, tid, "D waiting for a folio", inFolioWait)
	f.Release()
	waitGone(t, p.PID, tid)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if mounted(t, f.Dir) {
		t.Fatalf("%s still mounted after Close", f.Dir)
	}
}

// waitGone waits for the thread to end, which a reader does once its read
// returned.
func waitGone(t *testing.T, pid, tid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", pid, tid)); errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d still there 5s after release: %+v", tid, inspect(t, pid, tid))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// statProc starts `stat -L` of the workload's fd link, which follows the
// link into the file system (a plain lstat is answered by /proc alone), and
// returns the process, its output and a channel closed once it exited,
// after which cmd.ProcessState holds its status. Call it
// after Mount: its cleanup releases the file system before waiting, or a
// failing test would hang on a stat the server holds.
func statProc(t *testing.T, f *fusehang.FS, pid, fd int) (*exec.Cmd, *bytes.Buffer, <-chan struct{}) {
	t.Helper()
	statBin := privtest.RequireCommand(t, "stat")
	var out bytes.Buffer
	cmd := exec.Command(statBin, "-L", "--format=%s", fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		cmd.Wait()
	}()
	t.Cleanup(func() {
		f.Release()
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
			t.Errorf("stat %d still running 5s after release", cmd.Process.Pid)
		}
	})
	return cmd, &out, waited
}

// inGetattr tells a thread waits for the answer to a GETATTR; with
// interruptible the wait a signal could end (S), else the one after an
// ignored interrupt (D).
func inGetattr(interruptible bool) func(task) bool {
	state := "D"
	if interruptible {
		state = "S"
	}
	return func(th task) bool {
		return th.state == state && th.wchan == "request_wait_answer" && strings.Contains(th.stack, "fuse_do_getattr")
	}
}

// A stat that follows the reader's /proc fd link into the file system
// blocks once getattrs are held, and Release frees the stat and the
// reader alike.
func TestHoldGetattrBlocksStatOfProcFd(t *testing.T) {
	p := startReader(t)
	f := fusehang.Mount(t, fusehang.Options{})
	tid, fd := readFileFD(t, p, f)

	f.HoldGetattr()
	held := time.Now()
	cmd, out, waited := statProc(t, f, p.PID, fd)
	if _, err := f.WaitFor("held getattr", 2*time.Second, func(s fusehang.Stats) bool { return s.PendingGetattrs == 1 }); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	th := waitTask(t, pid, pid, "S in request_wait_answer under fuse_do_getattr", inGetattr(true))
	t.Logf("stat blocked %v after HoldGetattr: state %s, wchan %s; stack:\n%s", time.Since(held).Round(time.Millisecond), th.state, th.wchan, th.stack)
	// Nothing but Release answers it.
	time.Sleep(200 * time.Millisecond)
	if exited(t, pid) {
		t.Fatalf("stat exited while its getattr was held: %s", out.String())
	}

	f.Release()
	select {
	case <-waited:
		if !cmd.ProcessState.Success() {
			t.Fatalf("stat after release: %v: %s", cmd.ProcessState, out.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("stat still blocked 5s after release: %+v", inspect(t, pid, pid))
	}
	if got, want := strings.TrimSpace(out.String()), strconv.Itoa(len(fusehang.Content)); got != want {
		t.Errorf("stat printed %q, want the size %s", got, want)
	}
	waitGone(t, p.PID, tid)
	if s := f.Stats(); s.PendingGetattrs != 0 || s.Pending != 0 || s.Getattrs < 1 {
		t.Errorf("stats %+v, want at least one getattr and nothing held", s)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if mounted(t, f.Dir) {
		t.Fatalf("%s still mounted after Close", f.Dir)
	}
}

// A stat killed while its getattr is held cannot die, as a killed reader
// cannot: D in request_wait_answer until Release.
func TestKilledStatCannotDieUntilRelease(t *testing.T) {
	p := startReader(t)
	f := fusehang.Mount(t, fusehang.Options{PageCache: true})
	_, fd := readFileFD(t, p, f)
	f.HoldGetattr()
	cmd, _, waited := statProc(t, f, p.PID, fd)
	pid := cmd.Process.Pid
	waitTask(t, pid, pid, "S in request_wait_answer under fuse_do_getattr", inGetattr(true))
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	th := waitTask(t, pid, pid, "D in request_wait_answer under fuse_do_getattr", inGetattr(false))
	time.Sleep(200 * time.Millisecond)
	if exited(t, pid) {
		t.Fatal("killed stat exited while its getattr was held")
	}
	if s := f.Stats(); s.Interrupts != 1 || s.PendingGetattrs != 1 {
		t.Errorf("stats %+v, want the getattr held and its interrupt seen", s)
	}
	f.Release()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatalf("killed stat still there 5s after release: %+v", inspect(t, pid, pid))
	}
	t.Logf("killed stat: state %s, wchan %s until release", th.state, th.wchan)
}

// Getattrs are answered, and counted, before HoldGetattr.
func TestGetattrAnsweredUntilHeld(t *testing.T) {
	f := fusehang.Mount(t, fusehang.Options{})
	var st unix.Stat_t
	if err := unix.Stat(f.File, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != int64(len(fusehang.Content)) {
		t.Errorf("size %d, want %d", st.Size, len(fusehang.Content))
	}
	if s := f.Stats(); s.PendingGetattrs != 0 {
		t.Errorf("stats %+v, want no held getattr", s)
	}
}

// asleepIn waits for the workload's thread to sleep in syscall nr on fd.
func asleepIn(t *testing.T, pid, tid, nr, fd int) task {
	t.Helper()
	path := fmt.Sprintf("/proc/%d/task/%d/syscall", pid, tid)
	return waitTask(t, pid, tid, fmt.Sprintf("asleep in syscall %d on fd %d", nr, fd), func(task) bool {
		b, err := os.ReadFile(path)
		return err == nil && workload.SleepsIn(string(b), nr, fd)
	})
}

// A delayed fsync is answered once the delay ran out, and no sooner; the
// writes around it are not delayed.
func TestDelayFsyncs(t *testing.T) {
	const delay = time.Second
	p := startReader(t)
	f := fusehang.Mount(t, fusehang.Options{Loopback: t.TempDir(), HonourInterrupts: true})
	r, err := p.Do("fsync-loop " + f.Dir)
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := r.Int("tid")
	fd, _ := r.Int("fd")
	f.DelayFsyncs(delay)
	set := time.Now()
	th := asleepIn(t, p.PID, tid, unix.SYS_FSYNC, fd)
	if _, err := f.WaitFor("a delayed fsync", 10*time.Second, func(s fusehang.Stats) bool { return s.DelayedFsyncs > 0 }); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(set); took < delay {
		t.Errorf("a delayed fsync answered %v after the delay was set, want at least %v", took, delay)
	}
	f.DelayFsyncs(0)
	f.Release() // the one delayed meanwhile, if any
	if _, err := p.Do("fsync-stop"); err != nil {
		t.Fatal(err)
	}
	t.Logf("delayed fsync: thread in state %s, wchan %s", th.state, th.wchan)
}

// A held fsync waits until Release while writes go on being answered.
func TestHoldFsyncs(t *testing.T) {
	p := startReader(t)
	f := fusehang.Mount(t, fusehang.Options{Loopback: t.TempDir(), HonourInterrupts: true})
	r, err := p.Do("fsync-loop " + f.Dir)
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := r.Int("tid")
	fd, _ := r.Int("fd")
	f.HoldFsyncs()
	asleepIn(t, p.PID, tid, unix.SYS_FSYNC, fd)
	s, err := f.WaitFor("a held fsync", 5*time.Second, func(s fusehang.Stats) bool { return s.PendingFsyncs == 1 })
	if err != nil {
		t.Fatal(err)
	}
	if s.PendingWrites != 0 {
		t.Errorf("stats %+v while an fsync is held, want no write held", s)
	}
	f.Release()
	if _, err := p.Do("fsync-stop"); err != nil {
		t.Fatal(err)
	}
}

// A held FLUSH keeps close(2) waiting until Release.
func TestHoldFlushes(t *testing.T) {
	p := startReader(t)
	f := fusehang.Mount(t, fusehang.Options{Loopback: t.TempDir(), HonourInterrupts: true})
	path := filepath.Join(f.Dir, "data")
	if err := os.WriteFile(path, []byte("flush me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.HoldFlushes()
	r, err := p.Do("close-file " + path)
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := r.Int("tid")
	fd, _ := r.Int("fd")
	th := asleepIn(t, p.PID, tid, unix.SYS_CLOSE, fd)
	if _, err := f.WaitFor("a held flush", 5*time.Second, func(s fusehang.Stats) bool { return s.PendingFlushes == 1 }); err != nil {
		t.Fatal(err)
	}
	f.Release()
	if _, err := p.Do("close-wait"); err != nil {
		t.Fatal(err)
	}
	t.Logf("close on a held flush: state %s, wchan %s", th.state, th.wchan)
}

// mmap-file with MAP_POPULATE of a page-cache file waits for the folio
// the held READ keeps locked, in D, until Release.
func TestPopulateWaitsOnHeldRead(t *testing.T) {
	p := startReader(t)
	f := fusehang.Mount(t, fusehang.Options{PageCache: true})
	r, err := p.Do("mmap-file " + f.File)
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := r.Int("tid")
	th := waitTask(t, p.PID, tid, "D waiting for a folio", inFolioWait)
	t.Logf("populating mmap: state %s, wchan %s; stack:\n%s", th.state, th.wchan, th.stack)
	f.Release()
	waitGone(t, p.PID, tid)
}
