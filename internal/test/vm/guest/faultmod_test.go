package guest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/test/vm/faultmod"
)

const spinSeconds = 2

// A thread in FAULTMOD_SLEEP_D is in D inside ioctl(2), SIGKILL does not
// end it, and FAULTMOD_RELEASE does: the kill then takes effect.
func TestSleepDIgnoresSIGKILL(t *testing.T) {
	requireVM(t)
	d := openDevice(t)
	c := startChild(t, "sleep-d")
	c.enter(t)

	stat := waitFor(t, c, 10*time.Second, func(s procStat) bool { return s.state == 'D' })
	if want := syscallLine(c.fd, faultmod.IoctlSleepD); !strings.HasPrefix(stat.syscall, want) {
		t.Fatalf("child in D with /proc/PID/syscall %q, want prefix %q", stat.syscall, want)
	}

	if err := unix.PidfdSendSignal(c.pidfd, unix.SIGKILL, nil, 0); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	if c.exitedWithin(t, time.Second) {
		t.Fatal("SIGKILL ended a thread in FAULTMOD_SLEEP_D: it was not uninterruptible")
	}
	if s := readStat(t, c.pid); s.state != 'D' {
		t.Fatalf("1s after SIGKILL the child is in %c, want still D", s.state)
	}

	n, err := d.Release()
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 {
		t.Errorf("FAULTMOD_RELEASE saw %d sleepers, want >= 1", n)
	}
	if !c.exitedWithin(t, 10*time.Second) {
		t.Fatalf("child still alive 10s after FAULTMOD_RELEASE; state %c", readStat(t, c.pid).state)
	}
	err = c.cmd.Wait()
	if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL", err)
	}
}

// A thread in FAULTMOD_SLEEP_KILLABLE is in D inside ioctl(2) as one in
// FAULTMOD_SLEEP_D is, but SIGKILL ends it: the D that stallmon's kill
// does end (TestKillableSleepIsKilled).
func TestSleepKillableEndsOnSIGKILL(t *testing.T) {
	requireVM(t)
	openDevice(t) // its cleanup releases a sleeper left behind by a failure
	c := startChild(t, "sleep-killable")
	c.enter(t)

	stat := waitFor(t, c, 10*time.Second, func(s procStat) bool { return s.state == 'D' })
	if want := syscallLine(c.fd, faultmod.IoctlSleepKillable); !strings.HasPrefix(stat.syscall, want) {
		t.Fatalf("child in D with /proc/PID/syscall %q, want prefix %q", stat.syscall, want)
	}
	if err := unix.PidfdSendSignal(c.pidfd, unix.SIGKILL, nil, 0); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	if !c.exitedWithin(t, 10*time.Second) {
		t.Fatalf("SIGKILL did not end a child in FAULTMOD_SLEEP_KILLABLE within 10s; state %c", readStat(t, c.pid).state)
	}
	err := c.cmd.Wait()
	if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL", err)
	}
}

// A thread in FAULTMOD_SPIN stays runnable in the kernel: state R, its
// system time grows while its user time does not, and the ioctl returns
// after the requested seconds.
func TestSpinStaysOnCPU(t *testing.T) {
	requireVM(t)
	openDevice(t) // its cleanup releases a spinner left behind by a failure
	c := startChild(t, "spin")
	c.enter(t)

	// The kernel only names the syscall of a task that is off the CPU:
	// for one running in the kernel, /proc/PID/syscall says "running".
	// State R alone may be caught on the way into the ioctl, or while the
	// spinner waits for a CPU another task holds: wait for both.
	first := waitFor(t, c, 10*time.Second, func(s procStat) bool { return s.state == 'R' && s.syscall == "running" })
	const window = 50 // clock ticks of 10 ms
	last := waitFor(t, c, 5*time.Second, func(s procStat) bool { return s.stime-first.stime >= window })
	if last.state != 'R' {
		t.Errorf("spinner left R: %c", last.state)
	}
	if du := last.utime - first.utime; du > window/5 {
		t.Errorf("spinner gained %d ticks of user time against %d of system time: not spinning in the kernel",
			du, last.stime-first.stime)
	}

	var took time.Duration
	if line := c.readLine(t); !scanDuration(line, &took) || took < spinSeconds*time.Second {
		t.Fatalf("spinner said %q, want took= at least %ds", line, spinSeconds)
	}
	c.in.Close()
	if !c.exitedWithin(t, 10*time.Second) {
		t.Fatal("spinner still running 10s after its spin and its stdin ended")
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("spinner: %v", err)
	}
}

