// Threads whose syscall entry could not be recorded.
//
// bpf_task_storage_get returns NULL when it cannot allocate a thread's
// storage (GFP_ATOMIC, under memory pressure), and also while the
// kernel's per-CPU task storage lock (bpf_task_storage_busy) is held on
// the CPU the thread runs on: on 6.1 even for a thread that has storage,
// from 6.2 for one that has none yet. The syscall then runs with nothing
// recorded, and nothing the tracker keeps says what the thread is doing:
// its word is 0 or stale, its saved registers are only a lower bound. So
// the thread is marked here until its next recorded sys_enter, and the
// agent treats it as unknown meanwhile.

#ifndef STALLMON_UNRECORDED_H
#define STALLMON_UNRECORDED_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "build.h"
#include "once.h"
#include "regs.h"

// Marks are rare: a preallocated hash keyed by tid, written only when an
// entry is lost. Threads lost beyond its size are counted in
// unrecorded_unmarked, which names none of them.
#define UNRECORDED_MAX 1024

struct unrecorded {
	__u64 word;       // the latest unrecorded syscall, packed as struct inflight.word
	__u64 since;      // bpf_ktime_get_ns() of the first unrecorded entry
	__u64 start_time; // task->start_time: a reused tid is not the thread that lost
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, UNRECORDED_MAX);
	__type(key, __u32);
	__type(value, struct unrecorded);
} unrecorded SEC(".maps");

// Entries in unrecorded. sys_enter reads it on every syscall of the
// target and touches the map only while it is nonzero: one load in the
// normal case.
__u64 unrecorded_threads = 0;
// Unrecorded entries that could not be marked (the map was full).
__u64 unrecorded_unmarked = 0;

// mark_unrecorded notes that the current thread entered the syscall of
// ctx without a record.
static __always_inline void mark_unrecorded(struct bpf_raw_tracepoint_args *ctx, struct task_struct *task)
{
	__u32 tid = KREAD(task, pid);
	__u64 now = bpf_ktime_get_ns();
	__u64 word = word_at(task, ctx->args[1], now);
	struct unrecorded *u = bpf_map_lookup_elem(&unrecorded, &tid);
	__u64 start_time = KREAD(task, start_time);

	if (u && u->start_time == start_time) {
		WRITE_ONCE(u->word, word);
		return;
	}
	struct unrecorded fresh = {.word = word, .since = now, .start_time = start_time};
	if (u) {
		// A thread that was lost and left the target without exiting
		// through it: its tid now names this thread.
		bpf_map_update_elem(&unrecorded, &tid, &fresh, BPF_EXIST);
		return;
	}
	if (bpf_map_update_elem(&unrecorded, &tid, &fresh, BPF_NOEXIST) == 0)
		__sync_fetch_and_add(&unrecorded_threads, 1);
	else
		__sync_fetch_and_add(&unrecorded_unmarked, 1);
}

// clear_unrecorded drops the mark of the current thread, whose entry has
// now been recorded, or that exits. Called after the word is written, so
// that a reader sees the mark or the new word, never neither. It finds
// the thread itself, past the test: the caller keeps no task pointer
// alive for it, which costs sys_enter a register spill.
static __always_inline void clear_unrecorded(void)
{
	if (!READ_ONCE(unrecorded_threads))
		return;
	__u32 tid = KREAD(current_task(), pid);
	if (!bpf_map_lookup_elem(&unrecorded, &tid))
		return;
	if (bpf_map_delete_elem(&unrecorded, &tid) == 0)
		__sync_fetch_and_sub(&unrecorded_threads, 1);
}

// read_unrecorded is the iterator's view of a thread's mark: both 0 if
// none.
static __always_inline void read_unrecorded(struct task_struct *task, __u64 *word, __u64 *since)
{
	if (!READ_ONCE(unrecorded_threads))
		return;
	__u32 tid = task->pid;
	struct unrecorded *u = bpf_map_lookup_elem(&unrecorded, &tid);

	if (!u || u->start_time != task->start_time)
		return;
	*word = READ_ONCE(u->word);
	*since = u->since;
}

#endif
