package workload_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/workload"
)

// TestMain turns the re-executed test binary into the workload.
func TestMain(m *testing.M) {
	workload.RunIfChild()
	os.Exit(m.Run())
}

// start runs this test binary as a workload that must exit cleanly on EOF
// when the test ends, whatever its threads are doing by then.
func start(t *testing.T) *workload.Proc {
	t.Helper()
	p := startRaw(t)
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stopping workload: %v", err)
		}
	})
	return p
}

func startRaw(t *testing.T) *workload.Proc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("locating test binary: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p, err := workload.Start(ctx, self, []string{"-test.run=^$"}, nil)
	if err != nil {
		t.Fatalf("starting workload: %v", err)
	}
	return p
}

func do(t *testing.T, p *workload.Proc, cmd string) workload.Reply {
	t.Helper()
	r, err := p.Do(cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return r
}

func mustInt(t *testing.T, r workload.Reply, key string) int {
	t.Helper()
	n, err := r.Int(key)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// thread is what /proc says about one thread of the workload.
type thread struct {
	syscall string // /proc/PID/task/TID/syscall
	state   string // third field of stat
	wchan   string
}

func inspect(t *testing.T, pid, tid int) thread {
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
	// The command name in parentheses may hold spaces: split after it.
	rest := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	if len(rest) == 0 {
		t.Fatalf("thread %d: malformed stat %q", tid, stat)
	}
	return thread{syscall: read("syscall"), state: rest[0], wchan: read("wchan")}
}

// assertStuck checks the thread sleeps interruptibly in read(fd) in one of
// the kernel functions wchans.
func assertStuck(t *testing.T, p *workload.Proc, r workload.Reply, wchans ...string) {
	t.Helper()
	tid, fd := mustInt(t, r, "tid"), mustInt(t, r, "fd")
	if nr := mustInt(t, r, "nr"); nr != unix.SYS_READ || r.Fields["syscall"] != "read" {
		t.Errorf("reply names syscall %s nr=%d, want read nr=%d", r.Fields["syscall"], nr, unix.SYS_READ)
	}
	if tid == p.PID {
		t.Errorf("worker runs on the main thread %d", tid)
	}
	th := inspect(t, p.PID, tid)
	if !workload.SleepsIn(th.syscall, unix.SYS_READ, fd) {
		t.Errorf("thread %d: syscall file %q, want read (%d) on fd %d", tid, th.syscall, unix.SYS_READ, fd)
	}
	if th.state != "S" {
		t.Errorf("thread %d: state %q, want S", tid, th.state)
	}
	if !slices.Contains(wchans, th.wchan) {
		t.Errorf("thread %d: wchan %q, want one of %q", tid, th.wchan, wchans)
	}
}

// assertLeftRead checks a released thread is no longer asleep in read(fd):
// it is running, in another syscall, or (usually) already gone.
func assertLeftRead(t *testing.T, pid, tid, fd int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/syscall", pid, tid))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return
	}
	if err != nil {
		t.Fatalf("thread %d: %v", tid, err)
	}
	if workload.SleepsIn(string(b), unix.SYS_READ, fd) {
		t.Errorf("thread %d still asleep in read on fd %d after release: %q", tid, fd, b)
	}
}

func TestUffdHang(t *testing.T) {
	privtest.Require(t)
	privtest.RequireUserfaultfd(t)
	p := start(t)

	r := do(t, p, "uffd-hang")
	assertStuck(t, p, r, "handle_userfault")
	if _, err := p.Do("uffd-hang"); !isReplyError(err) {
		t.Errorf("second uffd-hang: err=%v, want an err reply", err)
	}

	rel := do(t, p, "uffd-release")
	if ret := mustInt(t, rel, "ret"); ret != os.Getpagesize() {
		t.Errorf("released read returned %d, want %d", ret, os.Getpagesize())
	}
	assertLeftRead(t, p.PID, mustInt(t, r, "tid"), mustInt(t, r, "fd"))
	if _, err := p.Do("uffd-release"); !isReplyError(err) {
		t.Errorf("uffd-release with nothing hung: err=%v, want an err reply", err)
	}
}

// A thread stuck on a userfault must not keep the process from exiting:
// the start helper's cleanup sees the exit status.
func TestExitWhileUffdHung(t *testing.T) {
	privtest.Require(t)
	privtest.RequireUserfaultfd(t)
	p := start(t)
	assertStuck(t, p, do(t, p, "uffd-hang"), "handle_userfault")
}

// pipeRead is where a pipe reader sleeps: anon_pipe_read since Linux 6.15,
// pipe_read before (the VM tests boot 6.1).
var pipeRead = []string{"anon_pipe_read", "pipe_read"}

func TestPipeWait(t *testing.T) {
	p := start(t)
	r := do(t, p, "pipe-wait")
	assertStuck(t, p, r, pipeRead...)
	rel := do(t, p, "pipe-release")
	if ret := mustInt(t, rel, "ret"); ret != 1 {
		t.Errorf("released read returned %d, want 1", ret)
	}
	assertLeftRead(t, p.PID, mustInt(t, r, "tid"), mustInt(t, r, "fd"))
}

func TestExitWhilePipeWaits(t *testing.T) {
	p := start(t)
	assertStuck(t, p, do(t, p, "pipe-wait"), pipeRead...)
}

func tids(t *testing.T, p *workload.Proc) []int {
	t.Helper()
	ts, err := do(t, p, "tids").Ints("tids")
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestSpawnWaitUsesNewThread(t *testing.T) {
	p := start(t)
	// Churn first so the runtime holds idle threads it could have reused.
	do(t, p, "churn 1 4")
	before := tids(t, p)
	if !slices.Contains(before, p.PID) {
		t.Fatalf("tids %v lack the main thread %d", before, p.PID)
	}
	r := do(t, p, "spawn-wait")
	tid := mustInt(t, r, "tid")
	if slices.Contains(before, tid) {
		t.Errorf("spawn-wait ran on thread %d, which existed before: %v", tid, before)
	}
	assertStuck(t, p, r, pipeRead...)
	if !slices.Contains(tids(t, p), tid) {
		t.Errorf("tids does not list the waiting thread %d", tid)
	}
	do(t, p, "spawn-release")
}

// TestSpawnWaitTakesSteeredTid is the use spawn-wait exists for: reuse the
// tid of a thread that just exited. Any process on the machine that forks
// between the write and the clone takes the tid first, so a few attempts
// are allowed; the test fails if none lands.
func TestSpawnWaitTakesSteeredTid(t *testing.T) {
	privtest.Require(t)
	p := start(t)
	const attempts = 10
	var misses []string
	for range attempts {
		gone, err := do(t, p, "churn 1 1").Progress[0].Fields.Ints("tids")
		if err != nil {
			t.Fatal(err)
		}
		want := gone[0]
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(want-1)), 0); err != nil {
			t.Fatalf("steering tids: %v", err)
		}
		r := do(t, p, "spawn-wait")
		got := mustInt(t, r, "tid")
		do(t, p, "spawn-release")
		if got == want {
			return
		}
		misses = append(misses, fmt.Sprintf("want %d got %d", want, got))
	}
	t.Fatalf("spawn-wait never reused the steered tid: %s", strings.Join(misses, "; "))
}

