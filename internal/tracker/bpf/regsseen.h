// The registers the thread walk last read of a thread asleep off its CPU,
// with the thread's context-switch count then: while the count has not
// moved and the thread is still off its CPU, it has not run since, so its
// saved registers are the same (the kernel's /proc/PID/syscall trusts
// them on the same test: task_current_syscall reads them between two
// wait_task_inactive calls that must return the same count).
//
// Why: the saved registers sit at the top of each thread's kernel stack,
// a mapping of its own per thread. Reading them was three quarters of the
// thread walk's time at 10,000 threads (perf: the load of orig_ax after
// bpf_task_pt_regs, a cache and TLB miss per thread per poll). The copy
// is used only to leave a quiet thread out: a thread its copy does not
// show quiet is read afresh, as are the fds of a syscall quiet on some fd
// kinds only (quiet.h), so no verdict rests on it but "quiet".
//
// The copies sit in an array read in the walk's order, the Nth thread of
// a pass at slot N: sequential, where per-thread storage measured as dear
// as the registers (a cache miss or two per thread). A slot names its
// thread by task pointer and start time, which no other thread shares
// (a freed task_struct's next owner starts later); a thread found at
// another slot, after threads before it exited, is read afresh once.
// Used by the full object's thread walk (6.8+) only; the minimal object
// declares one slot, for the objects to share their maps and globals.

#ifndef STALLMON_REGSSEEN_H
#define STALLMON_REGSSEEN_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "once.h"

// Slots for the threads of one pass; those past it are read afresh each
// pass. 32,768 threads (the default pid_max) in 1 MiB.
#ifdef STALLMON_MINIMAL
#define REGS_SEEN_SLOTS 1
#else
#define REGS_SEEN_SLOTS 32768
#endif

struct regs_seen {
	__u64 task;       // the thread's task_struct, as a number
	__u64 start_time; // its task->start_time
	__u64 switches;   // its nvcsw + nivcsw before the registers were read
	__s32 nr;         // thread_rec.regs_nr read then
	__u32 abi;        // thread_rec.regs_abi read then
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, REGS_SEEN_SLOTS);
	__type(key, __u32);
	__type(value, struct regs_seen);
} regs_seen SEC(".maps");

// The next slot of the pass regs_seen_pass (quiet_pass when it was taken):
// one reader runs the walk at a time, so plain updates are exact.
__u32 regs_seen_next = 0;
__u64 regs_seen_pass = 0;

// The target of order_loads.
__u32 regs_seen_fence = 0;

// Threads left out on a copy of their registers: one reader runs the
// walk at a time, so a plain add is exact.
__u64 regs_seen_reused = 0;

// order_loads keeps the loads before it before the loads after it, where
// the CPU may reorder loads (arm64): a BPF atomic that fetches is fully
// ordered, and it fetches only if its result is used: unused, clang
// emits a plain atomic or, which the arm64 JIT makes relaxed (stset),
// ordering nothing (TestRegsFenceFetchesOnArm64). x86 never reorders
// loads with loads; the compiler must not either. The minimal object
// never keeps a copy, and its arm64 kernels (5.10) have no fetching
// atomics.
static __always_inline void order_loads(void)
{
#if defined(__TARGET_ARCH_arm64) && !defined(STALLMON_MINIMAL)
	__u32 old = __sync_fetch_and_add(&regs_seen_fence, 0);
	barrier_var(old);
#endif
	asm volatile("" ::: "memory");
}

// switch_count moves each time t leaves a CPU (__schedule), before its
// on_cpu is cleared (finish_task_switch): read after on_cpu, it counts
// every run that ended.
static __always_inline __u64 switch_count(struct task_struct *t)
{
	return t->nvcsw + t->nivcsw;
}

// regs_seen_slot is the slot of the pass's next thread, or NULL past the
// last one.
static __always_inline struct regs_seen *regs_seen_slot(__u64 pass)
{
	if (regs_seen_pass != pass) {
		regs_seen_pass = pass;
		regs_seen_next = 0;
	}
	__u32 i = regs_seen_next++;
	return bpf_map_lookup_elem(&regs_seen, &i);
}

// regs_seen_valid says whether s holds t's registers and t has not run
// since they were read.
static __always_inline bool regs_seen_valid(struct regs_seen *s, struct task_struct *t)
{
	if (s->task != (__u64)t || s->start_time != t->start_time || READ_ONCE(t->on_cpu))
		return false;
	order_loads();
	return switch_count(t) == s->switches;
}

// regs_seen_begin returns t's count to fill s with once t's registers are
// read, and false when t is on a CPU (its registers are moving).
static __always_inline bool regs_seen_begin(struct regs_seen *s, struct task_struct *t, __u64 *switches)
{
	if (READ_ONCE(t->on_cpu))
		return false;
	order_loads();
	*switches = switch_count(t);
	order_loads();
	return true;
}

// regs_seen_fill makes s the copy of t's registers nr and abi, read after
// regs_seen_begin returned switches.
static __always_inline void regs_seen_fill(struct regs_seen *s, struct task_struct *t, __u64 switches, __s64 nr,
					   __u32 abi)
{
	s->task = (__u64)t;
	s->start_time = t->start_time;
	s->switches = switches;
	s->nr = nr;
	s->abi = abi;
}

#endif
