package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// Case 2 of the judgement work: sendfile(2) from a file on a file system
// that stopped answering into a socket waits in D on a page lock. Its
// first fd is a socket, which made it "unbounded" once; with the default
// table it is a stall within 10s. With sendfile made unbounded by the
// table, the uninterruptible rule alone still catches it.
func TestSendfileFromHungFS(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	for _, c := range []struct {
		name   string
		config string // "" for the built-in table
		reason string
	}{
		{"default table", "", ""},
		{"sendfile unbounded", strings.Replace(string(budget.DefaultYAML()),
			"  sendfile:\n    by_fd: {socket: unbounded, pipe: unbounded, tty: unbounded}\n", "  sendfile: unbounded\n", 1), "uninterruptible"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := startWorkload(t)
			fs := fusehang.Mount(t, fusehang.Options{PageCache: true})
			args := []string{"attach", "--pid", itoa(w.PID), "--no-heartbeat", "--log-format", "json", "--metrics-addr", ""}
			if c.config != "" {
				if !strings.Contains(c.config, "  sendfile: unbounded\n") {
					t.Fatal("the built-in table's sendfile entry changed: update this test")
				}
				path := filepath.Join(t.TempDir(), "table.yaml")
				if err := os.WriteFile(path, []byte(c.config), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", path)
			}
			agent := startStallmon(t, args...)
			agent.Events.Next("attached", 10*time.Second)
			r, err := w.Do("sendfile " + fs.File)
			if err != nil {
				t.Fatal(err)
			}
			issued := time.Now()
			tid, _ := r.Int("tid")
			inFD, _ := r.Int("in_fd")
			stall := agent.Events.Next("stall", 12*time.Second)
			after := eventTime(t, stall).Sub(issued)
			wantFields(t, "stall", stall, map[string]any{"tid": tid, "syscall": "sendfile", "fd": inFD, "fd_kind": "regular", "fs": "fuse"})
			if st := stall["state"]; st != "killable" && st != "uninterruptible" {
				t.Errorf("stall state %v, want killable or uninterruptible (D on a page lock)", st)
			}
			if c.reason != "" && stall["reason"] != c.reason {
				t.Errorf("stall reason %v, want %s", stall["reason"], c.reason)
			}
			if after > 10*time.Second {
				t.Errorf("stall %v after the hang, want within 10s", after)
			}
			t.Logf("stall %v after the hang: reason %v, state %v, state_seconds %v", after.Round(time.Millisecond),
				stall["reason"], stall["state"], stall["state_seconds"])
		})
	}
}

// watchHealthy runs stallmon attach with a heartbeat for window, flags
// naming the target (--pid or --cgroup), and fails on any stall, any
// packet other than ALIVE, or a heartbeat that mostly stopped.
func watchHealthy(t *testing.T, window time.Duration, flags ...string) {
	t.Helper()
	const interval = 200 * time.Millisecond
	c := newCluster(t)
	agent := startStallmon(t, append(append([]string{"attach", "--log-format", "json",
		"--node-id", "healthy", "--poll-interval", "100ms", "--interval", interval.String(), "--metrics-addr", ""},
		flags...), c.GroupFlags()...)...)
	agent.Events.Next("attached", 10*time.Second)
	first := c.WaitPacket("ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })
	start := time.Unix(0, first.SendTime)
	c.WaitPacket("the whole window of heartbeats", window+10*time.Second, func(p heartbeat.Packet) bool {
		return time.Unix(0, p.SendTime).Sub(start) >= window || p.State != heartbeat.StateAlive
	})
	alive := 0
	for _, tp := range c.Seen() {
		if tp.P.State != heartbeat.StateAlive {
			t.Fatalf("non-ALIVE heartbeat from a healthy target: %+v", tp.P)
		}
		alive++
	}
	// A late poll on a loaded machine silences a beat or two (the gate
	// goes blind, never stalled): that is the agent's own starvation.
	if want := int(window/interval) * 3 / 4; alive < want {
		t.Fatalf("%d ALIVE heartbeats in %v, want at least %d", alive, window, want)
	}
	for _, ev := range agent.Events.Drain() {
		if ev["msg"] == "stall" || ev["msg"] == "kill" {
			t.Fatalf("false alarm: %v", ev)
		}
	}
}

// Case 3: an idle io_uring service with an SQPOLL thread (iou-sqp, whose
// registers show its creator's io_uring_setup) and a thread waiting for
// completions is never flagged, even with a 1s budget.
func TestIdleIOUringNotFlagged(t *testing.T) {
	privtest.Require(t)
	w := startWorkload(t)
	if _, err := w.Do("uring-idle"); err != nil {
		t.Fatal(err)
	}
	watchHealthy(t, 10*time.Second, "--pid", itoa(w.PID), "--budget", "1s", "--kill-after", "3s")
	if _, err := w.Do("uring-stop"); err != nil {
		t.Fatal(err)
	}
}

// An io-wq worker (iou-wrk, made by the kernel inside the process) stuck
// in D on a hung file is a stall of the process that owns the ring,
// judged by its state alone.
func TestIOUringWorkerInD(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	w := startWorkload(t)
	fs := fusehang.Mount(t, fusehang.Options{PageCache: true})
	agent := startStallmon(t, "attach", "--pid", itoa(w.PID), "--no-heartbeat", "--log-format", "json",
		"--metrics-addr", "", "--budget", "1s", "--kill-after", "1m")
	agent.Events.Next("attached", 10*time.Second)
	r, err := w.Do("uring-read " + fs.File)
	if err != nil {
		t.Fatal(err)
	}
	issued := time.Now()
	worker, _ := r.Int("worker_tid")
	stall := agent.Events.NextWhere("stall of the io-wq worker", 10*time.Second, func(ev map[string]any) bool {
		return ev["msg"] == "stall" && ev["tid"] == float64(worker)
	})
	t.Logf("io-wq worker %d (%v) stalled %v after the read was in D: state %v, state_seconds %v", worker, stall["comm"],
		eventTime(t, stall).Sub(issued).Round(time.Millisecond), stall["state"], stall["state_seconds"])
	wantFields(t, "stall", stall, map[string]any{"reason": "uninterruptible", "syscall": "none", "kernel_worker": true})
	if st := stall["state"]; st != "killable" && st != "uninterruptible" {
		t.Errorf("worker state %v, want D", st)
	}
	fs.Release()
}

// A vfork or posix_spawn parent waits in killable D while its child sleeps
// 15s before exec: with the default table, never a stall.
func TestSpawnParentNotFlagged(t *testing.T) {
	privtest.Require(t)
	bin := ctarget.Build(t, "spawnwait")
	const childSeconds = 15
	for _, mode := range []string{"vfork", "posix_spawn"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			p := ctarget.Start(t, bin, mode, strconv.Itoa(childSeconds))
			agent := startStallmon(t, "attach", "--pid", itoa(p.Cmd.Process.Pid), "--no-heartbeat",
				"--log-format", "json", "--metrics-addr", "")
			agent.Events.Next("attached", 10*time.Second)
			if st := taskState(t, p.Cmd.Process.Pid, p.Cmd.Process.Pid); st != "D" {
				t.Fatalf("spawning parent in state %s after attach, want D", st)
			}
			if code := agent.Wait(t, (childSeconds+15)*time.Second); code != 0 {
				t.Fatalf("stallmon exited %d, want 0 when the target exits on its own", code)
			}
			all := agent.Events.Rest()
			for _, ev := range all {
				if ev["msg"] == "stall" || ev["msg"] == "kill" {
					t.Fatalf("false alarm on a spawning parent: %v", ev)
				}
			}
			if last := all[len(all)-1]; last["msg"] != "target_exited" || last["exit_code"] != float64(0) {
				t.Errorf("last event %v, want target_exited with exit_code 0", last)
			}
		})
	}
}

