// Where a listed thread sleeps: its kernel stack, which the agent reads
// against the kernel's symbols to tell what the thread waits for (a
// socket's peer, a pipe, a file system, a lock...). See
// internal/waitsite for the classes and docs/budgets.md for the rules
// that use them.

#ifndef STALLMON_WAITSITE_H
#define STALLMON_WAITSITE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

// The 12 innermost return addresses of a sleeping thread's kernel stack. The kernel drops the scheduler's own frames (schedule,
// io_schedule, mutex and rwsem slow paths: everything marked __sched), so
// the first frame is already the wait's; deeper frames are for the
// reports. The unwind stops once the buffer is full, so every frame costs
// the pass (internal/test/bench measures it): 12 holds a sendfile's path
// from the socket's wait down to splice, and a FUSE wait down to the VFS.
struct wait_site {
	__u64 ips[12];
	__s32 frames;   // return addresses in ips, or the helper's error (< 0)
	__u32 taken;    // 1 if the stack was asked for: the thread was asleep
	__u64 switches; // the thread's context switches when it was taken
};

// Set before load: 0 takes no stacks at all (tracker.Options.NoWaitSites,
// for make bench to measure what they cost).
volatile const __u32 take_wait_sites = 1;

// The stack each listed sleeper had at its latest walk, with its
// context-switch count then. A thread asleep with the same count has not
// slept anew since (a wake-up, then a sleep, switches it out once more):
// it is in the same sleep, on the same stack, which is copied instead of
// walked, so a service's long sleepers are walked once, not at every
// pass. Not task storage: on kernels with a per-CPU task storage lock
// (bpf_task_storage_busy: 6.1 has one, 6.18 none), the iterator holding
// it longer would make a target thread's own sys_enter fail on that CPU,
// and the thread unknown (unrecorded.h). A hash, allocated as it fills, keyed by tid and start
// time (a reused tid is another key), emptied by thread_exit; should an
// entry outlive its thread (it left a cgroup first), a full table only
// means walking again.
#ifdef STALLMON_MINIMAL
// Linux 5.10 warns (WARN_ONCE "trace type BPF program uses run-time
// allocation": a kernel splat, a panic where panic_on_warn is set) when a
// tracing program uses a hash allocated at run time; it did at the
// minimal object's first load in the 5.10 VM. So the minimal object
// preallocates it, smaller, as a full table only costs walks.
#define WAIT_CACHE_MAX 4096
#define WAIT_CACHE_FLAGS 0
#else
#define WAIT_CACHE_MAX 16384
#define WAIT_CACHE_FLAGS BPF_F_NO_PREALLOC
#endif

struct wait_key {
	__u32 tid;
	__u32 pad;
	__u64 start_time;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, WAIT_CACHE_FLAGS);
	__uint(max_entries, WAIT_CACHE_MAX);
	__type(key, struct wait_key);
	__type(value, struct wait_site);
} wait_cache SEC(".maps");

// forget_wait_site drops an exiting thread's cached stack.
static __always_inline void forget_wait_site(struct task_struct *task)
{
	struct wait_key k = {.tid = BPF_CORE_READ(task, pid), .start_time = BPF_CORE_READ(task, start_time)};

	bpf_map_delete_elem(&wait_cache, &k);
}

// capture_wait_site fills w for a thread asleep off a CPU. A thread on a
// CPU (or just leaving it) has a stack that changes under the unwinder,
// and a runnable one was only preempted: neither waits for anything, and
// neither is walked. Zombies have nothing left to wait in. Only the
// records the iterator writes come here, so quiet threads cost nothing.
// switches is the thread's context-switch count, read before the call:
// should it sleep anew in between, the cache holds an older count than
// the stack's, and the next pass walks again.
static __always_inline void capture_wait_site(struct task_struct *task, __u32 state, __u32 on_cpu,
					      __u32 exit_state, __u64 switches, struct wait_site *w)
{
	if (!take_wait_sites || state == 0 || on_cpu || exit_state)
		return;
	struct wait_key k = {.tid = task->pid, .start_time = task->start_time};
	struct wait_site *c = bpf_map_lookup_elem(&wait_cache, &k);
	if (c && c->frames > 0 && c->switches == switches) {
		*w = *c;
		return;
	}
	long n = bpf_get_task_stack(task, w->ips, sizeof(w->ips), 0);
	w->taken = 1;
	w->frames = n < 0 ? (__s32)n : (__s32)(n / sizeof(w->ips[0]));
	w->switches = switches;
	if (w->frames > 0)
		bpf_map_update_elem(&wait_cache, &k, w, BPF_ANY);
}

#endif
