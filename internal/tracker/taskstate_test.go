package tracker

import "testing"

// The kernel's task states (include/linux/sched.h), written out here as
// the kernel defines them, decode to what the judge needs: which sleeps
// a signal ends, which are D, which are stops. A PREEMPT_RT thread blocked
// on an rtlock (TASK_RTLOCK_WAIT, its own state) waits like D.
func TestDecodeState(t *testing.T) {
	for _, c := range []struct {
		name   string
		raw    uint32
		onCPU  bool
		want   TaskState
		asleep bool
	}{
		{"TASK_RUNNING on a CPU", 0x0, true, StateRunning, false},
		{"TASK_RUNNING waiting for one", 0x0, false, StateRunnable, false},
		{"TASK_INTERRUPTIBLE", 0x1, false, StateInterruptible, true},
		{"TASK_INTERRUPTIBLE|TASK_FREEZABLE", 0x2001, false, StateInterruptible, true},
		{"TASK_UNINTERRUPTIBLE", 0x2, false, StateUninterruptible, true},
		{"TASK_KILLABLE", 0x102, false, StateKillable, true},
		{"TASK_IDLE", 0x402, false, StateIdle, true},
		{"TASK_RTLOCK_WAIT", 0x1000, false, StateUninterruptible, true},
		{"TASK_STOPPED", 0x104, false, StateStopped, false},
		{"TASK_TRACED", 0x8, false, StateTraced, false},
		{"TASK_FROZEN", 0x8000, false, StateFrozen, false},
		{"TASK_DEAD", 0x80, false, StateDead, false},
		{"TASK_NEW", 0x800, false, StateOther, false},
	} {
		if got := decodeState(c.raw, c.onCPU); got != c.want {
			t.Errorf("%s (%#x): decoded %v, want %v", c.name, c.raw, got, c.want)
		}
		if got := decodeState(c.raw, c.onCPU).Asleep(); got != c.asleep {
			t.Errorf("%s (%#x): asleep %v, want %v", c.name, c.raw, got, c.asleep)
		}
	}
	// The bit comes from bpf/taskstate.h through bpf2go, as the others.
	if taskRtlockWait != 0x1000 {
		t.Errorf("TASK_RTLOCK_WAIT from the generated enum is %#x, the kernel's is 0x1000", taskRtlockWait)
	}
}
