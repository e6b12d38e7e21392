package tracker

import "github.com/stallmon/stallmon/internal/tracker/gen"

// TaskState is what the scheduler says about a thread, finer than the
// letter in /proc: it separates a killable D from one that SIGKILL cannot
// end until the kernel returns, which decides whether fencing can work.
type TaskState uint8

const (
	StateRunning         TaskState = iota // on a CPU now
	StateRunnable                         // ready, waiting for a CPU
	StateInterruptible                    // S: any signal ends the wait
	StateKillable                         // D, but a fatal signal ends it
	StateUninterruptible                  // D: nothing ends it before the kernel returns (an rtlock wait too)
	StateIdle                             // D without load contribution (TASK_IDLE)
	StateStopped                          // job-control stop
	StateTraced                           // stopped by a tracer
	StateDead                             // exiting
	StateFrozen                           // held by the cgroup freezer (TASK_FROZEN)
	StateOther
)

var stateNames = [...]string{
	StateRunning:         "running",
	StateRunnable:        "runnable",
	StateInterruptible:   "interruptible",
	StateKillable:        "killable",
	StateUninterruptible: "uninterruptible",
	StateIdle:            "idle",
	StateStopped:         "stopped",
	StateTraced:          "traced",
	StateDead:            "dead",
	StateFrozen:          "frozen",
	StateOther:           "other",
}

func (s TaskState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "other"
}

// Kernel TASK_* bits (include/linux/sched.h); stable since 5.14 apart from
// modifier bits added later, which are masked out. Generated from
// bpf/taskstate.h, whose asleep_by_design judges the same bits.
const (
	taskInterruptible   = uint32(gen.StallmonTaskStateBitsTASK_INTERRUPTIBLE)
	taskUninterruptible = uint32(gen.StallmonTaskStateBitsTASK_UNINTERRUPTIBLE)
	taskStopped         = uint32(gen.StallmonTaskStateBitsTASK_STOPPED_BIT)
	taskTraced          = uint32(gen.StallmonTaskStateBitsTASK_TRACED_BIT)
	taskDead            = uint32(gen.StallmonTaskStateBitsTASK_DEAD_BIT)
	taskWakekill        = uint32(gen.StallmonTaskStateBitsTASK_WAKEKILL)
	taskNoload          = uint32(gen.StallmonTaskStateBitsTASK_NOLOAD)
	taskRtlockWait      = uint32(gen.StallmonTaskStateBitsTASK_RTLOCK_WAIT_BIT) // PREEMPT_RT
	taskFrozen          = uint32(gen.StallmonTaskStateBitsTASK_FROZEN_BIT)      // 6.1+; earlier kernels flag the task PF_FROZEN
)

func decodeState(raw uint32, onCPU bool) TaskState {
	switch {
	case raw == 0 && onCPU:
		return StateRunning
	case raw == 0:
		return StateRunnable
	case raw&taskDead != 0:
		return StateDead
	case raw&taskFrozen != 0:
		return StateFrozen
	case raw&taskTraced != 0:
		return StateTraced
	case raw&taskStopped != 0:
		return StateStopped
	case raw&taskRtlockWait != 0:
		// Blocked on a spinlock that PREEMPT_RT made a sleeping lock:
		// no signal ends the wait, as for D.
		return StateUninterruptible
	case raw&taskInterruptible != 0:
		return StateInterruptible
	case raw&taskUninterruptible != 0 && raw&taskWakekill != 0:
		return StateKillable
	case raw&taskUninterruptible != 0 && raw&taskNoload != 0:
		return StateIdle
	case raw&taskUninterruptible != 0:
		return StateUninterruptible
	}
	return StateOther
}

// Asleep reports a thread sleeping in the kernel (S, D or TASK_IDLE; not
// stopped, traced, frozen or dead): it cannot be in user space, so saved
// registers that name a syscall are that of the sleep, and with none it
// sleeps outside any syscall (a page fault).
func (s TaskState) Asleep() bool {
	switch s {
	case StateInterruptible, StateKillable, StateUninterruptible, StateIdle:
		return true
	}
	return false
}
