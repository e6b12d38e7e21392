package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/cgrouptest"
	"github.com/stallmon/stallmon/internal/privtest"
	"github.com/stallmon/stallmon/sink"
)

// notifySocket is a stand-in for systemd's end of the protocol: a
// datagram socket with SO_PASSCRED, as systemd binds /run/systemd/notify,
// so each message arrives with the credentials the kernel vouches for.
type notifySocket struct {
	addr string
	fd   int
}

type datagram struct {
	msg  string
	cred *unix.Ucred
}

func listenNotify(t *testing.T, addr string) *notifySocket {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: addr}); err != nil {
		t.Fatalf("binding %s: %v", addr, err)
	}
	return &notifySocket{addr: addr, fd: fd}
}

// tempSocket is a path socket in the test's own directory.
func tempSocket(t *testing.T) *notifySocket {
	return listenNotify(t, filepath.Join(t.TempDir(), "notify"))
}

// recv waits up to timeout for a datagram; ok is false if none came.
func (s *notifySocket) recv(t *testing.T, timeout time.Duration) (datagram, bool) {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for {
		n, err := unix.Poll(fds, int(max(time.Until(deadline), 0).Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return datagram{}, false
		}
		break
	}
	buf := make([]byte, 8192)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	n, oobn, _, _, err := unix.Recvmsg(s.fd, buf, oob, unix.MSG_DONTWAIT)
	if err != nil {
		t.Fatal(err)
	}
	d := datagram{msg: string(buf[:n])}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if c, err := unix.ParseUnixCredentials(&m); err == nil {
			d.cred = c
		}
	}
	if d.cred == nil {
		t.Fatalf("datagram %q came without credentials", d.msg)
	}
	return d, true
}

// next wants a datagram now: the send is synchronous, so it is queued
// by the time Apply returns.
func (s *notifySocket) next(t *testing.T) datagram {
	t.Helper()
	d, ok := s.recv(t, time.Second)
	if !ok {
		t.Fatal("no datagram on the notify socket")
	}
	return d
}

// none wants the queue empty right now.
func (s *notifySocket) none(t *testing.T, after string) {
	t.Helper()
	if d, ok := s.recv(t, 0); ok {
		t.Fatalf("after %s: unexpected datagram %q (pid %d)", after, d.msg, d.cred.Pid)
	}
}

// startSleeper is the service: a real process whose pid the notification
// names.
func startSleeper(t *testing.T, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func newSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func apply(t *testing.T, s *Sink, v sink.Verdict) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.Apply(ctx, v)
}

func mustApply(t *testing.T, s *Sink, v sink.Verdict) {
	t.Helper()
	if err := apply(t, s, v); err != nil {
		t.Fatalf("Apply(%v): %v", v.State, err)
	}
}

func stalled(pid, tid int, comm, syscall string, elapsed time.Duration) sink.Verdict {
	return sink.Verdict{State: sink.Stalled, At: time.Now(), PID: pid,
		Stall: &sink.Stall{PID: pid, TID: tid, Comm: comm, Syscall: syscall, Elapsed: elapsed, Reason: "over_budget"}}
}

// wantTrigger checks one datagram: the STATUS line, then WATCHDOG=trigger,
// sent as pid with our own uid and gid.
func wantTrigger(t *testing.T, d datagram, pid int, status string) {
	t.Helper()
	if want := "STATUS=" + status + "\nWATCHDOG=trigger"; d.msg != want {
		t.Errorf("datagram %q, want %q", d.msg, want)
	}
	if int(d.cred.Pid) != pid || int(d.cred.Uid) != os.Getuid() || int(d.cred.Gid) != os.Getgid() {
		t.Errorf("credentials pid %d uid %d gid %d, want pid %d uid %d gid %d",
			d.cred.Pid, d.cred.Uid, d.cred.Gid, pid, os.Getuid(), os.Getgid())
	}
}

// The stall is reported once, on the transition, with the service's pid
// in the credentials; it is reported again only after the service was
// seen alive and stalled anew.
func TestTriggerOncePerStall(t *testing.T) {
	privtest.Require(t)
	sock := tempSocket(t)
	svc := startSleeper(t, exec.Command("sleep", "300"))
	pid := svc.Process.Pid
	s := newSink(t, Config{Socket: sock.addr, Target: Target{PID: pid}})

	steps := []struct {
		v    sink.Verdict
		want string // the STATUS text expected, "" for no datagram
	}{
		{sink.Verdict{State: sink.Alive, PID: pid}, ""},
		{stalled(pid, pid+1, "worker", "read", 1500*time.Millisecond),
			fmt.Sprintf("stallmon: thread %d (worker) of pid %d stuck in read for 1.5s (over_budget)", pid+1, pid)},
		{stalled(pid, pid+1, "worker", "read", 2*time.Second), ""},
		{sink.Verdict{State: sink.Blind}, ""},
		{stalled(pid, pid+1, "worker", "read", 3*time.Second), ""},
		{sink.Verdict{State: sink.Alive, PID: pid}, ""},
		{sink.Verdict{State: sink.Alive, PID: pid}, ""},
		// The verdict's pid may be unset: the target's stands in.
		{stalled(0, pid, "sleep", "none", 700*time.Millisecond),
			fmt.Sprintf("stallmon: thread %d (sleep) of pid 0 stuck in the kernel outside any syscall for 0.7s (over_budget)", pid)},
		{stalled(pid, pid, "sleep", "fsync", 5*time.Second), ""},
		{sink.Verdict{State: sink.Fenced, PID: pid, Final: true}, ""},
		{sink.Verdict{State: sink.Leaving, Final: true}, ""},
	}
	sent := 0
	for i, st := range steps {
		mustApply(t, s, st.v)
		if st.want == "" {
			sock.none(t, fmt.Sprintf("step %d (%v)", i, st.v.State))
			continue
		}
		wantTrigger(t, sock.next(t), pid, st.want)
		sock.none(t, fmt.Sprintf("step %d (%v)", i, st.v.State))
		sent++
	}
	if sent != 2 {
		t.Fatalf("%d datagrams, want 2", sent)
	}
}

