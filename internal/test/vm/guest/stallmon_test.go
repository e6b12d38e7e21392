package guest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/test/vm/faultmod"
	"github.com/stallmon/stallmon/internal/testutil/harness"
)

// stallmon's exit statuses (cmd/stallmon/exitcode.go, docs/services.md).
const (
	exitKilled     = 3
	exitUnkillable = 4
)

// Timing of every scenario: the defaults' poll, a short heartbeat interval.
const (
	poll     = 100 * time.Millisecond
	interval = 200 * time.Millisecond
)

// longSpinSeconds is how long the spin scenario stays in the kernel: well
// past its budget, well short of its kill_after.
const longSpinSeconds = 4

// node is the target, stallmon watching it, and a peer listening.
type node struct {
	t        *testing.T
	child    *child
	cluster  *harness.Cluster
	agent    *harness.Proc
	listener *harness.Proc
	hookFile string
}

// startNode starts a child that will make ioctl what, then a listener and
// stallmon attached to the child with the extra flags, and waits until the
// listener hears the node alive. The child's ioctl starts at n.child.enter.
func startNode(t *testing.T, what string, attachFlags ...string) *node {
	t.Helper()
	requireVM(t)
	bin := os.Getenv("STALLMON_BIN")
	if bin == "" {
		t.Fatal("STALLMON_BIN is not set: the VM's /init sets it when the initramfs has /bin/stallmon")
	}
	openDevice(t) // its cleanup releases what a failed test leaves asleep
	n := &node{t: t, cluster: harness.NewCluster(t), hookFile: filepath.Join(t.TempDir(), "hook")}
	n.child = startChild(t, what)
	n.listener = harness.Start(t, bin, append([]string{"listen", "--json", "--timeout", "3s", "--metrics-addr", "",
		"--on-failover", `echo "$STALLMON_NODE $STALLMON_REASON" >> ` + n.hookFile}, n.cluster.GroupFlags()...)...)
	args := append([]string{"attach", "--pid", strconv.Itoa(n.child.pid), "--log-format", "json",
		"--node-id", "vm", "--poll-interval", poll.String(), "--interval", interval.String(), "--metrics-addr", ""},
		attachFlags...)
	n.agent = harness.Start(t, bin, append(args, n.cluster.GroupFlags()...)...)
	n.agent.Events.Next("attached", 30*time.Second)
	if ev := n.listener.Events.NextAny(30 * time.Second); ev["state"] != "alive" || ev["node"] != "vm" {
		t.Fatalf("listener's first transition = %v, want vm alive", ev)
	}
	return n
}

// waitHook waits for the listener's failover hook to have written its
// line, and returns when it wrote it (the file's mtime).
func (n *node) waitHook(want string) time.Time {
	n.t.Helper()
	ev := n.listener.Events.NextAny(30 * time.Second)
	if ev["node"] != "vm" || ev["failover"] != true {
		n.t.Fatalf("listener transition = %v, want vm with failover", ev)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(n.hookFile)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			if got := strings.TrimSpace(string(b)); got != want {
				n.t.Fatalf("failover hook wrote %q, want %q once", got, want)
			}
			st, err := os.Stat(n.hookFile)
			if err != nil {
				n.t.Fatal(err)
			}
			return st.ModTime()
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("failover hook did not run: %v", err)
		}
		// The hook is another process: no event tells when it has written.
		time.Sleep(20 * time.Millisecond)
	}
}

