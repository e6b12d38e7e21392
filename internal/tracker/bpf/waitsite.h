// Where a listed thread sleeps: its kernel stack, which the agent reads
// against the kernel's symbols to tell what the thread waits for (a
// socket's peer, a pipe, a file system, a lock...). See
// internal/waitsite for the classes and docs/budgets.md for the rules
// that use them.

#ifndef STALLMON_WAITSITE_H
#define STALLMON_WAITSITE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

// The innermost WAIT_FRAMES return addresses of a sleeping thread's
// kernel stack. The kernel drops the scheduler's own frames (schedule,
// io_schedule, mutex and rwsem slow paths: everything marked __sched), so
// the first frame is already the wait's; deeper frames are for the
// reports. The unwind stops once the buffer is full, so every frame costs
// the pass (internal/test/bench measures it): 12 holds a sendfile's path
// from the socket's wait down to splice, and a FUSE wait down to the VFS.
struct wait_site {
	__u64 ips[12];
	__s32 frames; // return addresses in ips, or the helper's error (< 0)
	__u32 taken;  // 1 if the stack was asked for: the thread was asleep
};

// Set before load: 0 takes no stacks at all (tracker.Options.NoWaitSites,
// for make bench to measure what they cost).
volatile const __u32 take_wait_sites = 1;

// capture_wait_site fills w for a thread asleep off a CPU. A thread on a
// CPU (or just leaving it) has a stack that changes under the unwinder,
// and a runnable one was only preempted: neither waits for anything, and
// neither is walked. Zombies have nothing left to wait in. Only the
// records the iterator writes come here, so quiet threads cost nothing.
static __always_inline void capture_wait_site(struct task_struct *task, __u32 state, __u32 on_cpu,
					      __u32 exit_state, struct wait_site *w)
{
	if (!take_wait_sites || state == 0 || on_cpu || exit_state)
		return;
	long n = bpf_get_task_stack(task, w->ips, sizeof(w->ips), 0);
	w->taken = 1;
	w->frames = n < 0 ? (__s32)n : (__s32)(n / sizeof(w->ips[0]));
}

#endif