// A SIGSTOPped target serves nobody: the heartbeat stops within 5s with
// the default table (stopped: 3s, never killed) and resumes on SIGCONT.
func TestStoppedTargetStopsHeartbeat(t *testing.T) {
	privtest.Require(t)
	const interval = 200 * time.Millisecond
	c := newCluster(t)
	w := startWorkload(t)
	agent := startStallmon(t, append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json",
		"--node-id", "stopped", "--interval", interval.String(), "--metrics-addr", "", "--late-return", "resume"}, c.GroupFlags()...)...)
	agent.Events.Next("attached", 10*time.Second)
	c.WaitPacket("ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })

	if err := syscall.Kill(w.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	stall := agent.Events.Next("stall", 10*time.Second)
	if stall["reason"] != "stopped" || stall["state"] != "stopped" {
		t.Errorf("stall %v, want reason and state stopped", stall)
	}
	if _, ok := stall["kill_after_seconds"]; ok {
		t.Errorf("stall %v carries a kill_after: the default never kills a stopped target", stall)
	}
	st := c.WaitPacket("STALLED", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled })
	if st.TakeoverDeadline != 0 {
		t.Errorf("STALLED for a stopped target promises a takeover deadline (%v): nothing will kill it",
			time.Unix(0, st.TakeoverDeadline).Sub(time.Unix(0, st.SendTime)))
	}
	lastAlive := c.LastAliveBefore(st)
	if d := lastAlive.Sub(stopped); d > 5*time.Second {
		t.Errorf("last ALIVE %v after SIGSTOP, want the heartbeat stopped within 5s", d)
	}

	if err := syscall.Kill(w.PID, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	agent.Events.Next("stall_cleared", 10*time.Second)
	c.WaitPacket("ALIVE after SIGCONT", 10*time.Second, func(p heartbeat.Packet) bool {
		return p.State == heartbeat.StateAlive && p.Seq > st.Seq
	})
	if processExited(t, w.PID) {
		t.Fatal("a stopped target was killed")
	}
	t.Logf("last ALIVE %v after SIGSTOP; stall at state_seconds %v", lastAlive.Sub(stopped).Round(time.Millisecond), stall["state_seconds"])
}

// A target frozen by the cgroup freezer stops the heartbeat after the
// frozen budget (3s) without a kill, and thawing it resumes.
func TestFrozenTargetStalls(t *testing.T) {
	privtest.Require(t)
	w := startWorkload(t)
	cg := cgrouptest.New(t)
	if err := cg.Add(w.PID); err != nil {
		t.Fatal(err)
	}
	agent := startStallmon(t, "attach", "--pid", itoa(w.PID), "--no-heartbeat", "--log-format", "json",
		"--metrics-addr", "", "--late-return", "resume")
	agent.Events.Next("attached", 10*time.Second)

	if err := cg.Freeze(true); err != nil {
		t.Fatal(err)
	}
	stall := agent.Events.Next("stall", 10*time.Second)
	if stall["reason"] != "frozen" {
		t.Fatalf("stall %v, want reason frozen", stall)
	}
	if _, ok := stall["kill_after_seconds"]; ok {
		t.Errorf("stall %v carries a kill_after: the default never kills a frozen target", stall)
	}
	if err := cg.Freeze(false); err != nil {
		t.Fatal(err)
	}
	agent.Events.Next("stall_cleared", 10*time.Second)
	if processExited(t, w.PID) {
		t.Fatal("a frozen target was killed")
	}
	for _, ev := range agent.Events.Drain() {
		if ev["msg"] == "kill" {
			t.Fatalf("killed a frozen target: %v", ev)
		}
	}
}