// The incident that started stallmon, for real: the main thread enters an
// ioctl that oopses (BUG with a mutex held) while a second thread keeps
// making fast syscalls, as the old heartbeat thread did. The kernel kills
// the main thread inside the syscall; stallmon sees it die there, stops
// the heartbeat, the peer fails over, and the rest of the process is
// killed. Then the next caller of that ioctl hangs for good on the mutex
// the oops left held, uninterruptibly: stallmon kills, reports it
// unkillable with the kernel stack, and keeps the heartbeat off. Last, a
// network service's event loop polls the device and blocks on that same
// mutex, inside a syscall that has no time limit of its own: stallmon
// must judge it by its uninterruptible sleep, not by the clock. Then a
// 32-bit process's thread oopses in its own ABI's ioctl (oops32_test.go).
//
// It oopses the guest kernel, so make vmtest runs it in a boot of its own
// (vmtest_scenario=oops); elsewhere it skips.
func TestOops(t *testing.T) {
	requireScenario(t, "oops")
	const budget, killAfter = time.Second, 5 * time.Second
	t.Run("main thread dies inside the syscall", func(t *testing.T) {
		n := startNode(t, "oops:busy", "--budget", budget.String(), "--kill-after", killAfter.String(), "--kill-grace", "5s")
		hang := n.child.enter(t)

		died := n.agent.Events.Next("died_in_syscall", 30*time.Second)
		wantFields(t, died, map[string]any{"tid": n.child.pid, "syscall": "ioctl", "fd": n.child.fd,
			"signal": "SIGSEGV", "state": "dead", "reason": "died_in_syscall"})
		stalled := n.cluster.WaitPacket("STALLED", 30*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled })
		if stalled.Stall.Name != "ioctl" || stalled.Stall.TID != uint32(n.child.pid) {
			t.Fatalf("STALLED = %+v, want the dead thread's ioctl", stalled.Stall)
		}
		hookAt := n.waitHook("vm stalled")
		if code := n.agent.Wait(t, 30*time.Second); code != exitKilled {
			t.Fatalf("stallmon attach exited %d, want %d (killed)", code, exitKilled)
		}
		kill := n.agent.Events.Next("kill", time.Second)
		wantFields(t, kill, map[string]any{"reason": "died_in_syscall", "syscall": "ioctl"})
		wantFields(t, n.agent.Events.Next("target_exited", time.Second), map[string]any{"signal": 9})
		fenced := n.cluster.WaitPacket("FENCED", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateFenced })
		if !kernelLogHas(t, "faultmod: BUG() with faultmod_mutex held") {
			t.Fatal("no oops in the kernel log: the scenario did not run for real")
		}

		toLastAlive := n.cluster.LastAliveBefore(stalled).Sub(hang)
		t.Logf(ResultPrefix+"oops: budget %v, poll %v, interval %v: hang->last ALIVE %v, hang->peer hook %v, hang->FENCED %v, kill confirmed (exit %d)",
			budget, poll, interval, toLastAlive.Round(time.Millisecond), hookAt.Sub(hang).Round(time.Millisecond),
			time.Unix(0, fenced.SendTime).Sub(hang).Round(time.Millisecond), exitKilled)
		if bound := budget + poll + interval; toLastAlive > bound {
			t.Errorf("last ALIVE %v after the oops, want <= budget+poll+interval = %v", toLastAlive, bound)
		}
	})
	t.Run("next caller blocks forever on the lock it left", func(t *testing.T) {
		const budget, killAfter = 300 * time.Millisecond, time.Second
		n := startNode(t, "lock:busy", "--budget", budget.String(), "--kill-after", killAfter.String(), "--kill-grace", "1s")
		hang := n.child.enter(t)
		s := n.killedButAlive(2*time.Second, ioctlHang)
		toLastAlive := n.cluster.LastAliveBefore(s.stalled).Sub(hang)
		t.Logf(ResultPrefix+"oops-lock: budget %v, kill_after %v: hang->last ALIVE %v, hang->peer hook %v, kill not completed: unkillable, state %v, stack %v",
			budget, killAfter, toLastAlive.Round(time.Millisecond), s.hookAt.Sub(hang).Round(time.Millisecond), s.unkillable["proc_state"], s.unkillable["stack"])
		if bound := budget + poll + interval; toLastAlive > bound {
			t.Errorf("last ALIVE %v after the hang, want <= budget+poll+interval = %v", toLastAlive, bound)
		}
	})
	t.Run("event loop blocks in poll on the lock it left", oopsPoll)
	t.Run("a 32-bit thread dies inside the syscall", oops32)
}

