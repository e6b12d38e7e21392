// Threads that die inside a syscall: the kernel killed them there (an
// oops), and nothing else would show it, since the thread and its entry
// vanish. thread_exit records them in a ring the agent reads at each
// snapshot.

#ifndef STALLMON_DEATHS_H
#define STALLMON_DEATHS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "build.h"
#include "once.h"
#include "regs.h"
#include "taskstate.h"
#include "word.h"

// The exit and exit_group numbers of each ABI, indexed by enum abi, set
// before load from the syscall tables: a 32-bit thread ends through its
// own ABI's (ia32's exit is 1, write on amd64; aarch32's exit_group 248),
// and x32's are the native ones once sys_enter has dropped bit 30. An
// index no ABI uses holds a number no word carries. They are the only
// syscalls a thread may end inside. Every other syscall passes sys_exit
// before its thread can die (a fatal signal is acted on after sys_exit,
// seccomp kills before sys_enter), so a thread that exits with any other
// syscall in flight was killed by the kernel inside it: an oops. Its
// syscall will never return, and nothing else would show it, since the
// thread and its entry vanish.
volatile const __u32 nr_exit[1 << ABI_BITS] = {};
volatile const __u32 nr_exit_group[1 << ABI_BITS] = {};

// The last DEATHS threads that died inside a syscall, in a ring indexed by
// deaths_total; seq is written last, so a reader that finds the seq it
// expects has the whole record.
enum death_ring {
	DEATHS = 16,
};

// An enum reaches BTF, and so bpf2go, only if something refers to it.
const enum death_ring *unused_death_ring __attribute__((unused));

struct death {
	__u64 seq;       // 1 + this death's index in deaths_total
	__u64 word;      // the in-flight word at death
	__u64 arg0;
	__u64 at;        // bpf_ktime_get_ns() at death
	__u32 tid;
	__u32 exit_code; // task->exit_code: the signal the kernel killed it with
	__u32 tgid;
	__u8 comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DEATHS);
	__type(key, __u32);
	__type(value, struct death);
} deaths SEC(".maps");

__u64 deaths_total = 0;

// next_death takes the next index in deaths_total. The minimal object's
// kernels have no atomic fetch-and-add (x86 before 5.12, arm64 before
// 5.18), only a plain atomic add: two deaths at the same instant on two
// CPUs may then take the same index, and one record overwrites the
// other, while deaths_total still counts both. The agent reads the
// missing record as a lost one (internal/tracker/deaths.go).
static __always_inline __u64 next_death(void)
{
#ifdef STALLMON_MINIMAL
	__u64 seq = READ_ONCE(deaths_total);

	__sync_fetch_and_add(&deaths_total, 1);
	return seq;
#else
	return __sync_fetch_and_add(&deaths_total, 1);
#endif
}

// record_death notes a thread that exits with a syscall other than its
// ABI's exit or exit_group in flight (see nr_exit). A thread a signal
// killed (PF_SIGNALED) is not inside a syscall, whatever word or
// registers say: a signal is acted on only on the way back to user space,
// where a syscall that failed with ENOSYS still leaves the registers
// looking as if it were in progress (see record_death_regs). An oops never
// sets the flag. task is a trusted BTF pointer (the current task).
static __always_inline void record_death(struct task_struct *task, __u64 word, __u64 arg0)
{
	__u32 nr = word & NR_MASK;
	__u32 abi = (word >> ABI_SHIFT) & ((1 << ABI_BITS) - 1);

	if (word == 0 || nr == nr_exit[abi] || nr == nr_exit_group[abi] || (KREAD(task, flags) & PF_SIGNALED))
		return;
	__u64 seq = next_death();
	__u32 slot = seq % DEATHS;
	struct death *d = bpf_map_lookup_elem(&deaths, &slot);
	if (!d)
		return;
	d->word = word;
	d->arg0 = arg0;
	d->at = bpf_ktime_get_ns();
	d->tid = BPF_CORE_READ(task, pid);
	d->tgid = BPF_CORE_READ(task, tgid);
	d->exit_code = BPF_CORE_READ(task, exit_code);
	bpf_probe_read_kernel_str(d->comm, sizeof(d->comm), task->comm);
	WRITE_ONCE(d->seq, seq + 1);
}

// record_death_regs is record_death for a thread the tracker never saw
// enter a syscall (the sampled tracker, or a syscall in flight since
// before attach): the registers name the syscall it dies in, its entry
// time is unknown and recorded as now. Only on x86, whose entry code marks
// a syscall in progress (ax = -ENOSYS) until it returns, unless it returns
// ENOSYS itself, for which record_death's PF_SIGNALED check stands; arm64
// keeps syscallno after the return, so a thread killed by a signal just
// after one would look killed inside it.
static __always_inline void record_death_regs(struct task_struct *task)
{
#if defined(__TARGET_ARCH_x86)
	struct pt_regs *regs = task_regs(task);

	if (!regs || !regs_in_syscall(regs))
		return;
	__u64 nr = (__u64)regs_nr(regs);

	record_death(task, word_at(task, nr, bpf_ktime_get_ns()), regs_arg0(regs, task_abi(task, nr)));
#endif
}

#endif
