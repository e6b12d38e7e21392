package e2e

import (
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// Stopping stallmon never contradicts the heartbeat. A stall went out as
// STALLED (final under the default --late-return=fence, with a takeover
// deadline a minute away); SIGTERM then must not end on LEAVING, which
// would make the node "left" beside a peer that took over: stallmon
// fences first (kill, FENCED) and exits 3.
func TestStopAfterStalledFencesFirst(t *testing.T) {
	stopFencesFirst(t, false)
}

// The same with the stall over its budget but not yet declared: SIGTERM
// comes after the budget ran out and before the next poll (a 10 s poll
// interval, the first poll at attach). The last look at stop declares it:
// STALLED, then the kill and FENCED, never LEAVING.
func TestStopOverBudgetUndeclaredIsStalled(t *testing.T) {
	if sampledTracker() {
		// It times a syscall from the first poll that sees it: the last
		// look at the stop is that first poll, so nothing is over budget
		// yet (trackers.md: it sees a hang one poll interval later).
		t.Skip("the sampled tracker cannot know a syscall over budget before a second poll sees it")
	}
	stopFencesFirst(t, true)
}

func stopFencesFirst(t *testing.T, undeclared bool) {
	privtest.Require(t)
	fusehang.Require(t)
	const budget = 300 * time.Millisecond
	poll := 100 * time.Millisecond
	if undeclared {
		poll = 10 * time.Second
	}
	c := newCluster(t)
	w := startWorkload(t)
	fs := fusehang.Mount(t, fusehang.Options{HonourInterrupts: true})
	agent := startStallmon(t, append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json", "--metrics-addr", "",
		"--node-id", "stop", "--interval", "100ms", "--poll-interval", poll.String(),
		"--budget", budget.String(), "--kill-after", "60s", "--kill-grace", "2s"}, c.GroupFlags()...)...)
	attached := agent.Events.Next("attached", 10*time.Second)
	c.WaitPacket("ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })

	tid, issued := readHung(t, w, fs.File)
	if undeclared {
		// The budget runs out; the next poll is 10 s after attach.
		for time.Since(issued) < budget+200*time.Millisecond {
			time.Sleep(10 * time.Millisecond)
		}
		if since := time.Since(eventTime(t, attached)); since > poll-2*time.Second {
			t.Fatalf("%v since attach: too close to the next poll for this test", since)
		}
		for _, tp := range c.Seen() {
			if tp.P.State == heartbeat.StateStalled {
				t.Fatalf("STALLED before the stop: the poll came early")
			}
		}
	} else {
		stalled := c.WaitPacket("STALLED", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled })
		if stalled.TakeoverDeadline == 0 {
			t.Fatalf("STALLED without a takeover deadline: %+v", stalled)
		}
	}
	stopAt := time.Now()
	if err := agent.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := agent.Wait(t, 15*time.Second)
	stopped := time.Since(stopAt)
	if code != exitKilled {
		t.Errorf("stallmon exited %d after SIGTERM with a declared stall, want %d (fenced first)", code, exitKilled)
	}
	if undeclared {
		c.WaitPacket("STALLED", 5*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled && p.Stall.TID == uint32(tid) })
	}
	c.WaitPacket("FENCED", 5*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateFenced })
	for _, tp := range c.Seen() {
		if tp.P.State == heartbeat.StateLeaving {
			t.Errorf("LEAVING after STALLED: %+v", tp.P)
		}
	}
	if !processExited(t, w.PID) {
		t.Errorf("the workload %d still runs after stallmon stopped", w.PID)
	}
	var kill map[string]any
	for _, ev := range agent.Events.Rest() {
		if ev["msg"] == "kill" {
			kill = ev
		}
	}
	if kill == nil {
		t.Fatal("no kill event")
	}
	wantFields(t, "kill", kill, map[string]any{"tid": tid, "reason": "stop", "syscall": "read"})
	t.Logf("SIGTERM to exit: %v (kill at elapsed %vs)", stopped.Round(time.Millisecond), kill["elapsed_seconds"])
}