// pollHang is the event loop of the seed incident: poll(2) (ppoll from Go)
// blocked on the mutex an oops left held, caught by the uninterruptible
// rule since poll may wait for ever. The stack names faultmod_poll and
// ppoll; mutex_lock itself is inlined into the module on 6.12's build.
var pollHang = hangKind{syscalls: []string{"poll", "ppoll"}, reason: "uninterruptible", state: "uninterruptible",
	stack: []string{"faultmod_poll", "do_sys_poll"}}

// oopsPoll is TestOops' last act: the main thread's poll(2) with no
// timeout blocks in D on the mutex the oops left held, while a second
// thread stays busy. stallmon runs the default table but for the default
// rule, which the uninterruptible state rule follows: 1s budget, 3s
// kill_after.
func oopsPoll(t *testing.T) {
	const budget, killAfter = time.Second, 3 * time.Second
	n := startNode(t, "poll:busy", "--budget", budget.String(), "--kill-after", killAfter.String(), "--kill-grace", "1s")
	hang := n.child.enter(t)
	// The scenario is real before stallmon is judged on it: the main
	// thread is in D inside ppoll, not idle in S as before the oops.
	want := fmt.Sprintf("%d ", unix.SYS_PPOLL)
	waitFor(t, n.child, 10*time.Second, func(s procStat) bool { return strings.HasPrefix(s.syscall, want) && s.state == 'D' })
	s := n.killedButAlive(2*time.Second, pollHang)
	toStall := eventTime(t, s.stall).Sub(hang)
	toLastAlive := n.cluster.LastAliveBefore(s.stalled).Sub(hang)
	toHook := s.hookAt.Sub(hang)
	toKill := eventTime(t, s.kill).Sub(hang)
	t.Logf(ResultPrefix+"oops-poll: uninterruptible rule %v/%v: hang->stall %v (%s), hang->last ALIVE %v, hang->peer hook %v, hang->kill %v, unkillable in %v, stack %v",
		budget, killAfter, toStall.Round(time.Millisecond), s.stall["syscall"], toLastAlive.Round(time.Millisecond),
		toHook.Round(time.Millisecond), toKill.Round(time.Millisecond), s.unkillable["proc_state"], s.unkillable["stack"])
	if toStall < budget {
		t.Errorf("stall %v after the hang, sooner than the uninterruptible budget %v", toStall, budget)
	}
	if bound := budget + poll + interval; toLastAlive > bound {
		t.Errorf("last ALIVE %v after the hang, want <= budget+poll+interval = %v", toLastAlive, bound)
	}
	if toKill < killAfter {
		t.Errorf("killed %v after the hang, sooner than kill_after %v", toKill, killAfter)
	}
}

// A syscall that stays on the CPU in the kernel (a driver spinning with
// preemption points) is flagged while it runs, and the heartbeat comes
// back when it returns before kill_after.
func TestKernelSpinIsFlaggedOnCPU(t *testing.T) { kernelSpin(t) }

// The sampled tracker sees the spin from the registers: preemption
// points are involuntary switches, and no user time passes.
func TestSampledKernelSpinIsFlaggedOnCPU(t *testing.T) {
	requireSampled(t)
	kernelSpin(t, "--tracker", "sampled")
}

