package guest

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/test/vm/faultmod"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/harness"
)

// ia32Ioctl is ioctl's number in the ia32 table; 54 is setpgid on amd64.
const ia32Ioctl = 54

// oops32 is TestOops' 32-bit act: a thread of a 32-bit process oopses
// inside its ioctl (FAULTMOD_OOPS, which takes no lock, so it can follow
// the acts before it) while the main thread lives on. It is a death like
// a 64-bit thread's, named from the ia32 table and reported with its
// ABI, and the heartbeat's stall carries the native ioctl number. A
// tracker that compared the exit numbers of the wrong ABI could miss it
// or, as before issue 18, take every 32-bit exit for one.
func oops32(t *testing.T) {
	bin := ctarget.Build(t, "ioctlcall", "-m32", "-static")
	ctarget.RequireIA32(t, bin)
	stallmon := os.Getenv("STALLMON_BIN")
	if stallmon == "" {
		t.Fatal("STALLMON_BIN is not set: the VM's /init sets it when the initramfs has /bin/stallmon")
	}
	p := ctarget.Start(t, bin, faultmod.DevicePath, fmt.Sprintf("%#x", faultmod.IoctlOops), fmt.Sprintf("%#x", faultmod.OopsConfirm))
	pid := p.Cmd.Process.Pid
	c := harness.NewCluster(t)
	agent := harness.Start(t, stallmon, append([]string{"attach", "--pid", strconv.Itoa(pid), "--log-format", "json",
		"--node-id", "vm32", "--poll-interval", poll.String(), "--interval", interval.String(), "--metrics-addr", "",
		"--kill-grace", "5s"}, c.GroupFlags()...)...)
	agent.Events.Next("attached", 30*time.Second)
	c.WaitPacket("ALIVE", 30*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })

	if _, err := fmt.Fprintln(p.Stdin, "go"); err != nil {
		t.Fatal(err)
	}
	calling := p.Next(t, 30*time.Second)
	hang := time.Now()
	tid, err := strconv.Atoi(calling["tid"])
	if calling[""] != "calling" || err != nil {
		t.Fatalf("ioctlcall said %v, want calling tid=T", calling)
	}
	died := agent.Events.Next("died_in_syscall", 30*time.Second)
	wantFields(t, died, map[string]any{"pid": pid, "tid": tid, "syscall": "ioctl", "nr": ia32Ioctl, "abi": "ia32",
		"fd": p.Int(t, "fd"), "signal": "SIGSEGV", "state": "dead", "reason": "died_in_syscall"})
	stalled := c.WaitPacket("STALLED", 30*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled })
	if stalled.Stall.Name != "ioctl" || stalled.Stall.Syscall != unix.SYS_IOCTL || stalled.Stall.TID != uint32(tid) {
		t.Fatalf("STALLED = %+v, want the dead thread %d's ioctl, native number %d", stalled.Stall, tid, unix.SYS_IOCTL)
	}
	if code := agent.Wait(t, 30*time.Second); code != exitKilled {
		t.Fatalf("stallmon attach exited %d, want %d (killed)", code, exitKilled)
	}
	if !kernelLogHas(t, "faultmod: BUG() without a lock") {
		t.Fatal("no oops in the kernel log: the scenario did not run for real")
	}
	t.Logf(ResultPrefix+"oops-ia32: hang->died_in_syscall %v (ia32 ioctl, nr %d), hang->last ALIVE %v, kill confirmed (exit %d)",
		eventTime(t, died).Sub(hang).Round(time.Millisecond), ia32Ioctl,
		c.LastAliveBefore(stalled).Sub(hang).Round(time.Millisecond), exitKilled)
}
