package guest

import (
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/tracker"
)

// requireTaskStorage skips where the tracker keeps no task storage: the
// minimal object's records are a tid-keyed hash, whose full map takes the
// same unrecorded path (internal/tracker's
// TestMinimalFullRecordMapMakesThreadUnknown).
func requireTaskStorage(t *testing.T) {
	t.Helper()
	requireProbed(t, "BPF task storage in tracing programs", "holding the lock of the tracker's task storage")
}

// victimCPU is where the victim runs and where faultmod holds the kernel's
// task storage lock; the guest has two CPUs, so the agent and the tests
// keep the other.
const victimCPU = 1

// victim is a single-threaded process (busybox cat, stdin a pipe), pinned
// to victimCPU and asleep in its read of stdin, entered before any tracker
// attached: it has no task storage until its next syscall entry.
type victim struct {
	pid int
	in  io.WriteCloser
}

func startVictim(t *testing.T) *victim {
	t.Helper()
	if runtime.NumCPU() <= victimCPU {
		t.Fatalf("%d CPUs: the task storage lock is held on CPU %d, and the agent needs another", runtime.NumCPU(), victimCPU)
	}
	cmd := exec.Command("/bin/busybox", "cat")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting busybox cat: %v", err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	var set unix.CPUSet
	set.Set(victimCPU)
	if err := unix.SchedSetaffinity(cmd.Process.Pid, &set); err != nil {
		t.Fatalf("pinning the victim to CPU %d: %v", victimCPU, err)
	}
	v := &victim{pid: cmd.Process.Pid, in: in}
	v.waitRead(t)
	return v
}

// waitRead waits until the victim sleeps in its read of stdin.
func (v *victim) waitRead(t *testing.T) {
	t.Helper()
	want := strconv.Itoa(unix.SYS_READ) + " 0x0 "
	waitForPID(t, v.pid, 10*time.Second, func(s procStat) bool { return s.state == 'S' && strings.HasPrefix(s.syscall, want) })
}

// line makes the victim return from its read and enter its next syscalls
// (the copy to stdout, then the next read), on victimCPU.
func (v *victim) line(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(v.in, "x\n"); err != nil {
		t.Fatalf("writing to the victim: %v", err)
	}
}

// The tracker's blind spot, made for real: with the kernel's BPF task
// storage lock held on its CPU, the victim enters syscalls for which
// bpf_task_storage_get() returns NULL, and the tracker records nothing.
// The snapshot must mark the thread unknown (not idle, not judged only by
// its registers as if all were well), keep it so after the lock is
// released while it still sleeps in the unrecorded read, and clear the
// mark at its next recorded entry. The failures stay counted.
func TestUnrecordedEntryMakesThreadUnknown(t *testing.T) {
	requireVM(t)
	requireTaskStorage(t)
	d := openDevice(t)
	v := startVictim(t)
	mon, err := tracker.Attach(tracker.Process(v.pid), nil, tracker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	if th := victimThread(t, mon, v.pid); th.Unrecorded != nil {
		t.Fatalf("victim unknown before any fault: %+v", th.Unrecorded)
	}

	if err := d.HoldTaskStorage(victimCPU); err != nil {
		t.Fatal(err)
	}
	held := time.Now()
	v.line(t)
	th := waitVictim(t, mon, v.pid, "unknown, asleep in its unrecorded syscall", func(th tracker.Thread) bool {
		return th.Unrecorded != nil && th.State == tracker.StateInterruptible && th.InSyscall && th.Syscall == th.Unrecorded.Syscall
	})
	t.Logf("unknown %v after the lock was held: %s", time.Since(held).Round(time.Millisecond), th.Unrecorded.Reason())
	if th.Unrecorded.For <= 0 || th.Unrecorded.For > time.Since(held) {
		t.Errorf("unknown for %v, want within the %v since the lock was held", th.Unrecorded.For, time.Since(held))
	}
	c := counters(t, mon)
	if c.StorageFailed < 1 || c.UnrecordedThreads != 1 {
		t.Fatalf("counters while held: %d storage failures, %d unrecorded threads; want >= 1 and 1", c.StorageFailed, c.UnrecordedThreads)
	}

	if err := d.ReleaseTaskStorage(); err != nil {
		t.Fatal(err)
	}
	// Nothing recorded the read it sleeps in: still unknown.
	if th := victimThread(t, mon, v.pid); th.Unrecorded == nil {
		t.Fatal("victim known again while it still sleeps in its unrecorded read")
	}
	v.line(t)
	waitVictim(t, mon, v.pid, "known, in a recorded read", func(th tracker.Thread) bool {
		return th.Unrecorded == nil && th.Tracked && th.InSyscall && th.Syscall == "read" && !th.SinceAttach
	})
	after := counters(t, mon)
	if after.UnrecordedThreads != 0 || after.StorageFailed < c.StorageFailed {
		t.Fatalf("counters after recovery: %d unrecorded threads, %d storage failures; want 0 and at least %d",
			after.UnrecordedThreads, after.StorageFailed, c.StorageFailed)
	}
}

// The same fault under stallmon attach, as a peer sees it: heartbeats
// stop while the victim is unknown (thread_unknown and heartbeat_stopped
// name it), /readyz says why, the failures are in the metrics, and ALIVE
// resumes after the victim's next recorded syscall entry.
func TestUnrecordedThreadStopsHeartbeat(t *testing.T) {
	requireVM(t)
	requireTaskStorage(t)
	bin := os.Getenv("STALLMON_BIN")
	if bin == "" {
		t.Fatal("STALLMON_BIN is not set: the VM's /init sets it when the initramfs has /bin/stallmon")
	}
	d := openDevice(t)
	v := startVictim(t)
	cluster := harness.NewCluster(t)
	agent := harness.Start(t, bin, append([]string{"attach", "--pid", strconv.Itoa(v.pid), "--log-format", "json",
		"--node-id", "vm", "--poll-interval", poll.String(), "--interval", interval.String(),
		"--metrics-addr", "127.0.0.1:0"}, cluster.GroupFlags()...)...)
	addr := agent.Events.Next("metrics_listening", 30*time.Second)["addr"].(string)
	agent.Events.Next("attached", 30*time.Second)
	cluster.WaitPacket("ALIVE", 30*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })

	if err := d.HoldTaskStorage(victimCPU); err != nil {
		t.Fatal(err)
	}
	v.line(t)
	ev := agent.Events.Next("thread_unknown", 30*time.Second)
	if ev["tid"] != float64(v.pid) || !strings.Contains(ev["reason"].(string), "task storage") {
		t.Fatalf("thread_unknown = %v, want tid %d and the reason", ev, v.pid)
	}
	unknownAt := eventTime(t, ev)
	stopped := agent.Events.Next("heartbeat_stopped", 30*time.Second)
	if stopped["reason"] != "thread_unknown" || !strings.Contains(stopped["detail"].(string), "thread "+strconv.Itoa(v.pid)) {
		t.Fatalf("heartbeat_stopped = %v, want reason thread_unknown naming thread %d", stopped, v.pid)
	}
	waitHTTP(t, addr, "/readyz", 503, "blind: thread "+strconv.Itoa(v.pid)+" (busybox) unknown: its entry into")
	body := waitHTTP(t, addr, "/metrics", 200, "stallmon_tracker_threads_unrecorded 1")
	if failures := metricValue(t, body, "stallmon_tracker_thread_entries_create_failures_total"); failures < 1 {
		t.Fatalf("create failures = %v while the victim is unknown", failures)
	}
	// Released, the victim sleeps on in its unrecorded read: still blind.
	if err := d.ReleaseTaskStorage(); err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, addr, "/readyz", 503, "unknown")
	resumeAt := time.Now()
	v.line(t)
	agent.Events.Next("thread_known", 30*time.Second)
	agent.Events.Next("heartbeat_resumed", 30*time.Second)
	waitHTTP(t, addr, "/readyz", 200, "ok")
	body = waitHTTP(t, addr, "/metrics", 200, "stallmon_tracker_threads_unrecorded 0")
	if failures := metricValue(t, body, "stallmon_tracker_thread_entries_create_failures_total"); failures < 1 {
		t.Fatalf("create failures = %v after recovery: the count must stay visible", failures)
	}

	// No ALIVE was sent from the poll after the victim was lost until it
	// was recorded again. The heartbeat carries the sender's clock, as
	// do the events: same host.
	last := unknownAt.Add(poll)
	for _, tp := range cluster.Seen() {
		at := time.Unix(0, tp.P.SendTime)
		if tp.P.State == heartbeat.StateAlive && at.After(last) && at.Before(resumeAt) {
			t.Errorf("ALIVE sent %v after thread_unknown, before the victim was recorded again", at.Sub(unknownAt))
		}
	}
	t.Logf("%s blind for %.2fs; heartbeat resumed", ev["syscall"], resumeAt.Sub(unknownAt).Seconds())
}

