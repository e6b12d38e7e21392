// Whether a pass of the task iterator walked the whole thread list of its
// process, or stopped early.
//
// A link filtered by pid (Linux 6.1+) walks the target's thread list from
// its leader, and keeps between two steps only the tid it visited last
// (pid_visiting in the kernel's task_group_seq_get_next,
// kernel/bpf/task_iter.c). Each step, after every thread and again at
// every read(2) of the iterator's file, looks that tid up; if the thread
// has exited and been reaped in between, the lookup fails and the walk
// ends as if the list had (6.1 also ends it on a next thread whose pid is
// being detached). The threads after that point are missing from the
// pass, and nothing in its output says so.
//
// A walk that really ended last visited the list's tail. Threads join the
// list at its tail only, so if the last thread visited was the tail when
// it was visited, every thread that lived through the whole pass was
// visited: each step went from a thread still listed to its successor at
// that time. So each visited thread of the target notes whether it was
// the tail, and the agent reads walk_last, the note of the last one, after the pass
// (internal/tracker/walk.go). A tail that exited right after its visit
// makes a later step fail harmlessly; a thread after the last one visited
// that exited before the step makes the pass look cut short when it was
// not: both cost a retry, never a missed thread.
//
// A tree's or a cgroup's processes each have such a link of their own
// (internal/tracker/walkers.go), and the agent checks the note after each.
// An unfiltered link (older kernels, a threaded cgroup) walks every task
// by pid number instead (find_ge_pid), which a task's exit cannot stop
// early: there the note means nothing and the agent ignores it.

#ifndef STALLMON_WALK_H
#define STALLMON_WALK_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

enum walk_end {
	WALK_NONE = 0, // no thread of the target visited yet: the agent sets it before each pass
	WALK_MID = 1,  // the last thread visited had a thread after it
	WALK_TAIL = 2, // the last thread visited was the tail of its thread list
};

// An enum reaches BTF, and so bpf2go, only if something refers to it.
const enum walk_end *unused_walk_end __attribute__((unused));

__u32 walk_last = WALK_NONE;

// Every task the iterator has handed the snapshot program, member of the
// target or not: how much of the host a poll walks. One reader runs the
// iterator at a time, so a plain add is exact.
__u64 walk_visits = 0;

// note_walk records where task, a thread of the target the iterator
// visits, stands in its thread list: plain loads from the iterator's
// trusted task, so it costs the pass next to nothing per thread.
// thread_node and signal->thread_head order the threads as the
// iterator's own list does (thread_group on kernels before 6.7): both
// are appended to at clone, both unlinked at release.
static __always_inline void note_walk(struct task_struct *task)
{
	struct signal_struct *sig = task->signal;

	walk_last = (void *)task->thread_node.next == (void *)&sig->thread_head ? WALK_TAIL : WALK_MID;
}

#endif