func TestBusy(t *testing.T) {
	p := start(t)
	r := do(t, p, "busy")
	tid := mustInt(t, r, "tid")
	if !slices.Contains(tids(t, p), tid) {
		t.Errorf("busy thread %d is not among the workload's threads", tid)
	}
	stop := do(t, p, "busy-stop")
	if n := mustInt(t, stop, "count"); n < 1 {
		t.Errorf("busy thread made %d syscalls", n)
	}
}

func TestChurn(t *testing.T) {
	const rounds, threads = 3, 20
	p := start(t)
	r := do(t, p, fmt.Sprintf("churn %d %d", rounds, threads))
	if got := mustInt(t, r, "rounds"); got != rounds {
		t.Errorf("rounds=%d, want %d", got, rounds)
	}
	if len(r.Progress) != rounds {
		t.Fatalf("got %d progress lines, want %d: %v", len(r.Progress), rounds, r.Progress)
	}
	var churned []int
	for i, l := range r.Progress {
		if l.Word != "round" || l.Fields["n"] != strconv.Itoa(i+1) {
			t.Errorf("progress line %d is %v, want round n=%d", i, l, i+1)
		}
		ts, err := l.Fields.Ints("tids")
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int]bool{}
		for _, tid := range ts {
			if seen[tid] {
				t.Errorf("round %d reports tid %d twice: %v", i+1, tid, ts)
			}
			seen[tid] = true
		}
		if len(seen) != threads {
			t.Errorf("round %d: %d distinct tids, want %d: %v", i+1, len(seen), threads, ts)
		}
		churned = append(churned, ts...)
	}
	for _, tid := range churned {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", p.PID, tid)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("churned thread %d still exists (stat err=%v)", tid, err)
		}
	}
}

