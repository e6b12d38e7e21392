package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/sink"
	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/testutil/sdnotifytest"
)

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
		Stall: &sink.Stall{PID: pid, TID: tid, Comm: comm, Syscall: syscall, Elapsed: elapsed, Reason: "over_budget", Kills: true}}
}

// wantTrigger checks one datagram: the STATUS line, then WATCHDOG=trigger,
// sent as pid with our own uid and gid.
func wantTrigger(t *testing.T, d sdnotifytest.Datagram, pid int, status string) {
	t.Helper()
	if want := "STATUS=" + status + "\nWATCHDOG=trigger"; d.Msg != want {
		t.Errorf("datagram %q, want %q", d.Msg, want)
	}
	if int(d.Cred.Pid) != pid || int(d.Cred.Uid) != os.Getuid() || int(d.Cred.Gid) != os.Getgid() {
		t.Errorf("credentials pid %d uid %d gid %d, want pid %d uid %d gid %d",
			d.Cred.Pid, d.Cred.Uid, d.Cred.Gid, pid, os.Getuid(), os.Getgid())
	}
}

// The stall is reported once, on the transition, with the service's pid
// in the credentials; it is reported again only after the service was
// seen alive and stalled anew.
func TestTriggerOncePerStall(t *testing.T) {
	privtest.Require(t)
	sock := sdnotifytest.Temp(t)
	svc := startSleeper(t, exec.Command("sleep", "300"))
	pid := svc.Process.Pid
	s := newSink(t, Config{Socket: sock.Addr, Target: Target{PID: pid}})

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
			sock.None(t, fmt.Sprintf("step %d (%v)", i, st.v.State))
			continue
		}
		wantTrigger(t, sock.Next(t, time.Second), pid, st.want)
		sock.None(t, fmt.Sprintf("step %d (%v)", i, st.v.State))
		sent++
	}
	if sent != 2 {
		t.Fatalf("%d datagrams, want 2", sent)
	}
}

// The agent announces the stall it kills for after it fenced the gate,
// so a Fenced verdict may come between two Stalled ones of one stall:
// still one trigger. The Final verdict ends the run, after it is applied;
// under stallmon run, a stall of the next run is a new one.
func TestTriggerKillAndNextRun(t *testing.T) {
	sock := sdnotifytest.Temp(t)
	s := newSink(t, Config{Socket: sock.Addr})
	pid := os.Getpid() + 1
	steps := []struct {
		v    sink.Verdict
		send bool
	}{
		{sink.Verdict{State: sink.Alive, PID: pid}, false},
		{stalled(pid, pid, "redis-server", "fsync", 600*time.Millisecond), true},
		{sink.Verdict{State: sink.Fenced, PID: pid}, false},
		{stalled(pid, pid, "redis-server", "fsync", 3*time.Second), false},
		{sink.Verdict{State: sink.Fenced, PID: pid, Final: true}, false},
		{stalled(pid+5, pid+5, "redis-server", "fsync", 600*time.Millisecond), true},
		{sink.Verdict{State: sink.Leaving, Final: true}, false},
		// A stop under --no-kill or --late-return=resume ends the run on
		// a final Stalled of the stall already triggered: no second
		// trigger. The run after it is a new one.
		{stalled(pid, pid, "redis-server", "fsync", 600*time.Millisecond), true},
		{func() sink.Verdict {
			v := stalled(pid, pid, "redis-server", "fsync", 900*time.Millisecond)
			v.Final = true
			return v
		}(), false},
		{stalled(pid+7, pid+7, "redis-server", "fsync", 600*time.Millisecond), true},
		// A final Stalled that is the first word of its stall (the
		// stop's last look declared it) does trigger, once.
		{sink.Verdict{State: sink.Alive, PID: pid}, false},
		{func() sink.Verdict {
			v := stalled(pid, pid, "redis-server", "fsync", 900*time.Millisecond)
			v.Final = true
			return v
		}(), true},
	}
	for i, st := range steps {
		mustApply(t, s, st.v)
		if st.send {
			if d := sock.Next(t, time.Second); !strings.HasSuffix(d.Msg, "\nWATCHDOG=trigger") {
				t.Fatalf("step %d: %q", i, d.Msg)
			}
		}
		sock.None(t, fmt.Sprintf("step %d (%v final=%v)", i, st.v.State, st.v.Final))
	}
}

// A service already gone cannot be named: the kernel refuses the
// credentials of a pid that does not exist, and the error goes back to
// the hub, which retries; the stall is not marked reported.
func TestTriggerDeadPID(t *testing.T) {
	privtest.Require(t)
	sock := sdnotifytest.Temp(t)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	pid := gone.Process.Pid
	s := newSink(t, Config{Socket: sock.Addr, Target: Target{PID: pid}})
	for try := range 2 {
		err := apply(t, s, stalled(pid, pid, "true", "read", time.Second))
		if !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("try %d: Apply for the dead pid %d returned %v, want ESRCH", try, pid, err)
		}
		t.Logf("try %d: %v", try, err)
		sock.None(t, "the failed send")
	}
}

// $NOTIFY_SOCKET may name a socket in the abstract namespace ("@...").
func TestTriggerAbstractSocket(t *testing.T) {
	privtest.Require(t)
	sock := sdnotifytest.Listen(t, fmt.Sprintf("@stallmon-sdnotify-test-%d", os.Getpid()))
	svc := startSleeper(t, exec.Command("sleep", "300"))
	pid := svc.Process.Pid
	s := newSink(t, Config{Socket: sock.Addr, Target: Target{PID: pid}})
	mustApply(t, s, stalled(pid, pid, "sleep", "read", time.Second))
	wantTrigger(t, sock.Next(t, time.Second), pid,
		fmt.Sprintf("stallmon: thread %d (sleep) of pid %d stuck in read for 1.0s (over_budget)", pid, pid))
}

