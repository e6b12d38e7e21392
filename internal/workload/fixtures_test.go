package workload_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/workload"
)

// stat is a thread's /proc stat line from the state on: [0] is the state
// letter, [11] utime in clock ticks.
func stat(t *testing.T, pid, tid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
	if err != nil {
		t.Fatalf("thread %d: %v", tid, err)
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

func comm(t *testing.T, pid, tid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", pid, tid))
	if err != nil {
		t.Fatalf("thread %d: %v", tid, err)
	}
	return strings.TrimSpace(string(b))
}

// waitInspect returns what /proc says about a thread once ok holds,
// reading it again until then; it fails the test after 5s.
func waitInspect(t *testing.T, pid, tid int, want string, ok func(thread) bool) thread {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		th := inspect(t, pid, tid)
		if ok(th) {
			return th
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d: %+v, want %s", tid, th, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inFolioWait tells a thread waits, in D, for a page-cache folio that a
// held FUSE READ keeps locked.
func inFolioWait(th thread) bool {
	return th.state == "D" && strings.HasPrefix(th.wchan, "folio_")
}

func TestSendfile(t *testing.T) {
	fusehang.Require(t)
	p := start(t)
	f := fusehang.Mount(t, fusehang.Options{PageCache: true})

	r := do(t, p, "sendfile "+f.File)
	tid, fd, inFD := mustInt(t, r, "tid"), mustInt(t, r, "fd"), mustInt(t, r, "in_fd")
	if nr := mustInt(t, r, "nr"); nr != unix.SYS_SENDFILE || r.Fields["syscall"] != "sendfile" {
		t.Errorf("reply names syscall %s nr=%d, want sendfile nr=%d", r.Fields["syscall"], nr, unix.SYS_SENDFILE)
	}
	th := waitInspect(t, p.PID, tid, "D waiting for a folio", inFolioWait)
	if !workload.SleepsIn(th.syscall, unix.SYS_SENDFILE, fd) {
		t.Errorf("thread %d: syscall file %q, want sendfile (%d) to fd %d", tid, th.syscall, unix.SYS_SENDFILE, fd)
	}
	t.Logf("sendfile thread: state %s, wchan %s, syscall %q", th.state, th.wchan, th.syscall)
	if link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", p.PID, inFD)); err != nil || link != f.File {
		t.Errorf("in_fd %d is %q (%v), want %s", inFD, link, err, f.File)
	}
	if link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", p.PID, fd)); err != nil || !strings.HasPrefix(link, "socket:") {
		t.Errorf("fd %d is %q (%v), want a socket", fd, link, err)
	}
	if _, err := p.Do("sendfile " + f.File); !isReplyError(err) {
		t.Errorf("second sendfile while the first hangs: err=%v, want an err reply", err)
	}

	f.Release()
	waitThreadGone(t, p.PID, tid)
	if st := f.Stats(); st.Reads < 1 || st.Pending != 0 {
		t.Errorf("FUSE server stats %+v, want a read, answered", st)
	}
	// The descriptors went with the thread.
	if _, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", p.PID, inFD)); err == nil {
		t.Errorf("in_fd %d still open after the sendfile returned", inFD)
	}
}

func TestSendfileErrors(t *testing.T) {
	p := start(t)
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"sendfile", "sendfile a b", "sendfile /nonexistent/file", "sendfile " + plain} {
		if _, err := p.Do(cmd); !isReplyError(err) {
			t.Errorf("%q: err=%v, want an err reply", cmd, err)
		}
	}
}

