package tracker

// TaskState is what the scheduler says about a thread, finer than the
// letter in /proc: it separates a killable D from one that SIGKILL cannot
// end until the kernel returns, which decides whether fencing can work.
type TaskState uint8

const (
	StateRunning         TaskState = iota // on a CPU now
	StateRunnable                         // ready, waiting for a CPU
	StateInterruptible                    // S: any signal ends the wait
	StateKillable                         // D, but a fatal signal ends it
	StateUninterruptible                  // D: nothing ends it before the kernel returns
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
// modifier bits added later, which are masked out.
const (
	taskInterruptible   = 0x0001
	taskUninterruptible = 0x0002
	taskStopped         = 0x0004
	taskTraced          = 0x0008
	taskDead            = 0x0080
	taskWakekill        = 0x0100
	taskNoload          = 0x0400
	taskFrozen          = 0x8000 // 6.1+; earlier kernels flag the task PF_FROZEN
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

// asleep reports a thread sleeping in the kernel: it cannot be in user
// space, so saved registers that name a syscall are that of the sleep.
func (s TaskState) asleep() bool {
	switch s {
	case StateInterruptible, StateKillable, StateUninterruptible, StateIdle:
		return true
	}
	return false
}