// Every ioctl is there; FAULTMOD_OOPS_MUTEX and FAULTMOD_OOPS are probed
// through the confirmation they demand, since a real call oopses the guest.
func TestIoctlsExist(t *testing.T) {
	requireVM(t)
	d := openDevice(t)
	if err := d.Lock(); err != nil {
		t.Errorf("FAULTMOD_LOCK: %v", err)
	}
	if _, err := d.Ioctl(faultmod.IoctlOopsMutex, 0); !errors.Is(err, unix.EINVAL) {
		t.Errorf("FAULTMOD_OOPS_MUTEX without confirmation: %v, want EINVAL", err)
	}
	if _, err := d.Ioctl(faultmod.IoctlOops, 0); !errors.Is(err, unix.EINVAL) {
		t.Errorf("FAULTMOD_OOPS without confirmation: %v, want EINVAL", err)
	}
	if err := d.Spin(faultmod.SpinMaxSeconds + 1); !errors.Is(err, unix.EINVAL) {
		t.Errorf("FAULTMOD_SPIN over the maximum: %v, want EINVAL", err)
	}
	if err := d.Spin(0); err != nil {
		t.Errorf("FAULTMOD_SPIN of 0s: %v", err)
	}
	if _, err := d.Release(); err != nil {
		t.Errorf("FAULTMOD_RELEASE: %v", err)
	}
	if _, err := d.Ioctl(faultmod.IocMagic<<8|99, 0); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("unknown ioctl: %v, want ENOTTY", err)
	}
}

// Before any oops the device's poll hook takes and drops the mutex and
// reports nothing: poll(2) with timeout 0 returns 0 at once, and with no
// timeout the caller sleeps interruptibly, as an idle event loop does,
// so SIGKILL ends it. The oops scenario then turns this same call into
// an uninterruptible hang (TestOops).
func TestPollIdleSleepsInterruptibly(t *testing.T) {
	requireVM(t)
	d := openDevice(t)
	start := time.Now()
	n, err := d.Poll(0)
	if took := time.Since(start); err != nil || n != 0 || took > time.Second {
		t.Fatalf("poll with timeout 0 = %d, %v after %v; want 0, nil at once", n, err, took)
	}

	c := startChild(t, "poll")
	c.enter(t)
	// ppoll: x/sys/unix's Poll, on every architecture.
	want := fmt.Sprintf("%d ", unix.SYS_PPOLL)
	// Both at once: stat and syscall are two reads, and a thread read
	// in R on its way into ppoll can be asleep in it by the second.
	waitFor(t, c, 10*time.Second, func(s procStat) bool { return strings.HasPrefix(s.syscall, want) && s.state == 'S' })
	if err := unix.PidfdSendSignal(c.pidfd, unix.SIGKILL, nil, 0); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	if !c.exitedWithin(t, 10*time.Second) {
		t.Fatalf("SIGKILL did not end a child in poll(2) within 10s; state %c", readStat(t, c.pid).state)
	}
	err = c.cmd.Wait()
	if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL", err)
	}
}

// openDevice opens /dev/faultmod for the test; on the way out it releases
// whatever a failed test left asleep or spinning.
func openDevice(t *testing.T) *faultmod.Device {
	t.Helper()
	d, err := faultmod.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Release()
		d.Close()
	})
	return d
}