func TestUringIdle(t *testing.T) {
	p := start(t)
	r := do(t, p, "uring-idle")
	tid, fd, sq := mustInt(t, r, "tid"), mustInt(t, r, "fd"), mustInt(t, r, "sqpoll_tid")
	th := inspect(t, p.PID, tid)
	if !workload.SleepsIn(th.syscall, unix.SYS_IO_URING_ENTER, fd) || th.state != "S" {
		t.Errorf("waiter %d: state %s, syscall %q, want S in io_uring_enter (%d) on fd %d", tid, th.state, th.syscall, unix.SYS_IO_URING_ENTER, fd)
	}
	if c := comm(t, p.PID, sq); !strings.HasPrefix(c, "iou-sqp-") {
		t.Errorf("sqpoll_tid %d is named %q, want iou-sqp-*", sq, c)
	}
	wrk := mustInt(t, r, "worker_tid")
	if c := comm(t, p.PID, wrk); !strings.HasPrefix(c, "iou-wrk-") {
		t.Errorf("worker_tid %d is named %q, want iou-wrk-*", wrk, c)
	}
	if ts := tids(t, p); !slices.Contains(ts, sq) || !slices.Contains(ts, tid) {
		t.Errorf("tids %v lack the waiter %d or the SQ thread %d", ts, tid, sq)
	}
	// The SQ thread polls for sq_thread_idle, then sleeps.
	sqt := waitInspect(t, p.PID, sq, "the SQ thread asleep", func(th thread) bool { return th.state == "S" })
	t.Logf("waiter: state %s, wchan %s, syscall %q; SQ thread: state %s, wchan %s, syscall %q", th.state, th.wchan, th.syscall, sqt.state, sqt.wchan, sqt.syscall)
	if _, err := p.Do("uring-idle"); !isReplyError(err) {
		t.Errorf("second uring-idle: err=%v, want an err reply", err)
	}

	stop := do(t, p, "uring-stop")
	if res := mustInt(t, stop, "res"); res != 0 {
		t.Errorf("NOP completed with %d, want 0", res)
	}
	waitThreadGone(t, p.PID, tid)
	// uring-stop replies once the SQ thread is gone.
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", p.PID, sq)); err == nil {
		t.Errorf("SQ thread %d still there after uring-stop", sq)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", p.PID, wrk)); err == nil {
		t.Errorf("io-wq worker %d still there after uring-stop", wrk)
	}
	if _, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", p.PID, fd)); err == nil {
		t.Errorf("ring fd %d still open after uring-stop", fd)
	}
	if _, err := p.Do("uring-stop"); !isReplyError(err) {
		t.Errorf("uring-stop with no ring: err=%v, want an err reply", err)
	}
	// A second round works as the first.
	do(t, p, "uring-idle")
	do(t, p, "uring-stop")
}

func TestUringRead(t *testing.T) {
	fusehang.Require(t)
	p := start(t)
	f := fusehang.Mount(t, fusehang.Options{PageCache: true})

	r := do(t, p, "uring-read "+f.File)
	worker, fd, tid := mustInt(t, r, "worker_tid"), mustInt(t, r, "fd"), mustInt(t, r, "tid")
	if c := comm(t, p.PID, worker); !strings.HasPrefix(c, "iou-wrk-") {
		t.Errorf("worker_tid %d is named %q, want iou-wrk-*", worker, c)
	}
	wt := waitInspect(t, p.PID, worker, "the io-wq worker in D waiting for a folio", inFolioWait)
	sub := inspect(t, p.PID, tid)
	if !workload.SleepsIn(sub.syscall, unix.SYS_IO_URING_ENTER, fd) || sub.state != "S" {
		t.Errorf("submitter %d: state %s, syscall %q, want S in io_uring_enter on fd %d", tid, sub.state, sub.syscall, fd)
	}
	t.Logf("io-wq worker %d: state %s, wchan %s, syscall %q; submitter: state %s, wchan %s", worker, wt.state, wt.wchan, wt.syscall, sub.state, sub.wchan)
	if _, err := p.Do("uring-read " + f.File); !isReplyError(err) {
		t.Errorf("second uring-read while the first hangs: err=%v, want an err reply", err)
	}

	f.Release()
	// The submitter closes the ring and exits once the read completed;
	// its io-wq worker goes with it.
	waitThreadGone(t, p.PID, tid)
	waitThreadGone(t, p.PID, worker)
	if st := f.Stats(); st.Reads < 1 || st.Pending != 0 {
		t.Errorf("FUSE server stats %+v, want a read, answered", st)
	}
	for _, ts := range tids(t, p) {
		if c := comm(t, p.PID, ts); strings.HasPrefix(c, "iou-") {
			t.Errorf("io_uring thread %d (%s) left after the read completed", ts, c)
		}
	}
}

func TestUringReadErrors(t *testing.T) {
	p := start(t)
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A file that reads without blocking gives no worker in D.
	for _, cmd := range []string{"uring-read", "uring-read a b", "uring-read /nonexistent/file", "uring-read " + plain} {
		if _, err := p.Do(cmd); !isReplyError(err) {
			t.Errorf("%q: err=%v, want an err reply", cmd, err)
		}
	}
}