// A service already gone cannot be named: the kernel refuses the
// credentials of a pid that does not exist, and the error goes back to
// the hub, which retries; the stall is not marked reported.
func TestTriggerDeadPID(t *testing.T) {
	privtest.Require(t)
	sock := tempSocket(t)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	pid := gone.Process.Pid
	s := newSink(t, Config{Socket: sock.addr, Target: Target{PID: pid}})
	for try := range 2 {
		err := apply(t, s, stalled(pid, pid, "true", "read", time.Second))
		if !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("try %d: Apply for the dead pid %d returned %v, want ESRCH", try, pid, err)
		}
		t.Logf("try %d: %v", try, err)
		sock.none(t, "the failed send")
	}
}

// $NOTIFY_SOCKET may name a socket in the abstract namespace ("@...").
func TestTriggerAbstractSocket(t *testing.T) {
	privtest.Require(t)
	sock := listenNotify(t, fmt.Sprintf("@stallmon-sdnotify-test-%d", os.Getpid()))
	svc := startSleeper(t, exec.Command("sleep", "300"))
	pid := svc.Process.Pid
	s := newSink(t, Config{Socket: sock.addr, Target: Target{PID: pid}})
	mustApply(t, s, stalled(pid, pid, "sleep", "read", time.Second))
	wantTrigger(t, sock.next(t), pid,
		fmt.Sprintf("stallmon: thread %d (sleep) of pid %d stuck in read for 1.0s (over_budget)", pid, pid))
}

// For a cgroup target the pid is read from the cgroup at send time: the
// process whose parent is outside the cgroup (the one systemd started),
// not its child, even when the child comes first in cgroup.procs.
func TestTriggerCgroup(t *testing.T) {
	privtest.Require(t)
	cg := cgrouptest.New(t)
	sock := tempSocket(t)
	main := startSleeper(t, exec.Command("sh", "-c", "sleep 300 & wait"))
	child := 0
	deadline := time.Now().Add(5 * time.Second)
	for child == 0 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", main.Process.Pid, main.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			if child, err = strconv.Atoi(f[0]); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shell's child never came")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) })
	// The child joins first, so it is listed first.
	for _, p := range []int{child, main.Process.Pid} {
		if err := cg.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	pids, err := cg.Procs()
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 2 || pids[0] != child {
		t.Fatalf("cgroup.procs %v, want the child %d first, then the shell %d", pids, child, main.Process.Pid)
	}
	s := newSink(t, Config{Socket: sock.addr, Target: Target{Cgroup: cg.Path}})
	mustApply(t, s, stalled(0, 42, "sleep", "read", time.Second))
	wantTrigger(t, sock.next(t), main.Process.Pid,
		"stallmon: thread 42 (sleep) of pid 0 stuck in read for 1.0s (over_budget)")
}

// Under stallmon run, stallmon is the unit's main process and sends as
// itself, whatever pid the verdict names (its child). No privilege is
// needed for one's own credentials.
func TestTriggerSelf(t *testing.T) {
	sock := tempSocket(t)
	s := newSink(t, Config{Socket: sock.addr})
	mustApply(t, s, stalled(os.Getpid()+1, os.Getpid()+1, "redis-server", "write", 2*time.Second))
	d := sock.next(t)
	wantTrigger(t, d, os.Getpid(), fmt.Sprintf("stallmon: thread %d (redis-server) of pid %d stuck in write for 2.0s (over_budget)",
		os.Getpid()+1, os.Getpid()+1))
}

// A thread names itself: a newline in its comm must not add a field to
// the datagram.
func TestTriggerMessageOneLine(t *testing.T) {
	msg := triggerMessage(stalled(7, 8, "x\nMAINPID=1", "read", time.Second))
	lines := strings.Split(msg, "\n")
	if len(lines) != 2 || lines[1] != "WATCHDOG=trigger" || !strings.Contains(lines[0], "(x?MAINPID=1)") {
		t.Fatalf("message %q: want STATUS= with the newline replaced, then WATCHDOG=trigger", msg)
	}
	long := triggerMessage(stalled(7, 8, strings.Repeat("é", 400), "read", time.Second))
	if st, _, _ := strings.Cut(long, "\n"); len(st) > len("STATUS=")+maxStatus {
		t.Fatalf("STATUS line of %d bytes, want at most %d", len(st), len("STATUS=")+maxStatus)
	}
}

