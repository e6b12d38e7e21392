// The child a thread of the target waits for in vfork(2), or in clone(2)
// or clone3(2) with CLONE_VFORK, as posix_spawn and Go's os/exec make it:
// the parent sleeps in killable D (wait_for_vfork_done) until the child
// execs or exits, and the table exempts that wait, which lasts as long as
// the child's own work before its exec (a posix_spawn file action that
// opens a FIFO waits for a writer). The child is another process, outside
// a --pid target: only its state can tell a child that waits for a
// reason from one stuck for ever (an exec of a binary on a file system
// that stopped answering). So the iterator finds it from its parent and
// notes what the agent judges the wait by (internal/agent/vfork.go).

#ifndef STALLMON_VFORK_H
#define STALLMON_VFORK_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "maps.h"
#include "quiet.h"
#include "regs.h"
#include "taskstate.h"

struct vfork_child {
	__u64 pass;      // quiet_pass of the pass that found it
	__u32 tid;       // the child (its only thread)
	__u32 state;     // its task->__state
	__s64 regs_nr;   // the syscall in its saved registers, -1 if none
	__u32 regs_abi;  // ABI_* of that syscall
	__u32 on_cpu;    // 1 if running on a CPU right now
	__u64 switches;  // nvcsw + nivcsw
	__u64 voluntary; // nvcsw
	__u8 comm[16];
};

// Makes the type visible in BTF so bpf2go can generate its Go mirror.
const struct vfork_child *unused_vfork_child __attribute__((unused));

// Keyed by the waiting parent's tid. Written only for a thread in D that
// has a vfork child, which the agent looks up only for a thread it sees
// in clone, clone3 or vfork: LRU, so entries no one reads age out.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct vfork_child);
} vfork_children SEC(".maps");

// A parent's children list gets children reparented from its exiting
// sibling threads appended after the one it waits for: the search looks
// this far back from the newest.
#define VFORK_SCAN 8

// Kernels before 5.14 name the state field "state" (see taskstate.h).
static __always_inline __u32 probe_task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___pre514 *)t, state);
}

// find_vfork_child returns the child task waits for, or NULL. The newest
// child, at the tail of task->children, is the one: a thread waiting for
// a vfork child forks nothing else. Its vfork_done, set by kernel_clone
// and cleared when the child execs or exits (or the parent is killed),
// says it is still waited for. The list is walked without the lock that
// guards it: every read is a probe read, and what it finds is checked.
static __always_inline struct task_struct *find_vfork_child(struct task_struct *task)
{
	__u64 head = (__u64)task + bpf_core_field_offset(struct task_struct, children);
	__u64 pos = (__u64)BPF_CORE_READ(task, children.prev);

	for (int i = 0; i < VFORK_SCAN; i++) {
		if (!pos || pos == head)
			return NULL;
		struct task_struct *c = (void *)(pos - bpf_core_field_offset(struct task_struct, sibling));
		if (BPF_CORE_READ(c, vfork_done) && BPF_CORE_READ(c, real_parent) == task)
			return c;
		pos = (__u64)BPF_CORE_READ((struct list_head *)pos, prev);
	}
	return NULL;
}

// note_vfork_child records, for a thread of the target in D inside a
// syscall, the vfork child it waits for, if any. Other threads cost one
// test of what the iterator already read.
static __always_inline void note_vfork_child(struct task_struct *task, struct thread_rec *rec)
{
	if (!(rec->state & TASK_UNINTERRUPTIBLE) || rec->regs_nr < 0)
		return;
	struct task_struct *c = find_vfork_child(task);
	if (!c)
		return;
	struct vfork_child v = {.pass = quiet_pass, .regs_nr = -1};
	v.tid = BPF_CORE_READ(c, pid);
	v.state = probe_task_state(c);
	v.on_cpu = BPF_CORE_READ(c, on_cpu);
	v.voluntary = BPF_CORE_READ(c, nvcsw);
	v.switches = v.voluntary + BPF_CORE_READ(c, nivcsw);
	BPF_CORE_READ_STR_INTO(&v.comm, c, comm);
	// The child's saved registers lie where the parent's do, at the same
	// offset from its kernel stack (the top, on x86 and arm64). The
	// helper gives the parent's as a pointer the verifier keeps to its
	// own type; copied through the stack it is a plain number to add to.
	struct pt_regs *pregs = task_regs(task);
	__u64 at = 0;
	bpf_probe_read_kernel(&at, sizeof(at), &pregs);
	__u64 pstack = (__u64)BPF_CORE_READ(task, stack);
	__u64 cstack = (__u64)BPF_CORE_READ(c, stack);
	if (at && pstack && cstack && at > pstack)
		v.regs_nr = probe_syscall(c, (struct pt_regs *)(cstack + (at - pstack)), &v.regs_abi);
	__u32 tid = rec->tid;
	bpf_map_update_elem(&vfork_children, &tid, &v, BPF_ANY);
}

#endif