func kernelSpin(t *testing.T, flags ...string) {
	const budget, killAfter = 500 * time.Millisecond, 30 * time.Second
	n := startNode(t, "spin-long:busy", append([]string{"--budget", budget.String(), "--kill-after", killAfter.String(), "--late-return", "resume"}, flags...)...)
	n.child.enter(t)

	stall := n.agent.Events.Next("stall", 30*time.Second)
	if s := readStat(t, n.child.pid); s.state != 'R' {
		t.Fatalf("stall reported, but the spinner is in %c, not R: it was not flagged while on the CPU", s.state)
	}
	wantFields(t, stall, map[string]any{"tid": n.child.pid, "syscall": "ioctl", "fd": n.child.fd})
	if st := stall["state"]; st != "running" && st != "runnable" {
		t.Fatalf("spinner's stall has state %v, want running or runnable", st)
	}
	stalled := n.cluster.WaitPacket("STALLED", 30*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled })
	cleared := n.agent.Events.Next("stall_cleared", 30*time.Second)
	if d, _ := cleared["duration_seconds"].(float64); d < budget.Seconds() || d > longSpinSeconds+1 {
		t.Fatalf("stall_cleared after %vs, want between the budget and the %ds spin", d, longSpinSeconds)
	}
	n.agent.Events.Next("heartbeat_resumed", 30*time.Second)
	n.cluster.WaitPacket("ALIVE after the spin", 30*time.Second, func(p heartbeat.Packet) bool {
		return p.State == heartbeat.StateAlive && p.Seq > stalled.Seq
	})
	var took time.Duration
	if line := n.child.readLine(t); !scanDuration(line, &took) || took < longSpinSeconds*time.Second {
		t.Fatalf("spinner said %q, want took= at least %ds", line, longSpinSeconds)
	}
	n.child.in.Close()
	if !n.child.exitedWithin(t, 30*time.Second) {
		t.Fatal("spinner did not finish")
	}
	if err := n.child.cmd.Wait(); err != nil {
		t.Fatalf("spinner: %v (killed although its syscall returned before kill_after?)", err)
	}
	if code := n.agent.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("stallmon attach exited %d after the spinner exited on its own, want 0", code)
	}
	t.Logf(ResultPrefix+"spin%s: budget %v: flagged at %.2fs in state %v while on the CPU, cleared after %.2fs, heartbeat resumed",
		trackerNote(flags), budget, stall["elapsed_seconds"], stall["state"], cleared["duration_seconds"])
}

// A thread asleep in D that SIGKILL cannot end: stallmon stops the
// heartbeat, kills, reports it unkillable with its kernel stack after the
// grace period, and keeps the heartbeat off; when the kernel finally lets
// go, the pending SIGKILL takes it and stallmon exits 4.
func TestUnkillableIsReported(t *testing.T) { unkillable(t, 0) }

// The sampled tracker first sees the hang at the poll after it began:
// one poll more to the last ALIVE.
func TestSampledUnkillableIsReported(t *testing.T) {
	requireSampled(t)
	unkillable(t, poll, "--tracker", "sampled")
}

func unkillable(t *testing.T, late time.Duration, flags ...string) {
	const budget, killAfter = 300 * time.Millisecond, time.Second
	n := startNode(t, "sleep-d:busy", append([]string{"--budget", budget.String(), "--kill-after", killAfter.String(), "--kill-grace", "1s"}, flags...)...)
	hang := n.child.enter(t)

	s := n.killedButAlive(time.Second, ioctlHang)

	d, err := faultmod.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Release(); err != nil {
		t.Fatal(err)
	}
	if code := n.agent.Wait(t, 30*time.Second); code != exitUnkillable {
		t.Fatalf("stallmon attach exited %d, want %d (unkillable, then dead)", code, exitUnkillable)
	}
	wantFields(t, n.agent.Events.Next("target_exited", time.Second), map[string]any{"signal": 9})
	for _, ev := range n.agent.Events.Rest() {
		if ev["msg"] == "node_fence" {
			t.Errorf("node fencing without --on-unkillable: %v", ev)
		}
	}
	toLastAlive := n.cluster.LastAliveBefore(s.stalled).Sub(hang)
	t.Logf(ResultPrefix+"unkillable%s: budget %v, kill_after %v: hang->last ALIVE %v, hang->peer hook %v, unkillable in %v, stack %v",
		trackerNote(flags), budget, killAfter, toLastAlive.Round(time.Millisecond), s.hookAt.Sub(hang).Round(time.Millisecond), s.unkillable["proc_state"], s.unkillable["stack"])
	if bound := budget + poll + interval + late; toLastAlive > bound {
		t.Errorf("last ALIVE %v after the hang, want <= budget+poll+interval(+%v) = %v", toLastAlive, late, bound)
	}
}