// A stall stallmon will never kill (a SIGSTOPped target: the stopped
// rule never kills, as gdb, gcore or CRIU may hold it) went out as
// STALLED. Stopping stallmon must not turn it into LEAVING, which peers
// never fail over, nor into a kill the rule forbids: it ends on STALLED
// (stop_stalled) and leaves the target as it is.
func TestStopWithStallItNeverKillsStaysStalled(t *testing.T) {
	privtest.Require(t)
	c := newCluster(t)
	w := startWorkload(t)
	agent := startStallmon(t, append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json",
		"--node-id", "stopped", "--interval", "100ms", "--metrics-addr", ""}, c.GroupFlags()...)...)
	agent.Events.Next("attached", 10*time.Second)
	c.WaitPacket("ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })
	if err := syscall.Kill(w.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(w.PID, syscall.SIGCONT) })
	c.WaitPacket("STALLED", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled })
	if err := agent.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := agent.Wait(t, 10*time.Second); code != exitOK {
		t.Errorf("stallmon exited %d, want %d", code, exitOK)
	}
	var stopEv map[string]any
	for _, ev := range agent.Events.Rest() {
		switch ev["msg"] {
		case "stop_stalled":
			stopEv = ev
		case "kill":
			t.Errorf("a kill the stopped rule forbids: %v", ev)
		}
	}
	if stopEv == nil || stopEv["reason"] != "stopped" {
		t.Errorf("stop_stalled event %v, want one with reason stopped", stopEv)
	}
	for _, tp := range c.Seen() {
		if tp.P.State == heartbeat.StateLeaving || tp.P.State == heartbeat.StateFenced {
			t.Errorf("%v after STALLED of a target left stopped: %+v", tp.P.State, tp.P)
		}
	}
	if processExited(t, w.PID) {
		t.Error("the stopped target was killed")
	}
}

// A declared stall fenced at stop, whose target cannot die: its read is
// held by a FUSE server that ignores the interrupt the SIGKILL becomes,
// so the thread stays in D. The stop's bound (kill grace, the report,
// one poll) runs out with the target alive: stallmon reports it
// unkillable, goes silent (no FENCED, no LEAVING) and exits 4, as
// attach --help, services.md and wire.md say; before, it exited 0.
func TestStopFenceUnkillableExits4(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	const (
		budget = 300 * time.Millisecond
		grace  = time.Second
		poll   = 100 * time.Millisecond
	)
	c := newCluster(t)
	w := startWorkload(t)
	// Mounted after the workload started, so that its cleanup (which
	// answers the read) runs before the workload's, which waits for the
	// workload to exit.
	fs := fusehang.Mount(t, fusehang.Options{HonourInterrupts: false})
	agent := startStallmon(t, append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json", "--metrics-addr", "",
		"--node-id", "stop-unkillable", "--interval", "100ms", "--poll-interval", poll.String(),
		"--budget", budget.String(), "--kill-after", "60s", "--kill-grace", grace.String()}, c.GroupFlags()...)...)
	agent.Events.Next("attached", 10*time.Second)
	c.WaitPacket("ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })

	tid, _ := readHung(t, w, fs.File)
	c.WaitPacket("STALLED", 10*time.Second, func(p heartbeat.Packet) bool {
		return p.State == heartbeat.StateStalled && p.Stall.TID == uint32(tid)
	})
	stopAt := time.Now()
	if err := agent.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := agent.Wait(t, grace+15*time.Second)
	t.Logf("SIGTERM to exit: %v", time.Since(stopAt).Round(time.Millisecond))
	if code != exitUnkillable {
		t.Errorf("stallmon exited %d after SIGTERM with an unkillable declared stall, want %d", code, exitUnkillable)
	}
	// The target really could not die: the read is still held, its
	// interrupt ignored.
	if st := fs.Stats(); st.Interrupts < 1 || st.Pending != 1 {
		t.Errorf("FUSE server stats %+v, want the read held and its interrupt seen", st)
	}
	if processExited(t, w.PID) {
		t.Error("target exited while its read was held")
	}
	var kill, unk map[string]any
	for _, ev := range agent.Events.Rest() {
		switch ev["msg"] {
		case "kill":
			kill = ev
		case "unkillable":
			if ev["tid"] == float64(tid) {
				unk = ev
			}
		}
	}
	if kill == nil || unk == nil {
		t.Fatalf("kill event %v, unkillable event for the reader %v: want both", kill, unk)
	}
	wantFields(t, "kill", kill, map[string]any{"tid": tid, "reason": "stop", "syscall": "read"})
	wantFields(t, "unkillable", unk, map[string]any{"pid": w.PID, "tid": tid, "state": "uninterruptible"})
	for _, tp := range c.Seen() {
		if tp.P.State == heartbeat.StateLeaving || tp.P.State == heartbeat.StateFenced {
			t.Errorf("%v after an unkillable stop, want silence: %+v", tp.P.State, tp.P)
		}
	}
}