type child struct {
	cmd   *exec.Cmd
	pid   int
	pidfd int
	fd    int           // the child's /dev/faultmod descriptor
	out   *bufio.Reader // the child's stdout: "fd=N", then "took=NS" if the ioctl returned
	outF  *os.File
	in    io.WriteCloser // a line on it sends the child into the ioctl
}

// startChild re-executes this binary to make ioctl what; it returns once
// the child waits to enter the ioctl (see enter).
func startChild(t *testing.T, what string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+what)
	cmd.Stdout = w
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		t.Fatalf("starting child: %v", err)
	}
	pidfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("pidfd_open: %v", err)
	}
	c := &child{cmd: cmd, pid: cmd.Process.Pid, pidfd: pidfd, out: bufio.NewReader(r), outF: r, in: in}
	t.Cleanup(func() {
		cmd.Process.Kill()
		unix.Close(pidfd)
	})

	line := c.readLine(t)
	if _, err := fmt.Sscanf(line, "fd=%d", &c.fd); err != nil {
		t.Fatalf("child said %q: %v", line, err)
	}
	return c
}

// enter sends the child into its ioctl and returns the time, a few
// microseconds before the syscall starts.
func (c *child) enter(t *testing.T) time.Time {
	t.Helper()
	at := time.Now()
	if _, err := io.WriteString(c.in, "go\n"); err != nil {
		t.Fatalf("releasing the child into its ioctl: %v", err)
	}
	return at
}

func (c *child) readLine(t *testing.T) string {
	t.Helper()
	c.outF.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := c.out.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the child's output: %v (got %q)", err, line)
	}
	return strings.TrimSpace(line)
}

// exitedWithin polls the pidfd, which becomes readable when the whole
// process has exited.
func (c *child) exitedWithin(t *testing.T, d time.Duration) bool {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(c.pidfd), Events: unix.POLLIN}}
	deadline := time.Now().Add(d)
	for {
		n, err := unix.Poll(fds, int(time.Until(deadline).Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("polling pidfd: %v", err)
		}
		return n > 0
	}
}

type procStat struct {
	state        byte
	utime, stime uint64 // clock ticks
	syscall      string // /proc/PID/syscall, trimmed
}

// waitFor polls the child's main thread until ok: the kernel has no event
// for "entered state X", so polling /proc is the only way to see it.
func waitFor(t *testing.T, c *child, d time.Duration, ok func(procStat) bool) procStat {
	t.Helper()
	return waitForPID(t, c.pid, d, ok)
}

func waitForPID(t *testing.T, pid int, d time.Duration, ok func(procStat) bool) procStat {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := readStat(t, pid)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d never reached the wanted state in %v: last %+v", pid, d, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readStat reads the leader thread, where the child's locked main
// goroutine makes its ioctl.
func readStat(t *testing.T, pid int) procStat {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/task/%d/", pid, pid)
	b, err := os.ReadFile(dir + "stat")
	if err != nil {
		t.Fatalf("reading stat: %v", err)
	}
	// comm may hold spaces: the fields that follow start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		t.Fatalf("short stat line %q", b)
	}
	var s procStat
	s.state = f[0][0]
	// Fields 14 and 15 of proc(5), counted from the state as field 3.
	if s.utime, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		t.Fatalf("utime in %q: %v", b, err)
	}
	if s.stime, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		t.Fatalf("stime in %q: %v", b, err)
	}
	sc, err := os.ReadFile(dir + "syscall")
	if err != nil {
		t.Fatalf("reading syscall: %v", err)
	}
	s.syscall = strings.TrimSpace(string(sc))
	return s
}

func scanDuration(line string, d *time.Duration) bool {
	ns, err := strconv.ParseInt(strings.TrimPrefix(line, "took="), 10, 64)
	*d = time.Duration(ns)
	return err == nil && strings.HasPrefix(line, "took=")
}

// syscallLine is how /proc/PID/syscall starts for ioctl(fd, cmd, ...).
func syscallLine(fd int, cmd uintptr) string {
	return fmt.Sprintf("%d %#x %#x ", unix.SYS_IOCTL, fd, cmd)
}