// A manager that does not read its socket must not hang Apply: the send
// gives up when ctx ends.
func TestTriggerHonoursContext(t *testing.T) {
	sock := tempSocket(t)
	// Fill the receiver's queue (net.unix.max_dgram_qlen datagrams) from
	// a non-blocking socket until the kernel says it is full.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	queued := 0
	for {
		err := unix.Sendto(fd, []byte("x"), 0, &unix.SockaddrUnix{Name: sock.addr})
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if queued++; queued > 100000 {
			t.Fatal("the notify socket's queue never filled")
		}
	}
	s := newSink(t, Config{Socket: sock.addr})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Apply(ctx, stalled(1, 1, "x", "read", time.Second))
	took := time.Since(start)
	t.Logf("queue full after %d datagrams; Apply returned after %v: %v", queued, took.Round(time.Millisecond), err)
	if err == nil {
		t.Fatal("Apply succeeded on a full socket")
	}
	if took > time.Second {
		t.Fatalf("Apply took %v with a 200ms context", took)
	}
	// Once the manager reads again, the retry goes through.
	for range queued {
		sock.next(t)
	}
	mustApply(t, s, stalled(1, 1, "x", "read", time.Second))
	if d := sock.next(t); !strings.HasSuffix(d.msg, "\nWATCHDOG=trigger") {
		t.Fatalf("after the queue drained: %q", d.msg)
	}
}

// With WatchdogSec= on stallmon's own unit, stallmon pings WATCHDOG=1 as
// itself while it sees its target, and stops when it is blind or leaving.
func TestKeepAlive(t *testing.T) {
	own := tempSocket(t)
	svc := tempSocket(t)
	k := &KeepAlive{Socket: own.addr}
	s := newSink(t, Config{Socket: svc.addr, KeepAlive: k})
	for _, st := range []sink.State{sink.Alive, sink.Stalled, sink.Alive, sink.Fenced} {
		v := sink.Verdict{State: st}
		if st == sink.Stalled {
			v = stalled(1, 1, "x", "read", time.Second)
		}
		mustApply(t, s, v)
		d := own.next(t)
		if d.msg != "WATCHDOG=1" || int(d.cred.Pid) != os.Getpid() {
			t.Fatalf("%v: ping %q as pid %d, want WATCHDOG=1 as %d", st, d.msg, d.cred.Pid, os.Getpid())
		}
		own.none(t, st.String())
	}
	svc.next(t) // the stall's trigger
	for _, st := range []sink.State{sink.Blind, sink.Leaving} {
		mustApply(t, s, sink.Verdict{State: st})
		own.none(t, st.String())
	}
	// Rate: at most one ping per Every.
	k.Every, k.last = time.Hour, time.Time{}
	mustApply(t, s, sink.Verdict{State: sink.Alive})
	own.next(t)
	mustApply(t, s, sink.Verdict{State: sink.Alive})
	own.none(t, "a second Alive within Every")
	svc.none(t, "the keep-alive pings")
}

func TestKeepAliveFromEnv(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "@sock")
	for _, c := range []struct {
		usec, pid string
		want      time.Duration // 0: no keep-alive
		err       bool
	}{
		{"", "", 0, false},
		{"4000000", "", time.Second, false},
		{"4000000", fmt.Sprint(os.Getpid()), time.Second, false},
		{"4000000", fmt.Sprint(os.Getpid() + 1), 0, false},
		{"0", "", 0, true},
		{"soon", "", 0, true},
	} {
		t.Setenv("WATCHDOG_USEC", c.usec)
		t.Setenv("WATCHDOG_PID", c.pid)
		k, err := KeepAliveFromEnv()
		switch {
		case c.err != (err != nil):
			t.Errorf("USEC=%q PID=%q: err %v", c.usec, c.pid, err)
		case c.want == 0 && k != nil:
			t.Errorf("USEC=%q PID=%q: keep-alive %+v, want none", c.usec, c.pid, k)
		case c.want != 0 && (k == nil || k.Every != c.want || k.Socket != "@sock"):
			t.Errorf("USEC=%q PID=%q: keep-alive %+v, want every %v on @sock", c.usec, c.pid, k, c.want)
		}
	}
}

func TestCheckSocket(t *testing.T) {
	for addr, ok := range map[string]bool{
		"/run/systemd/notify":               true,
		"@/org/freedesktop/systemd1/notify": true,
		"run/systemd/notify":                false,
		"":                                  false,
		"@":                                 false,
		"/" + strings.Repeat("a", 106):      true,
		"/" + strings.Repeat("a", 107):      false,
		"@" + strings.Repeat("a", 107):      true,
		"@" + strings.Repeat("a", 108):      false,
	} {
		if err := CheckSocket(addr); (err == nil) != ok {
			t.Errorf("CheckSocket(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}