// A hold is one per open device, on an online CPU, and ends with the
// file: what a test that dies leaves behind is released by its close.
func TestTaskStorageHoldIsBounded(t *testing.T) {
	requireVM(t)
	requireTaskStorage(t)
	d := openDevice(t)
	if err := d.HoldTaskStorage(4096); !errors.Is(err, unix.EINVAL) {
		t.Errorf("hold on CPU 4096: %v, want EINVAL", err)
	}
	if err := d.HoldTaskStorage(victimCPU); err != nil {
		t.Fatal(err)
	}
	if err := d.HoldTaskStorage(0); !errors.Is(err, unix.EBUSY) {
		t.Errorf("second hold on one device: %v, want EBUSY", err)
	}
	// Held, a new thread's first syscall on that CPU goes unrecorded...
	v := startVictim(t)
	mon, err := tracker.Attach(tracker.Process(v.pid), nil, tracker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	v.line(t)
	waitVictim(t, mon, v.pid, "unknown", func(th tracker.Thread) bool { return th.Unrecorded != nil })
	// ...and closing the device releases the CPU: the next entry is recorded.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	v.line(t)
	waitVictim(t, mon, v.pid, "known after the device was closed", func(th tracker.Thread) bool { return th.Unrecorded == nil && th.Tracked })
}

func victimThread(t *testing.T, mon *tracker.Tracker, tid int) tracker.Thread {
	t.Helper()
	snap, err := mon.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	th, ok := snap.Thread(tid)
	if !ok {
		t.Fatalf("no thread %d in the snapshot: %+v", tid, snap.Threads)
	}
	return th
}

// waitVictim polls snapshots until the victim's thread matches ok: the
// tracker has no event to wait on.
func waitVictim(t *testing.T, mon *tracker.Tracker, tid int, what string, ok func(tracker.Thread) bool) tracker.Thread {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		th := victimThread(t, mon, tid)
		if ok(th) {
			return th
		}
		if time.Now().After(deadline) {
			t.Fatalf("victim never %s: last %+v (unrecorded %+v)", what, th, th.Unrecorded)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func counters(t *testing.T, mon *tracker.Tracker) tracker.Counters {
	t.Helper()
	c, err := mon.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitHTTP polls path until it answers code with a body containing want,
// and returns the body.
func waitHTTP(t *testing.T, addr, path string, code int, want string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == code && strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d %q, want %d with %q", path, resp.StatusCode, b, code, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func metricValue(t *testing.T, body, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in the metrics", name)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
