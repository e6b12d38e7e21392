// The state all the programs share: each thread's in-flight record, the
// counters, the exit status, and the record the iterator writes for each
// thread. The maps and globals that one part alone uses live with that
// part (target.h, fdclass.h, latency.h, deaths.h, quiet.h, unrecorded.h).
// The agent reads these layouts through bpf2go's Go mirrors (-type in
// internal/tracker/gen/gen.go), never through hand-written copies.

#ifndef STALLMON_MAPS_H
#define STALLMON_MAPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "build.h"
#include "fdclass.h"
#include "waitsite.h"

// Each thread's syscall in flight (word, see word.h), kept in task
// storage: exit and exit_group never reach sys_exit, and storage is freed
// with its thread, where a map keyed by tid would leak the entry.
struct inflight {
	__u64 word;
	__u64 arg0;
	struct fd_class closing;
#ifdef STALLMON_MINIMAL
	__u64 start_time; // task->start_time: a reused tid is not the thread that left it
#endif
};

#ifdef STALLMON_MINIMAL

// Task storage from tracing programs came in 5.13: the minimal object
// keys a hash by tid instead, and thread_exit deletes each entry. An exit
// it misses (a thread that left a watched cgroup before exiting) leaves
// an entry behind whose tid a new thread may reuse: start_time tells them
// apart. Preallocated, so that sys_enter never allocates; a full map
// fails the update, which sends the thread down the unrecorded path
// (unrecorded.h). Sized for the threads of one service on a big host: a
// thread per CPU of 256 CPUs and every pool a Java or Go service grows
// fit many times over; 3-4 MB of kernel memory.
#define INFLIGHT_MAX 32768

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, INFLIGHT_MAX);
	__type(key, __u32);
	__type(value, struct inflight);
} inflight SEC(".maps");

#else

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct inflight);
} inflight SEC(".maps");

#endif

enum counter {
	COUNTER_ENTER = 0,         // sys_enter seen for the target
	COUNTER_STORAGE_CREATED,   // per-thread storage created
	COUNTER_STORAGE_FAILED,    // storage could not be created (ENOMEM)
	COUNTER_EXIT_NO_ENTRY,     // sys_exit without a recorded entry
	COUNTER_STORAGE_RELEASED,  // storage released at thread exit
	COUNTER_NR_TOO_LARGE,      // syscall number did not fit NR_BITS
	COUNTER_ENTRY_OVERWRITTEN, // sys_enter found the previous syscall still recorded: its exit was missed
	COUNTER_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, enum counter);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(enum counter c)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &c);

	if (v)
		*v += 1;
}

// The in-flight record of task, or NULL if it has none. In the minimal
// object an entry left by an earlier thread of the same tid is none.
static __always_inline struct inflight *inflight_get(struct task_struct *task)
{
#ifdef STALLMON_MINIMAL
	__u32 tid = KREAD(task, pid);
	struct inflight *f = bpf_map_lookup_elem(&inflight, &tid);

	if (f && f->start_time != KREAD(task, start_time))
		return NULL;
	return f;
#else
	return bpf_task_storage_get(&inflight, task, 0, 0);
#endif
}

// inflight_create gives the current thread task a record; NULL if the
// kernel refused it.
static __always_inline struct inflight *inflight_create(struct task_struct *task)
{
#ifdef STALLMON_MINIMAL
	__u32 tid = KREAD(task, pid);
	struct inflight fresh = {.start_time = KREAD(task, start_time)};

	// An entry of the same tid is an earlier thread's, whose exit went
	// unseen (inflight_get found it stale): replaced, it is released.
	if (bpf_map_lookup_elem(&inflight, &tid))
		count(COUNTER_STORAGE_RELEASED);
	if (bpf_map_update_elem(&inflight, &tid, &fresh, BPF_ANY))
		return NULL;
	return bpf_map_lookup_elem(&inflight, &tid);
#else
	return bpf_task_storage_get(&inflight, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
#endif
}

// inflight_delete drops the exiting thread task's record: true if it had
// one.
static __always_inline bool inflight_delete(struct task_struct *task)
{
#ifdef STALLMON_MINIMAL
	__u32 tid = KREAD(task, pid);

	return bpf_map_delete_elem(&inflight, &tid) == 0;
#else
	return bpf_task_storage_delete(&inflight, task) == 0;
#endif
}

// Last exit status (wait(2) encoding) of a thread of the target. The last
// thread to exit carries the process's status.
__u32 exit_status = 0;
__u32 exited = 0;

// One record per thread of the target, written by the task iterator.
struct thread_rec {
	__u32 tid;
	__u32 tgid;        // the process the thread belongs to
	__u32 state;       // task->__state (TASK_* bits)
	__u64 word;        // struct inflight.word, 0 if not in a syscall
	__u64 now;         // bpf_ktime_get_ns() when this record was made
	__u64 switches;    // nvcsw + nivcsw: unchanged means it has not run since
	__u64 voluntary;   // nvcsw: unchanged means it has not slept since
	__s64 regs_nr;     // syscall number in the saved user registers, -1 if none
	__u64 args[6];     // the syscall's arguments, from the same registers
	struct fd_class fds[2];
	struct fd_class closing; // what the latest close(2) closed, see struct inflight
	__u32 flags;       // task->flags (PF_*)
	__u32 exit_state;  // task->exit_state: nonzero once the thread is a zombie
	__u32 signal_flags; // task->signal->flags (SIGNAL_GROUP_EXIT...)
	__u32 core_dump;   // 1 while the process dumps core
	__u32 cgroup_frozen; // 1 while the cgroup v2 freezer holds the thread
	__u32 regs_abi;    // ABI_* of the syscall in the registers
	__u32 has_storage; // 1 if the thread has storage
	__u32 on_cpu;      // 1 if running on a CPU right now
	// user time in ns plus read and write calls made (ioac.syscr + syscw,
	// where CONFIG_TASK_XACCT has them): grows when the thread ran in user
	// space, and with each read or write even if no tick saw its user time
	__u64 progress;
	__u8 comm[16];
	__u64 unrecorded_word;  // see struct unrecorded; 0 if the thread's latest entry was recorded
	__u64 unrecorded_since;
	struct wait_site wait; // where it sleeps, see waitsite.h
};

// Makes the type visible in BTF so bpf2go can generate its Go mirror.
const struct thread_rec *unused_thread_rec __attribute__((unused));

#endif