func TestFsyncLoop(t *testing.T) {
	p := start(t)
	r := do(t, p, "fsync-loop "+t.TempDir())
	path := r.Fields["path"]
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("fsync file: %v", err)
	}
	if fi.Size() != 4096 {
		t.Errorf("%s holds %d bytes after the first pass, want 4096", path, fi.Size())
	}
	stop := do(t, p, "fsync-stop")
	if n := mustInt(t, stop, "count"); n < 1 {
		t.Errorf("fsync passes: %d, want at least 1", n)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left behind after fsync-stop (stat err=%v)", path, err)
	}
}

func TestExitCode(t *testing.T) {
	p := startRaw(t)
	if err := p.Send("exit 7"); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("exit 7: Wait returned %v, want exit status 7", err)
	}
	if _, err := p.Do("tids"); err == nil {
		t.Errorf("Do after exit succeeded")
	}
}

func isReplyError(err error) bool {
	var re *workload.ReplyError
	return errors.As(err, &re)
}

func TestBadCommands(t *testing.T) {
	p := start(t)
	for _, cmd := range []string{"frobnicate", "churn 1", "churn x 2", "churn 1 0", "exit 256", "pipe-release"} {
		_, err := p.Do(cmd)
		if !isReplyError(err) {
			t.Errorf("%q: err=%v, want an err reply", cmd, err)
		}
	}
	_, err := p.Do("frobnicate now")
	if !isReplyError(err) || !strings.Contains(err.Error(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: err=%v", err)
	}
	if ts := tids(t, p); !slices.Contains(ts, p.PID) {
		t.Errorf("after bad commands, tids %v lack the main thread", ts)
	}
}

// A workload that never answers must cost a bounded wait, then refuse
// further commands rather than pair them with late replies.
func TestDoTimesOut(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := workload.Start(ctx, "/bin/sh", []string{"-c", "echo ready pid=$$; exec cat >/dev/null"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DoTimeout("tids", 100_000_000); err == nil || isReplyError(err) {
		t.Fatalf("mute workload: err=%v, want a timeout", err)
	}
	if _, err := p.Do("tids"); err == nil || !strings.Contains(err.Error(), "not sending") {
		t.Errorf("Do after a timeout: err=%v, want a refusal", err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("stopping the mute workload: %v", err)
	}
}

// close-linger: close(2) of a socket whose peer does not read lingers,
// asleep, for the SO_LINGER time, then returns.
func TestCloseLinger(t *testing.T) {
	const linger = 1
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	p := start(t)
	r := do(t, p, fmt.Sprintf("close-linger %s %d", ln.Addr(), linger))
	tid, fd := mustInt(t, r, "tid"), mustInt(t, r, "fd")
	if th := inspect(t, p.PID, tid); !workload.SleepsIn(th.syscall, unix.SYS_CLOSE, fd) || th.state != "S" {
		t.Errorf("thread %d: syscall %q state %q, want asleep (S) in close on fd %d", tid, th.syscall, th.state, fd)
	}
	done := do(t, p, "close-wait")
	secs, err := strconv.ParseFloat(done.Fields["seconds"], 64)
	if err != nil {
		t.Fatal(err)
	}
	if secs < linger-0.1 || secs > linger+2 {
		t.Errorf("close lingered %.3fs, want about %ds", secs, linger)
	}
	(<-accepted).Close()
	if _, err := p.Do("close-wait"); !isReplyError(err) {
		t.Errorf("close-wait with nothing closing: err=%v, want an err reply", err)
	}
}
