// A task's scheduler state, flags and core dump, read across kernel
// versions, and the kernel's bits for them (include/linux/sched.h,
// include/linux/sched/signal.h), which it exports as macros only.

#ifndef STALLMON_TASKSTATE_H
#define STALLMON_TASKSTATE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

// Task states (include/linux/sched.h) as internal/tracker/taskstate.go reads them.
#define TASK_INTERRUPTIBLE 0x0001
#define TASK_UNINTERRUPTIBLE 0x0002
#define TASK_STOPPED_BITS 0x000c // __TASK_STOPPED | __TASK_TRACED
#define TASK_DEAD_BIT 0x0080
#define TASK_WAKEKILL 0x0100
#define TASK_NOLOAD 0x0400
#define TASK_FROZEN_BIT 0x8000
#define PF_FROZEN_OLD 0x00010000
#define SIGNAL_GROUP_EXIT 0x00000004

// asleep_by_design is a thread state no state rule judges: an
// interruptible sleep, or TASK_IDLE (a long sleep its waker chose).
static __always_inline bool asleep_by_design(__u32 st)
{
	if (st & (TASK_DEAD_BIT | TASK_FROZEN_BIT | TASK_STOPPED_BITS))
		return false;
	if (st & TASK_INTERRUPTIBLE)
		return true;
	return (st & TASK_UNINTERRUPTIBLE) && (st & TASK_NOLOAD) && !(st & TASK_WAKEKILL);
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
