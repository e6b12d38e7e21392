//go:build ignore

// stallmon kernel side: which syscall each thread of one process is in, and
// since when. See bpf/README.md for how vmlinux.h was made.
//
// This file holds the programs; the headers hold what they use, one part
// each (README.md lists them). bpf2go compiles one file, so this is the
// only compile unit: it must keep its name, which gen/'s file names and Go
// identifiers (gen.StallmonObjects) come from.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "build.h"
#include "once.h"
#include "word.h"
#include "regs.h"
#include "fdclass.h"
#include "taskstate.h"
#include "target.h"
#include "maps.h"
#include "latency.h"
#include "deaths.h"
#include "quiet.h"
#include "unrecorded.h"
#include "walk.h"
#include "vfork.h"
#include "waitsite.h"
#include "threaditer.h"
#include "regsseen.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("raw_tracepoint/sys_enter")
int sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	// Any thread's first syscall, the agent's own included (see regs.h).
	calibrate_regs(ctx);
	if (!is_target())
		return 0;

	count(COUNTER_ENTER);

	struct task_struct *task = current_task();
	struct inflight *f = inflight_get(task);
	if (!f) {
		f = inflight_create(task);
		if (!f) {
			count(COUNTER_STORAGE_FAILED);
			mark_unrecorded(ctx, task);
			return 0;
		}
		count(COUNTER_STORAGE_CREATED);
	}

	__u64 nr = ctx->args[1];
	__u32 abi = task_abi(task, nr);
#if defined(__TARGET_ARCH_x86)
	nr &= ~X32_SYSCALL_BIT;
#endif
	if (nr > NR_MASK) {
		count(COUNTER_NR_TOO_LARGE);
		nr = NR_MASK;
	}
	if (READ_ONCE(f->word) != 0)
		count(COUNTER_ENTRY_OVERWRITTEN);

	// arg0 is informational (the fd of a death record): a racing reader
	// may pair it with the previous word, which only ever mislabels a
	// syscall that has just returned. The word alone decides what is in
	// flight; the iterator reads the arguments from the registers.
	f->arg0 = regs_arg0(enter_regs(ctx, task), abi);
	if ((abi == ABI_COMPAT && nr == nr_close_compat) || (abi != ABI_COMPAT && nr == nr_close))
		classify_fd(task, f->arg0, &f->closing);
	__u64 ts = bpf_ktime_get_ns() >> TS_SHIFT;
	WRITE_ONCE(f->word, (ts << TS_BITS_SHIFT) | ((__u64)abi << ABI_SHIFT) | nr);
	clear_unrecorded();
	return 0;
}

SEC("raw_tracepoint/sys_exit")
int sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	if (!is_target())
		return 0;

	struct inflight *f = inflight_get(current_task());
	if (!f || f->word == 0) {
		// New threads return from clone through sys_exit, and threads
		// already in a syscall at attach time exit one we never saw.
		count(COUNTER_EXIT_NO_ENTRY);
		return 0;
	}
	if (latency_histogram)
		observe(f->word);
	WRITE_ONCE(f->word, 0);
	return 0;
}

// exit and exit_group never reach sys_exit. Storage is freed with the task
// anyway; deleting it here makes "created - released" an exact count of
// live entries, which the tests use to prove nothing leaks.
SEC("raw_tracepoint/sched_process_exit")
int thread_exit(struct bpf_raw_tracepoint_args *ctx)
{
	if (!is_target())
		return 0;

	struct task_struct *task = current_task();
	exit_status = BPF_CORE_READ(task, exit_code);
	exited = 1;
	// The last thread of a tree member takes the process out of the tree
	// (signal->live has already counted it down): its pid may be reused
	// by a stranger once it is reaped.
	if (target_tree && BPF_CORE_READ(task, signal, live.counter) == 0)
		tree_leave(BPF_CORE_READ(task, tgid));
	struct inflight *f = inflight_get(task);
	if (f)
		record_death(task, READ_ONCE(f->word), f->arg0);
	else
		record_death_regs(task);
	if (inflight_delete(task))
		count(COUNTER_STORAGE_RELEASED);
	forget_wait_site(task);
	clear_unrecorded();
	return 0;
}

// A thread other than the leader that execs takes the leader's tid
// (de_thread), and no thread exits under its old tid again: the minimal
// object's record of it, keyed by that tid, would stay in the hash for
// good, one more each such exec, until the hash is full and every new
// thread unrecorded. The exec drops it. Task storage (the full object)
// goes with its task: the program does nothing there, and is attached
// only with the minimal object.
SEC("raw_tracepoint/sched_process_exec")
int thread_exec(struct bpf_raw_tracepoint_args *ctx)
{
#ifdef STALLMON_MINIMAL
	__u32 old_tid = (__u32)ctx->args[1];

	if (!is_target() || old_tid == KREAD(current_task(), pid))
		return 0;
	if (bpf_map_delete_elem(&inflight, &old_tid) == 0)
		count(COUNTER_STORAGE_RELEASED);
#endif
	return 0;
}