// A thread asleep in D that SIGKILL does end (TASK_KILLABLE, as a vfork
// parent or a page-cache read waits): stallmon reports it in its killable
// state, stops the heartbeat within budget+poll+interval, and at
// kill_after the kill ends it: the process is gone and stallmon exits 3,
// with no unkillable report.
func TestKillableSleepIsKilled(t *testing.T) {
	const budget, killAfter = 300 * time.Millisecond, 2 * time.Second
	n := startNode(t, "sleep-killable:busy", "--budget", budget.String(), "--kill-after", killAfter.String(), "--kill-grace", "1s")
	hang := n.child.enter(t)
	// The scenario is real before stallmon is judged on it: the main
	// thread is in D inside the ioctl.
	waitFor(t, n.child, 10*time.Second, func(s procStat) bool {
		return s.state == 'D' && strings.HasPrefix(s.syscall, syscallLine(n.child.fd, faultmod.IoctlSleepKillable))
	})

	stall := n.agent.Events.Next("stall", 30*time.Second)
	wantFields(t, stall, map[string]any{"tid": n.child.pid, "syscall": "ioctl", "fd": n.child.fd, "state": "killable"})
	stalled := n.cluster.WaitPacket("STALLED", 30*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled })
	hookAt := n.waitHook("vm stalled")
	kill := n.agent.Events.Next("kill", 30*time.Second)
	if el, _ := kill["elapsed_seconds"].(float64); el < killAfter.Seconds() {
		t.Errorf("killed at elapsed %vs, before kill_after %v", el, killAfter)
	}
	if code := n.agent.Wait(t, 30*time.Second); code != exitKilled {
		t.Fatalf("stallmon attach exited %d, want %d (killed)", code, exitKilled)
	}
	wantFields(t, n.agent.Events.Next("target_exited", time.Second), map[string]any{"signal": 9})
	for _, ev := range n.agent.Events.Rest() {
		if ev["msg"] == "unkillable" {
			t.Errorf("a killable sleeper reported unkillable: %v", ev)
		}
	}
	if !n.child.exitedWithin(t, 10*time.Second) {
		t.Fatalf("child alive 10s after stallmon's kill; state %c", readStat(t, n.child.pid).state)
	}
	err := n.child.cmd.Wait()
	if ws, ok := n.child.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL", err)
	}
	toLastAlive := n.cluster.LastAliveBefore(stalled).Sub(hang)
	t.Logf(ResultPrefix+"killable D: budget %v, kill_after %v: stalled at %.2fs in state %v, hang->last ALIVE %v, hang->peer hook %v, killed at %.2fs",
		budget, killAfter, stall["elapsed_seconds"], stall["state"], toLastAlive.Round(time.Millisecond),
		hookAt.Sub(hang).Round(time.Millisecond), kill["elapsed_seconds"])
	if bound := budget + poll + interval; toLastAlive > bound {
		t.Errorf("last ALIVE %v after the hang, want <= budget+poll+interval = %v", toLastAlive, bound)
	}
}

// trackerNote names the flags a RESULT line's run had, if any.
func trackerNote(flags []string) string {
	if len(flags) == 0 {
		return ""
	}
	return " (" + strings.Join(flags, " ") + ")"
}

// hangKind is how stallmon must see the child's main thread stuck.
type hangKind struct {
	syscalls      []string // the stall's syscall is one of these
	reason, state string   // the stall's
	stack         []string // in the unkillable report's kernel stack
}

// ioctlHang is a faultmod ioctl asleep in D, judged by elapsed time; the
// module's helpers are inlined into faultmod_ioctl.
var ioctlHang = hangKind{syscalls: []string{"ioctl"}, reason: "over_budget", state: "uninterruptible",
	stack: []string{"faultmod_ioctl"}}

// stuck is what killedButAlive saw, for the RESULT lines.
type stuck struct {
	stall, kill, unkillable map[string]any
	stalled                 heartbeat.Packet
	hookAt                  time.Time
}

