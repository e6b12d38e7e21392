package guest

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/tracker"
)

// A 32-bit process's syscalls are named from the ia32 table, whose
// numbers mean other calls in the native one: its read(2) of a pipe is
// number 3 (close on amd64) and its nanosleep 162 (sync). Named right,
// both are waits, and a watched ia32 process with a 300ms budget keeps
// its heartbeat; named natively, sync and close would be stalls. An x32
// process's numbers carry bit 30 and are named likewise.
func TestIA32SyscallsNamed(t *testing.T) {
	requireVM(t)
	for _, c := range []struct {
		name, env string
		abi       tracker.ABI
	}{
		{"ia32", "STALLMON_IA32WAIT", tracker.ABICompat},
		{"x32", "STALLMON_X32WAIT", tracker.ABIX32},
	} {
		t.Run(c.name, func(t *testing.T) { testWaiterABI(t, os.Getenv(c.env), c.env, c.abi) })
	}
}

func testWaiterABI(t *testing.T, bin, env string, abi tracker.ABI) {
	if bin == "" {
		t.Fatalf("%s is not set: the VM's /init sets it when the initramfs has the program", env)
	}
	p := ctarget.Start(t, bin)
	pid := p.Cmd.Process.Pid
	m, err := tracker.Attach(tracker.Process(pid), nil, tracker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key, name string
		kind      fdkind.Kind
	}{
		{"read_tid", "read", fdkind.Pipe},
		{"nanosleep_tid", "nanosleep", fdkind.None},
	} {
		tid := p.Int(t, c.key)
		th, ok := s.Thread(tid)
		if !ok {
			t.Fatalf("%s %d missing from the snapshot %+v", c.key, tid, s.Threads)
		}
		if !th.InSyscall || th.Syscall != c.name || th.ABI != abi {
			t.Errorf("%s: %+v, want %s through the %s ABI", c.key, th, c.name, abi)
		}
		if c.kind != fdkind.None && (len(th.FDs) != 1 || th.FDs[0].Kind != c.kind || th.FD != p.Int(t, "pipe_fd")) {
			t.Errorf("%s: fds %+v, want the pipe %s", c.key, th.FDs, p.Ready["pipe_fd"])
		}
		t.Logf("%s %d: %s (nr %d, %s), fds %+v", c.key, tid, th.Syscall, th.Nr, th.ABI, th.FDs)
	}
	m.Close()

	const interval = 200 * time.Millisecond
	c := harness.NewCluster(t)
	agent := harness.Start(t, os.Getenv("STALLMON_BIN"), append([]string{"attach", "--pid", strconv.Itoa(pid),
		"--log-format", "json", "--node-id", abi.String(), "--budget", "300ms", "--interval", interval.String(),
		"--metrics-addr", ""}, c.GroupFlags()...)...)
	agent.Events.Next("attached", 30*time.Second)
	first := c.WaitPacket("ALIVE", 30*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })
	start := time.Unix(0, first.SendTime)
	c.WaitPacket("3s of heartbeats", 30*time.Second, func(p heartbeat.Packet) bool {
		return time.Unix(0, p.SendTime).Sub(start) >= 3*time.Second || p.State != heartbeat.StateAlive
	})
	for _, tp := range c.Seen() {
		if tp.P.State != heartbeat.StateAlive {
			t.Fatalf("an idle %s process was judged stalled: %+v", abi, tp.P)
		}
	}
	for _, ev := range agent.Events.Drain() {
		if ev["msg"] == "stall" {
			t.Fatalf("false alarm on an %s wait: %v", abi, ev)
		}
	}
}