// A member's children join the tree when they are forked, before they run
// a single instruction; a process or thread forked into a watched cgroup
// (inside it, or by clone3's CLONE_INTO_CGROUP) is noted as joined.
// Attached only in tree and cgroup modes: every fork on the machine runs
// it.
SEC("raw_tracepoint/sched_process_fork")
int member_fork(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *parent = (struct task_struct *)ctx->args[0];
	struct task_struct *child = (struct task_struct *)ctx->args[1];
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);

	if (target_cgroup) {
		if (task_in_target_cgroup(child))
			note_joined(ctgid);
		return 0;
	}
	if (!target_tree || ptgid == ctgid || !in_tree(ptgid))
		return 0;
	tree_join(ctgid);
	return 0;
}

// A process, or one thread of it, moved into the watched cgroup by a write
// to cgroup.procs or cgroup.threads, is noted as joined: its leader may be
// gone, and cgroup.procs then never lists it. The tracepoint fires once
// the move is done, with the destination and the task the write named:
// the leader, which an exited leader's move leaves behind (only live
// threads move), so the destination decides, if it is of the default
// hierarchy (moves in v1 hierarchies fire it too, and their cgroup ids
// are their own). Attached only in cgroup mode.
SEC("raw_tracepoint/cgroup_attach_task")
int member_move(struct bpf_raw_tracepoint_args *ctx)
{
	struct cgroup *dst = (struct cgroup *)ctx->args[0];
	struct task_struct *task = (struct task_struct *)ctx->args[2];
	struct task_struct *cur = current_task();

	if (!target_cgroup || BPF_CORE_READ(dst, root) != BPF_CORE_READ(cur, cgroups, dfl_cgrp, root))
		return 0;
	if (cgroup_in_target(dst))
		note_joined(BPF_CORE_READ(task, tgid));
	return 0;
}

// visit_task writes the record of task, a thread the walk reached, unless
// it is not the scope's or is quiet. Both walks share it: the kernel's
// per-visit walk (snapshot) and the open-coded one (snapshot_threads),
// which alone keeps a copy of a sleeping thread's registers (seen, a
// constant: regsseen.h).
static __always_inline long visit_task(struct seq_file *seq, struct task_struct *task, struct thread_rec *rec,
				       bool seen)
{
	// Each link walks one process where the kernel can filter by pid
	// (>= 6.1): the target, or each process of a tree or cgroup in turn.
	// This check keeps the walk of every task (older kernels) correct, and
	// a member's walk too: a thread of a cgroup's process may sit in
	// another cgroup (threaded cgroups), and a member's pid may have
	// passed to a stranger since it was listed.
	if (!task)
		return 0;
	walk_visits++;
	if (target_cgroup ? !task_in_target_cgroup(task) :
	    target_tree ? !in_tree(task->tgid) : task->tgid != target_tgid)
		return 0;
	note_walk(task);

	// First what tells a quiet thread, in plain loads (task is a trusted
	// BTF pointer): most threads of a large service are quiet, and for
	// them the pass ends here.
	rec->tid = task->pid;
	rec->tgid = task->tgid;
	rec->state = task_state(task);
	rec->flags = task->flags;
	rec->exit_state = task->exit_state;
	rec->signal_flags = task->signal->flags;
	rec->core_dump = dumping_core(task);
	// cgroup v2 parks a frozen task in an interruptible sleep (its state
	// alone looks idle) and marks it with this bit; cgroup v1 and system
	// suspend use TASK_FROZEN, which the state shows.
	if (bpf_core_field_exists(task->frozen))
		rec->cgroup_frozen = BPF_CORE_READ_BITFIELD(task, frozen);

	struct inflight *f = inflight_get(task);
	if (f) {
		rec->has_storage = 1;
		rec->word = READ_ONCE(f->word);
	}
	read_unrecorded(task, &rec->unrecorded_word, &rec->unrecorded_since);

	rec->regs_nr = -1;
	rec->fds[0].fd = -1;
	rec->fds[1].fd = -1;
	bool worker = rec->flags & worker_flags;
#ifndef STALLMON_MINIMAL
	// A copy of the registers of a thread that has not run since it was
	// made may leave the thread out, never list it.
	// Every thread takes a slot, in the order of its thread list, which
	// only exits reorder.
	struct regs_seen *copy = seen && quiet_on ? regs_seen_slot(quiet_pass) : NULL;
	__u64 switches = 0;
	if (copy && !asleep_by_design(rec->state))
		copy = NULL;
	if (copy && regs_seen_valid(copy, task)) {
		rec->regs_nr = copy->nr;
		rec->regs_abi = copy->abi;
		if (is_quiet(rec, worker, false) == QUIET) {
			regs_seen_reused++;
			count_quiet(rec);
			return 0;
		}
		// Read afresh (the fds, or a word the copy belies); the copy
		// still holds, so it is not written again.
		rec->regs_nr = -1;
		rec->regs_abi = 0;
		copy = NULL;
	}
	if (copy && !regs_seen_begin(copy, task, &switches))
		copy = NULL;
#endif
	struct pt_regs *regs = task_regs(task);
	bool in_regs = regs && regs_in_syscall(regs);
	// Without a word, a tracked thread's registers count only while their
	// syscall has not returned (arm64 keeps syscallno after the return).
	if (in_regs && f && !rec->word && regs_returned(regs))
		in_regs = false;
	if (in_regs) {
		rec->regs_nr = regs_nr(regs);
		rec->regs_abi = task_abi(task, rec->regs_nr);
	}
#ifndef STALLMON_MINIMAL
	if (copy)
		regs_seen_fill(copy, task, switches, rec->regs_nr, rec->regs_abi);
#endif
	if (quiet_on && is_quiet(rec, worker, false) == QUIET) {
		count_quiet(rec);
		return 0;
	}

	rec->on_cpu = task->on_cpu;
	rec->voluntary = task->nvcsw;
	rec->switches = rec->voluntary + task->nivcsw;
	rec->progress = task->utime;
	if (bpf_core_field_exists(task->ioac.syscr))
		rec->progress += task->ioac.syscr + task->ioac.syscw;
	if (f)
		rec->closing = f->closing;
	if (in_regs) {
		long nr = rec->regs_nr;
		regs_args(regs, rec->regs_abi, rec->args);

		__u32 idx = rec->regs_abi * FD_ARGS_NR + ((__u32)nr & (FD_ARGS_NR - 1));
		// Older verifiers (6.1) lose the bounds of that sum; a mask
		// the compiler cannot drop as redundant restores them.
		barrier_var(idx);
		idx &= FD_ARGS_LEN - 1;
		__u8 mask = fd_args[idx];
		int found = 0;
		for (int i = 0; i < 6; i++) {
			if (!(mask & (1 << i)) || found >= 2)
				continue;
			classify_fd(task, rec->args[i], &rec->fds[found & 1]);
			found++;
		}
	}
	if (quiet_on && is_quiet(rec, worker, true) == QUIET) {
		count_quiet(rec);
		return 0;
	}
	note_vfork_child(task, rec);
	bpf_probe_read_kernel_str(rec->comm, sizeof(rec->comm), task->comm);
	capture_wait_site(task, rec->state, rec->on_cpu, rec->exit_state, rec->switches, &rec->wait);
	rec->now = bpf_ktime_get_ns();
	// Fails once the kernel's seq buffer is full: the open-coded walk
	// stops there, and the read fails whole (E2BIG).
	return bpf_seq_write(seq, rec, sizeof(*rec));
}

