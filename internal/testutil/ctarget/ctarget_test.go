package ctarget

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type task struct{ state, wchan, syscall string }

// inspect reads what /proc says about a thread; ok is false once it is gone.
func inspect(pid, tid int) (task, bool) {
	dir := fmt.Sprintf("/proc/%d/task/%d/", pid, tid)
	stat, err1 := os.ReadFile(dir + "stat")
	wchan, err2 := os.ReadFile(dir + "wchan")
	sc, err3 := os.ReadFile(dir + "syscall")
	if err1 != nil || err2 != nil || err3 != nil {
		return task{}, false
	}
	s := string(stat)
	rest := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return task{state: rest[0], wchan: string(wchan), syscall: strings.TrimSpace(string(sc))}, true
}

func TestIA32Wait(t *testing.T) {
	bin := Build(t, "ia32wait", "-m32", "-static")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	if f.Class != elf.ELFCLASS32 || f.Machine != elf.EM_386 {
		t.Errorf("%s is %v %v, want ELFCLASS32 EM_386", bin, f.Class, f.Machine)
	}
	f.Close()
	RequireIA32(t, bin)

	p := Start(t, bin)
	pid := p.Cmd.Process.Pid
	if got := p.Int(t, "pid"); got != pid {
		t.Errorf("ready pid=%d, want %d", got, pid)
	}
	// ia32 numbers: 3 is read (close on x86_64), 162 nanosleep (sync).
	for _, c := range []struct {
		key  string
		nr   int
		arg0 string
	}{
		{"read_tid", 3, "0x" + strconv.FormatInt(int64(p.Int(t, "pipe_fd")), 16)},
		{"nanosleep_tid", 162, ""},
	} {
		tid := p.Int(t, c.key)
		th, ok := inspect(pid, tid)
		if !ok {
			t.Fatalf("%s %d: gone", c.key, tid)
		}
		f := strings.Fields(th.syscall)
		if len(f) < 2 || f[0] != strconv.Itoa(c.nr) || c.arg0 != "" && f[1] != c.arg0 {
			t.Errorf("%s %d: syscall file %q, want ia32 syscall %d (first argument %q)", c.key, tid, th.syscall, c.nr, c.arg0)
		}
		if th.state != "S" {
			t.Errorf("%s %d: state %s, want S", c.key, tid, th.state)
		}
		t.Logf("%s %d: state %s, wchan %s, syscall %q", c.key, tid, th.state, th.wchan, th.syscall)
	}
	if err := p.Stdin.Close(); err != nil {
		t.Fatal(err)
	}
	p.Wait(t, 5*time.Second)
}

// The parent of a vfork or posix_spawn child that has not exec'd yet
// waits in D for as long as the child takes.
func TestSpawnWait(t *testing.T) {
	bin := Build(t, "spawnwait")
	for _, mode := range []string{"vfork", "posix_spawn"} {
		t.Run(mode, func(t *testing.T) {
			const seconds = 2
			start := time.Now()
			p := Start(t, bin, mode, strconv.Itoa(seconds))
			pid := p.Cmd.Process.Pid
			if p.Ready["mode"] != mode || p.Int(t, "pid") != pid {
				t.Errorf("ready line %v, want mode=%s pid=%d", p.Ready, mode, pid)
			}
			// The line comes right before the call: poll for D.
			var th task
			for {
				var ok bool
				th, ok = inspect(pid, pid)
				if !ok {
					t.Fatalf("parent %d gone before it was seen in D", pid)
				}
				// wchan is read after stat: "0" means the thread ran
				// in between, so read both again.
				if th.state == "D" && th.wchan != "0" {
					break
				}
				if time.Since(start) > seconds*time.Second {
					t.Fatalf("parent %d never in D within %ds: %+v", pid, seconds, th)
				}
				time.Sleep(time.Millisecond)
			}
			if !strings.Contains(th.wchan, "vfork") && !strings.Contains(th.wchan, "clone") {
				t.Errorf("parent %d in D with wchan %q, want a vfork wait", pid, th.wchan)
			}
			// Still there a moment later: the wait lasts as long as the
			// child does.
			time.Sleep(200 * time.Millisecond)
			if again, _ := inspect(pid, pid); again.state != "D" {
				t.Errorf("parent %d left D after 200ms: %+v", pid, again)
			}
			t.Logf("%s parent %d: state %s, wchan %s, syscall %q", mode, pid, th.state, th.wchan, th.syscall)
			p.Wait(t, seconds*time.Second+5*time.Second)
			if took := time.Since(start); took < seconds*time.Second-100*time.Millisecond {
				t.Errorf("%s took %v, want about %ds", mode, took, seconds)
			}
		})
	}
}