func TestCompute(t *testing.T) {
	p := start(t)
	before := tids(t, p)
	r := do(t, p, "compute")
	tid := mustInt(t, r, "tid")
	if slices.Contains(before, tid) {
		t.Errorf("compute runs on thread %d, which existed before: %v", tid, before)
	}
	if _, err := p.Do("compute"); !isReplyError(err) {
		t.Errorf("second compute: err=%v, want an err reply", err)
	}
	// Watch it until it has used CPU time in user space (a tick or two):
	// all along it must run, never sleep, and never have been in a
	// syscall. /proc's syscall file says "running" for a thread on a CPU,
	// and for one preempted in user mode a negative number (no syscall).
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := stat(t, p.PID, tid)
		sc := inspect(t, p.PID, tid).syscall
		if st[0] != "R" {
			t.Fatalf("compute thread %d in state %s, want R", tid, st[0])
		}
		if f := strings.Fields(sc); len(f) == 0 || f[0] != "running" && !strings.HasPrefix(f[0], "-") {
			t.Fatalf("compute thread %d: syscall file %q, want running or no syscall", tid, sc)
		}
		if utime, _ := strconv.Atoi(st[11]); utime > 0 {
			t.Logf("compute thread %d: state %s, utime %d ticks, syscall file %q", tid, st[0], utime, sc)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("compute thread %d used no user time in 5s", tid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A syscall that sleeps counts a voluntary switch; a spinner has none.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", p.PID, tid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "\nvoluntary_ctxt_switches:\t0\n") {
		t.Errorf("compute thread %d switched voluntarily:\n%s", tid, status)
	}

	stop := do(t, p, "compute-stop")
	if got := mustInt(t, stop, "tid"); got != tid {
		t.Errorf("compute-stop names thread %d, want %d", got, tid)
	}
	if n := mustInt(t, stop, "spins"); n < 1 {
		t.Errorf("compute thread spun %d times", n)
	}
	waitThreadGone(t, p.PID, tid)
	if _, err := p.Do("compute-stop"); !isReplyError(err) {
		t.Errorf("compute-stop with nothing computing: err=%v, want an err reply", err)
	}
}

// sendfile-stalled leaves a thread asleep in S for room in a socket whose
// peer reads nothing; sendfile-drain reads it all and the sendfile
// returns with the whole file sent.
func TestSendfileStalled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big")
	const size = 4 << 20
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ kind, wchan string }{
		{"tcp", "wait_woken"}, // in sk_stream_wait_memory
		{"unix", "sock_alloc_send_pskb"},
	} {
		t.Run(c.kind, func(t *testing.T) {
			p := start(t)
			r := do(t, p, "sendfile-stalled "+c.kind+" "+path)
			tid, fd := mustInt(t, r, "tid"), mustInt(t, r, "fd")
			th := inspect(t, p.PID, tid)
			if !workload.SleepsIn(th.syscall, unix.SYS_SENDFILE, fd) || th.state != "S" || th.wchan != c.wchan {
				t.Errorf("sender %d: state %s, wchan %s, syscall %q; want S in sendfile to fd %d, wchan %s",
					tid, th.state, th.wchan, th.syscall, fd, c.wchan)
			}
			if _, err := p.Do("sendfile-stalled " + c.kind + " " + path); !isReplyError(err) {
				t.Errorf("second sendfile-stalled while the first waits: err=%v, want an err reply", err)
			}
			d := do(t, p, "sendfile-drain")
			if ret := mustInt(t, d, "ret"); ret != size {
				t.Errorf("sendfile sent %d bytes, want %d", ret, size)
			}
			waitThreadGone(t, p.PID, tid)
		})
	}
}

func TestSendfileStalledErrors(t *testing.T) {
	p := start(t)
	small := filepath.Join(t.TempDir(), "small")
	if err := os.WriteFile(small, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"sendfile-stalled udp " + small, "sendfile-stalled tcp " + small,
		"sendfile-stalled tcp /nonexistent", "sendfile-drain"} {
		if _, err := p.Do(cmd); !isReplyError(err) {
			t.Errorf("%q: err=%v, want an err reply", cmd, err)
		}
	}
}
