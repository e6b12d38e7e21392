// A task's scheduler state, flags and core dump, read across kernel
// versions, and the kernel's bits for them. The bits are the kernel's
// (include/linux/sched.h, include/linux/sched/signal.h), which exports them
// as macros only: nothing in BTF carries them. This header is the one copy
// stallmon keeps; the agent decodes thread_rec's state, flags and
// signal_flags with the same enums, generated into Go by bpf2go's -type.

#ifndef STALLMON_TASKSTATE_H
#define STALLMON_TASKSTATE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

// Task states (task->__state) as internal/tracker/taskstate.go reads them;
// stable since 5.14 apart from modifier bits added later, which it masks out.
enum task_state_bits {
	TASK_INTERRUPTIBLE = 0x0001,
	TASK_UNINTERRUPTIBLE = 0x0002,
	TASK_STOPPED_BIT = 0x0004, // __TASK_STOPPED
	TASK_TRACED_BIT = 0x0008,  // __TASK_TRACED
	TASK_DEAD_BIT = 0x0080,
	TASK_WAKEKILL = 0x0100,
	TASK_NOLOAD = 0x0400,
	// PREEMPT_RT (5.15+): blocked on a spinlock made a sleeping lock, an
	// uninterruptible wait; the state the task had before is kept apart.
	TASK_RTLOCK_WAIT_BIT = 0x1000,
	TASK_FROZEN_BIT = 0x8000, // 6.1+; earlier kernels flag the task PF_FROZEN
};

// Task flags (task->flags).
enum task_flag_bits {
	// A thread the kernel made inside a process (io_uring's workers): the
	// agent sets worker_flags from these.
	PF_IO_WORKER = 0x00000010,
	PF_USER_WORKER = 0x00004000, // 6.4+; before, the bit was PF_USED_ASYNC
	PF_FROZEN_OLD = 0x00010000,  // PF_FROZEN, before 6.1; later kernels set TASK_FROZEN
	// Killed by a signal: get_signal sets it before the thread exits.
	PF_SIGNALED = 0x00000400,
};

// Signal flags (task->signal->flags).
enum signal_flag_bits {
	SIGNAL_GROUP_EXIT = 0x00000004,
};

// An enum reaches BTF, and so bpf2go, only if something refers to it.
const enum task_state_bits *unused_task_state_bits __attribute__((unused));
const enum task_flag_bits *unused_task_flag_bits __attribute__((unused));
const enum signal_flag_bits *unused_signal_flag_bits __attribute__((unused));

// asleep_by_design is a thread state no state rule judges: an
// interruptible sleep, or TASK_IDLE (a long sleep its waker chose).
static __always_inline bool asleep_by_design(__u32 st)
{
	if (st & (TASK_DEAD_BIT | TASK_FROZEN_BIT | TASK_STOPPED_BIT | TASK_TRACED_BIT))
		return false;
	if (st & TASK_INTERRUPTIBLE)
		return true;
	return (st & TASK_UNINTERRUPTIBLE) && (st & TASK_NOLOAD) && !(st & TASK_WAKEKILL);
}

// asleep_in_kernel is a thread state that is a sleep in the kernel, by
// design or not: S, D, TASK_IDLE or an rtlock wait, but not a stop, a
// freeze or death, which have their own rules. A thread in user space is
// never asleep: its state is 0 (running or runnable).
static __always_inline bool asleep_in_kernel(__u32 st)
{
	if (st & (TASK_DEAD_BIT | TASK_FROZEN_BIT | TASK_STOPPED_BIT | TASK_TRACED_BIT))
		return false;
	return st & (TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE | TASK_RTLOCK_WAIT_BIT);
}

// Kernels before 5.14 name the field "state" and make it a long.
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

// Before 5.16 the core dump state hung off the mm.
struct mm_struct___pre516 {
	struct core_state *core_state;
} __attribute__((preserve_access_index));

// t is a trusted BTF pointer in both: plain loads.
static __always_inline __u32 task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return t->__state;
	return ((struct task_struct___pre514 *)t)->state;
}

static __always_inline bool dumping_core(struct task_struct *t)
{
	if (bpf_core_field_exists(struct signal_struct, core_state))
		return t->signal->core_state != NULL;
	struct mm_struct___pre516 *mm = (void *)BPF_CORE_READ(t, mm);
	return mm && BPF_CORE_READ(mm, core_state) != NULL;
}

#endif