func TestSpawnWaitUsage(t *testing.T) {
	bin := Build(t, "spawnwait")
	err := exec.Command(bin, "fork", "1").Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("bad mode: %v, want exit status 2", err)
	}
}

// ioctlcall's protocol: ready with its fd, then a second thread's call
// and its result, here TCGETS on /dev/null, which is no terminal.
func TestIoctlCall(t *testing.T) {
	p := Start(t, Build(t, "ioctlcall"), os.DevNull, fmt.Sprintf("%#x", unix.TCGETS), "0")
	if p.Int(t, "fd") < 0 {
		t.Fatalf("ready line %v", p.Ready)
	}
	if _, err := fmt.Fprintln(p.Stdin, "go"); err != nil {
		t.Fatal(err)
	}
	if l := p.Next(t, 10*time.Second); l[""] != "calling" || l["tid"] == "" || l["tid"] == p.Ready["pid"] {
		t.Fatalf("first line after go: %v, want calling tid=T of a second thread", l)
	}
	if l := p.Next(t, 10*time.Second); l["ret"] != "-1" || l["errno"] != strconv.Itoa(int(unix.ENOTTY)) {
		t.Fatalf("second line %v, want returned ret=-1 errno=ENOTTY", l)
	}
	p.Stdin.Close()
	p.Wait(t, 10*time.Second)
}

// threadexit runs at once without arguments; with wait, after a line.
func TestThreadExit(t *testing.T) {
	bin := Build(t, "threadexit")
	if err := exec.Command(bin).Run(); err != nil {
		t.Fatalf("threadexit: %v", err)
	}
	p := Start(t, bin, "wait")
	if _, err := fmt.Fprintln(p.Stdin, "go"); err != nil {
		t.Fatal(err)
	}
	if l := p.Next(t, 10*time.Second); l[""] != "done" || l["tid"] == "" {
		t.Fatalf("after go: %v, want done tid=T", l)
	}
	p.Wait(t, 10*time.Second)
}

// seccompwait's mkdirat waits in S, outside the tracer's view, until the
// supervisor answers; the answer is what the caller gets.
func TestSeccompWait(t *testing.T) {
	bin := Build(t, "seccompwait")
	p := Start(t, bin)
	pid := p.Int(t, "pid")
	sup := TakeListener(t, pid, p.Int(t, "listener"))
	dir := t.TempDir() + "/held"
	if _, err := fmt.Fprintf(p.Stdin, "mkdir %s\n", dir); err != nil {
		t.Fatal(err)
	}
	n, err := sup.Recv(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if int(n.PID) != pid || n.Nr != unix.SYS_MKDIRAT {
		t.Errorf("held syscall %+v, want mkdirat (%d) of thread %d", n, unix.SYS_MKDIRAT, pid)
	}
	// Queued before the caller sleeps: wait for the sleep. The wchan
	// may carry a compiler suffix (seccomp_do_user_notification.isra.0).
	asleep := func(th task) bool {
		return th.state == "S" && strings.HasPrefix(th.syscall, strconv.Itoa(unix.SYS_MKDIRAT)+" ") &&
			strings.HasPrefix(th.wchan, "seccomp_do_user_notification")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		th, _ := inspect(pid, pid)
		if asleep(th) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("held thread %+v, want S in mkdirat at seccomp_do_user_notification", th)
		}
	}
	if err := sup.Answer(n, 0, 0); err != nil {
		t.Fatal(err)
	}
	p.Stdin.Close()
	p.Wait(t, 10*time.Second)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: %v, want absent: the supervisor answered for the kernel", dir, err)
	}
}