SEC("iter/task")
int snapshot(struct bpf_iter__task *ctx)
{
	struct thread_rec rec = {};

	visit_task(ctx->meta->seq, ctx->task, &rec, false);
	return 0;
}

#ifndef STALLMON_MINIMAL
// visit_thread is visit_task as a function of its own, which the verifier
// checks once (Linux 6.8's argument tags make its pointers trusted)
// instead of once per round of the open-coded loop that calls it.
__noinline long visit_thread(struct seq_file *seq __arg_trusted, struct task_struct *task __arg_trusted)
{
	__u32 zero = 0;
	struct thread_rec *rec = bpf_map_lookup_elem(&thread_scratch, &zero);

	if (!rec)
		return 0;
	__builtin_memset(rec, 0, sizeof(*rec));
	return visit_task(seq, task, rec, true);
}

// snapshot_threads walks, in one visit of its process's leader (a link
// filtered on that tid), the whole thread list with Linux 6.7's open-coded
// iterator: no pid lookup per thread, no program entry per thread. At
// 10,000 threads that is a third of the per-visit walk's time, most of it
// cache misses on each thread's pid (internal/tracker/threads.go). The
// list is read under RCU to its end: a thread exiting under the walk
// cannot cut it short as it can the per-visit walk (walk.h).
SEC("iter/task")
int snapshot_threads(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *leader = ctx->task;
	struct task_struct *t;
	struct bpf_iter_task it;

	if (!leader)
		return 0;
	bpf_iter_task_new(&it, leader, BPF_TASK_ITER_PROC_THREADS);
	while ((t = bpf_iter_task_next(&it))) {
		struct task_struct *held = bpf_task_acquire(t);
		long err;

		if (!held)
			continue;
		err = visit_thread(seq, held);
		bpf_task_release(held);
		if (err < 0)
			break;
	}
	bpf_iter_task_destroy(&it);
	// The list was read to its end under RCU: every thread that lived
	// through the walk was visited, whatever the last one noted (a tail
	// that exited under the walk, a thread cloned behind it). On an
	// overflow the read fails whole and this note is not read.
	if (walk_last != WALK_NONE)
		walk_last = WALK_TAIL;
	return 0;
}

#else

// The minimal object's kernels (5.10-5.14) have no thread walk: the
// program is there for the objects to share a shape, and never linked.
SEC("iter/task")
int snapshot_threads(struct bpf_iter__task *ctx)
{
	return 0;
}

#endif
