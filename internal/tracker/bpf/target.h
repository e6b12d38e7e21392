// Which tasks are watched: one process (pid), a process tree, or a cgroup
// v2 subtree, chosen by load-time constants. Every tracepoint program asks
// is_target first, for every task on the machine, so this is code the
// whole machine pays for.

#ifndef STALLMON_TARGET_H
#define STALLMON_TARGET_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "build.h"
#include "once.h"

// Set by the agent before load; never changes afterwards, so it is a
// constant the verifier can see rather than a map lookup on every syscall.
volatile const __u32 target_tgid = 0;

// Set instead of target_tgid to watch a whole cgroup v2 subtree: the id of
// its directory (the kernfs node id, the inode number of the directory)
// and its depth below the root. Every task whose cgroup is it or below is
// watched, however it got there: forked, moved in, or spawned into it.
volatile const __u64 target_cgroup = 0;
volatile const __u32 target_cgroup_level = 0;

// Set instead to watch a process tree: the processes whose bit is set in
// tree, a bitmap indexed by tgid, which userspace seeds with the root and
// its descendants at attach, and to which fork() adds the children of its
// members. An array, so the verifier inlines the lookup: every task on
// the machine pays for it at every syscall.
volatile const bool target_tree = false;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE); // userspace sets bits with atomic ors
	__uint(max_entries, 1);            // pid_max / MEMBERS_PER_WORD + 1, set at load
	__type(key, __u32);
	__type(value, __u64);
} tree SEC(".maps");

// How tree and joined hold a tgid. The full object sets and clears one
// bit each with atomic ors and ands; the minimal one is for kernels whose
// verifier (x86 before 5.12) or JIT (arm64 before 5.18) has no atomic
// but add, so it gives each tgid a byte of the word, which a plain store
// sets or clears without touching its neighbours' (userspace's atomic
// read-modify-writes of the whole word see it before or after).
enum member_layout {
#ifdef STALLMON_MINIMAL
	MEMBERS_PER_WORD = 8,
#else
	MEMBERS_PER_WORD = 64,
#endif
};

// An enum reaches BTF, and so bpf2go, only if something refers to it.
const enum member_layout *unused_member_layout __attribute__((unused));

static __always_inline __u64 *member_word(void *map, __u32 tgid)
{
	__u32 idx = tgid / MEMBERS_PER_WORD;

	return bpf_map_lookup_elem(map, &idx);
}

static __always_inline __u64 *tree_word(__u32 tgid)
{
	return member_word(&tree, tgid);
}

static __always_inline bool is_member(__u64 *w, __u32 tgid)
{
#ifdef STALLMON_MINIMAL
	return READ_ONCE(((__u8 *)w)[tgid & 7]) != 0;
#else
	return (READ_ONCE(*w) >> (tgid & 63)) & 1;
#endif
}

static __always_inline void set_member(__u64 *w, __u32 tgid)
{
#ifdef STALLMON_MINIMAL
	WRITE_ONCE(((__u8 *)w)[tgid & 7], 1);
#else
	__sync_fetch_and_or(w, 1ULL << (tgid & 63));
#endif
}

static __always_inline void clear_member(__u64 *w, __u32 tgid)
{
#ifdef STALLMON_MINIMAL
	WRITE_ONCE(((__u8 *)w)[tgid & 7], 0);
#else
	__sync_fetch_and_and(w, ~(1ULL << (tgid & 63)));
#endif
}

static __always_inline bool in_tree(__u32 tgid)
{
	__u64 *w = tree_word(tgid);

	return w && is_member(w, tgid);
}

static __always_inline void tree_join(__u32 tgid)
{
	__u64 *w = tree_word(tgid);

	if (w)
		set_member(w, tgid);
}

static __always_inline void tree_leave(__u32 tgid)
{
	__u64 *w = tree_word(tgid);

	if (w)
		clear_member(w, tgid);
}

// Before 6.0 a cgroup kept its ancestors' ids rather than pointers.
struct cgroup___pre60 {
	__u64 ancestor_ids[0];
} __attribute__((preserve_access_index));

// cgroup_in_target says whether cgrp, a cgroup of the default (v2)
// hierarchy, is the watched one or below it.
static __always_inline bool cgroup_in_target(struct cgroup *cgrp)
{
	__u32 level = target_cgroup_level;
	__u64 id = 0;

	if (!cgrp || BPF_CORE_READ(cgrp, level) < (int)level || level > 255)
		return false;
	if (bpf_core_field_exists(cgrp->ancestors)) {
		struct cgroup *anc = NULL;
		__u64 off = bpf_core_field_offset(cgrp->ancestors) + level * sizeof(anc);

		if (bpf_probe_read_kernel(&anc, sizeof(anc), (void *)cgrp + off) || !anc)
			return false;
		id = BPF_CORE_READ(anc, kn, id);
	} else {
		struct cgroup___pre60 *old = (void *)cgrp;
		__u64 off = bpf_core_field_offset(old->ancestor_ids) + level * sizeof(id);

		if (bpf_probe_read_kernel(&id, sizeof(id), (void *)cgrp + off))
			return false;
	}
	return id == target_cgroup;
}

// current_in_target_cgroup: the helper came to tracing programs in 5.14;
// the minimal object walks to the ancestor itself, as the iterator does.
static __always_inline bool current_in_target_cgroup(void)
{
#ifdef STALLMON_MINIMAL
	return cgroup_in_target(BPF_CORE_READ(current_task(), cgroups, dfl_cgrp));
#else
	return bpf_get_current_ancestor_cgroup_id(target_cgroup_level) == target_cgroup;
#endif
}

// is_target is the first thing every tracepoint program does, for every
// task on the machine: one compare in pid mode; in cgroup mode one helper
// that reads the current task's cgroup ancestor. The verifier drops the
// branch not taken, so each mode pays only for its own check.
static __always_inline bool is_target(void)
{
	if (target_cgroup)
		return current_in_target_cgroup();
	if (target_tree)
		return in_tree(bpf_get_current_pid_tgid() >> 32);
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

// Processes that joined the watched cgroup since the agent last looked,
// by tgid: forked into it, or moved in. The agent walks each process of
// the cgroup alone (internal/tracker/walkers.go) and lists them from
// cgroup.procs, which leaves out a process whose leader has exited,
// though its other threads live on: moved in after its leader ended, or
// forked into it and its leader gone before the agent's next look. This
// names them all. The agent takes the bits with atomic exchanges, the
// kernel side sets them with atomic ors.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);            // pid_max / MEMBERS_PER_WORD + 1 in cgroup mode, set at load
	__type(key, __u32);
	__type(value, __u64);
} joined SEC(".maps");

static __always_inline void note_joined(__u32 tgid)
{
	__u64 *w = member_word(&joined, tgid);

	if (w)
		set_member(w, tgid);
}

// task_in_target_cgroup is is_target for any task, for the iterator.
static __always_inline bool task_in_target_cgroup(struct task_struct *task)
{
	return cgroup_in_target(BPF_CORE_READ(task, cgroups, dfl_cgrp));
}

#endif