// killedButAlive follows a target stuck in uninterruptible sleep: the
// stall, STALLED, the peer's hook, the kill, the unkillable report; then
// stallmon must stay for hold (it exits only once the target is gone),
// keeping the heartbeat off.
func (n *node) killedButAlive(hold time.Duration, h hangKind) stuck {
	t := n.t
	t.Helper()
	var s stuck
	s.stall = n.agent.Events.Next("stall", 30*time.Second)
	wantFields(t, s.stall, map[string]any{"tid": n.child.pid, "state": h.state, "reason": h.reason})
	if name, _ := s.stall["syscall"].(string); !slices.Contains(h.syscalls, name) {
		t.Fatalf("stall of syscall %q, want one of %q: %v", name, h.syscalls, s.stall)
	}
	s.stalled = n.cluster.WaitPacket("STALLED", 30*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled })
	if !slices.Contains(h.syscalls, s.stalled.Stall.Name) || s.stalled.Stall.TID != uint32(n.child.pid) {
		t.Fatalf("STALLED = %+v, want the main thread's %q", s.stalled.Stall, h.syscalls)
	}
	s.hookAt = n.waitHook("vm stalled")
	s.kill = n.agent.Events.Next("kill", 30*time.Second)
	s.unkillable = nextUnkillable(t, n, h.stack...)
	select {
	case <-n.agent.Done():
		t.Fatalf("stallmon exited %d while the target could not die", n.agent.Code())
	case <-time.After(hold):
		// Nothing happening is the point: no event marks its absence.
	}
	return s
}

// nextUnkillable waits for the unkillable report of the child's stuck main
// thread, whose kernel stack must name each of fns (substrings, so that
// "mutex_lock" matches __mutex_lock.constprop.0 too).
func nextUnkillable(t *testing.T, n *node, fns ...string) map[string]any {
	t.Helper()
	ev := n.agent.Events.NextWhere("unkillable report of the main thread", 30*time.Second, func(ev map[string]any) bool {
		return ev["msg"] == "unkillable" && ev["tid"] == float64(n.child.pid)
	})
	stack, _ := ev["stack"].(string)
	for _, fn := range fns {
		if !strings.Contains(stack, fn) {
			t.Fatalf("unkillable stack %q does not name %s", stack, fn)
		}
	}
	if ev["proc_state"] == "" || ev["wchan"] == nil {
		t.Fatalf("unkillable report lacks the state or wchan: %v", ev)
	}
	return ev
}

// eventTime is when stallmon logged ev (slog's "time"): the guest's
// clock, which the test shares.
func eventTime(t *testing.T, ev map[string]any) time.Time {
	t.Helper()
	s, _ := ev["time"].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%v event: time %q: %v", ev["msg"], s, err)
	}
	return at
}

// wantFields fails unless ev has each field with the given value (numbers
// compare as JSON decodes them).
func wantFields(t *testing.T, ev map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if i, ok := v.(int); ok {
			v = float64(i)
		}
		if ev[k] != v {
			t.Fatalf("%v event has %s=%v, want %v: %v", ev["msg"], k, ev[k], v, ev)
		}
	}
}

// kernelLogHas reports whether the kernel's log buffer holds s.
func kernelLogHas(t *testing.T, s string) bool {
	t.Helper()
	buf := make([]byte, 1<<20)
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		t.Fatalf("reading the kernel log: %v", err)
	}
	return strings.Contains(string(buf[:n]), s)
}

// requireScenario runs t only in the boot that make vmtest dedicates to
// the scenario (vmtest_scenario=name on the kernel command line, which
// the kernel hands to /init as an environment variable).
func requireScenario(t *testing.T, name string) {
	t.Helper()
	requireVM(t)
	if got := os.Getenv(ScenarioEnv); got != name {
		t.Skipf("runs only in make vmtest's %q boot (%s=%s), this is %q", name, ScenarioEnv, name, got)
	}
}