// For a cgroup target the pid is read from the cgroup at send time: the
// process whose parent is outside the cgroup (the one systemd started),
// not its child, even when the child comes first in cgroup.procs.
func TestTriggerCgroup(t *testing.T) {
	privtest.Require(t)
	cg := cgrouptest.New(t)
	sock := sdnotifytest.Temp(t)
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
	t.Cleanup(func() {
		// Killed while the shell waits for it, so that the shell reaps
		// it: an orphan would wait for init to reap it, and its cgroup
		// cannot be removed until then.
		syscall.Kill(child, syscall.SIGKILL)
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", child)); err != nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("the shell did not reap its child %d", child)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
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
	s := newSink(t, Config{Socket: sock.Addr, Target: Target{Cgroup: cg.Path}})
	mustApply(t, s, stalled(0, 42, "sleep", "read", time.Second))
	wantTrigger(t, sock.Next(t, time.Second), main.Process.Pid,
		"stallmon: thread 42 (sleep) of pid 0 stuck in read for 1.0s (over_budget)")
}

// Under stallmon run, stallmon is the unit's main process and sends as
// itself, whatever pid the verdict names (its child). No privilege is
// needed for one's own credentials.
func TestTriggerSelf(t *testing.T) {
	sock := sdnotifytest.Temp(t)
	s := newSink(t, Config{Socket: sock.Addr})
	mustApply(t, s, stalled(os.Getpid()+1, os.Getpid()+1, "redis-server", "write", 2*time.Second))
	d := sock.Next(t, time.Second)
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
	sock := sdnotifytest.Temp(t)
	// Fill the receiver's queue (net.unix.max_dgram_qlen datagrams) from
	// a non-blocking socket until the kernel says it is full.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	queued := 0
	for {
		err := unix.Sendto(fd, []byte("x"), 0, &unix.SockaddrUnix{Name: sock.Addr})
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
	s := newSink(t, Config{Socket: sock.Addr})
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
		sock.Next(t, time.Second)
	}
	mustApply(t, s, stalled(1, 1, "x", "read", time.Second))
	if d := sock.Next(t, time.Second); !strings.HasSuffix(d.Msg, "\nWATCHDOG=trigger") {
		t.Fatalf("after the queue drained: %q", d.Msg)
	}
}

// With WatchdogSec= on stallmon's own unit, stallmon pings WATCHDOG=1 as
// itself while it sees its target, and stops when it is blind or leaving.
func TestKeepAlive(t *testing.T) {
	own := sdnotifytest.Temp(t)
	svc := sdnotifytest.Temp(t)
	k := &KeepAlive{Socket: own.Addr}
	s := newSink(t, Config{Socket: svc.Addr, KeepAlive: k})
	for _, st := range []sink.State{sink.Alive, sink.Stalled, sink.Alive, sink.Fenced} {
		v := sink.Verdict{State: st}
		if st == sink.Stalled {
			v = stalled(1, 1, "x", "read", time.Second)
		}
		mustApply(t, s, v)
		d := own.Next(t, time.Second)
		if d.Msg != "WATCHDOG=1" || int(d.Cred.Pid) != os.Getpid() {
			t.Fatalf("%v: ping %q as pid %d, want WATCHDOG=1 as %d", st, d.Msg, d.Cred.Pid, os.Getpid())
		}
		own.None(t, st.String())
	}
	svc.Next(t, time.Second) // the stall's trigger
	for _, st := range []sink.State{sink.Blind, sink.Leaving} {
		mustApply(t, s, sink.Verdict{State: st})
		own.None(t, st.String())
	}
	// Rate: at most one ping per Every.
	k.Every, k.last = time.Hour, time.Time{}
	mustApply(t, s, sink.Verdict{State: sink.Alive})
	own.Next(t, time.Second)
	mustApply(t, s, sink.Verdict{State: sink.Alive})
	own.None(t, "a second Alive within Every")
	svc.None(t, "the keep-alive pings")
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

// A stall whose rule never kills (stopped, traced, frozen, kill_after:
// never) sends nothing: the trigger would have systemd kill the service
// the rule spares. One whose rule kills does, in words that say what
// holds it: a stopped thread is not stuck in the kernel.
func TestTriggerOnlyForRulesThatKill(t *testing.T) {
	sock := sdnotifytest.Temp(t)
	s := newSink(t, Config{Socket: sock.Addr})
	pid := os.Getpid() + 1
	for _, reason := range []string{"stopped", "traced", "frozen", "over_budget"} {
		v := stalled(pid, pid, "svc", "none", 3*time.Second)
		v.Stall.Reason, v.Stall.Kills = reason, false
		mustApply(t, s, v)
		sock.None(t, reason+" under a rule that never kills")
	}
	for reason, what := range map[string]string{
		"stopped": "stopped", "traced": "held by a tracer", "frozen": "frozen by the cgroup freezer",
		"page_fault": "stuck in the kernel outside any syscall",
	} {
		mustApply(t, s, sink.Verdict{State: sink.Alive, PID: pid})
		v := stalled(pid, pid, "svc", "none", 3*time.Second)
		v.Stall.Reason = reason
		mustApply(t, s, v)
		want := fmt.Sprintf("stallmon: thread %d (svc) of pid %d %s for 3.0s (%s)", pid, pid, what, reason)
		if d := sock.Next(t, time.Second); d.Msg != "STATUS="+want+"\nWATCHDOG=trigger" {
			t.Errorf("%s: %q, want STATUS=%s", reason, d.Msg, want)
		}
	}
}
