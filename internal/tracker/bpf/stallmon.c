//go:build ignore

// stallmon kernel side: which syscall each thread of one process is in, and
// since when. See bpf/README.md for how vmlinux.h was made.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

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
	__uint(max_entries, 1);            // pid_max / 64 + 1, set at load
	__type(key, __u32);
	__type(value, __u64);
} tree SEC(".maps");

// The in-flight word packs the syscall number (low NR_BITS), the ABI it
// was made through (ABI_BITS above) and the entry time (upper bits, in
// units of 2^TS_SHIFT ns, about 1 us). One aligned 64-bit store publishes
// all at once: a reader racing with sys_enter can never pair a new syscall
// number with the previous syscall's timestamp, which would show a fast
// syscall as hours old. 0 means "not in a syscall".
#define NR_BITS 12
#define NR_MASK ((1ULL << NR_BITS) - 1)
#define ABI_BITS 2
#define ABI_SHIFT NR_BITS
#define TS_BITS_SHIFT (NR_BITS + ABI_BITS)
#define TS_SHIFT 10

// The syscall ABI a thread entered through: a 64-bit process may make
// 32-bit syscalls (int 0x80) and a 32-bit process makes nothing else, and
// the same number names different syscalls in each table (ia32 read is 3,
// native 3 is close).
#define ABI_NATIVE 0
#define ABI_COMPAT 1 // ia32 on amd64, aarch32 on arm64
#define ABI_X32 2

#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

// What close(2) closes, classified at sys_enter: by the time a close
// waits (a tty draining its output, an NFS flush) the fd is gone from the
// table, and the iterator could no longer tell what it was.
struct fd_class {
	__s32 fd;
	__u32 kind;
	__u64 magic; // the super block's s_magic: which file system
};

struct inflight {
	__u64 word;
	__u64 arg0;
	struct fd_class closing;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct inflight);
} inflight SEC(".maps");

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

// Syscall latency histogram, filled at sys_exit when latency_histogram is
// set before load. It is a load-time constant so that, when off, the
// verifier removes the code: only the load of the switch itself remains.
volatile const bool latency_histogram = false;

// Per syscall number, log2 buckets of the time from sys_enter to sys_exit
// in units of 2^TS_SHIFT ns (the resolution of the in-flight word). Bucket
// 0 holds latencies under one unit, bucket i (0 < i < HIST_BUCKETS-1)
// those under 2^i units, the last everything longer. The map is named
// after the metric it becomes; it is read at scrape time.
#define HIST_NR 512
#define HIST_BUCKETS 32

struct latency_hist {
	__u64 buckets[HIST_BUCKETS];
	__u64 sum; // in 2^TS_SHIFT ns units
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HIST_NR);
	__type(key, __u32);
	__type(value, struct latency_hist);
} syscall_latency_seconds SEC(".maps");

// Last exit status (wait(2) encoding) of a thread of the target. The last
// thread to exit carries the process's status.
__u32 exit_status = 0;
__u32 exited = 0;

// The running architecture's exit and exit_group numbers, set before load.
// They are the only syscalls a thread may end inside. Every other syscall
// passes sys_exit before its thread can die (a fatal signal is acted on
// after sys_exit, seccomp kills before sys_enter), so a thread that exits
// with any other syscall in flight was killed by the kernel inside it: an
// oops. Its syscall will never return, and nothing else would show it,
// since the thread and its entry vanish.
volatile const __u32 nr_exit = 0;
volatile const __u32 nr_exit_group = 0;

// close(2)'s number in the native and the compat table, set before load.
volatile const __u32 nr_close = 0;
volatile const __u32 nr_close_compat = 0;

// The last DEATHS threads that died inside a syscall, in a ring indexed by
// deaths_total; seq is written last, so a reader that finds the seq it
// expects has the whole record.
#define DEATHS 16

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

static __always_inline void count(enum counter c)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &c);

	if (v)
		*v += 1;
}

// floor(log2(v)) for v > 0, without loops or a clz instruction.
static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0, shift;

	shift = (v > 0xFFFFFFFFULL) << 5; v >>= shift; r |= shift;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

// observe adds one finished syscall, entered at word, to the histogram.
// Atomic adds because the target's threads exit syscalls on several CPUs
// at once. A per-CPU map, which needs none, measured slower (its lookup is
// not inlined here) and multiplies what a scrape reads.
static __always_inline void observe(__u64 word)
{
	__u32 nr = word & NR_MASK;
	// Indexed by native syscall number: compat calls, rare and numbered
	// from another table, are left out rather than mislabelled.
	if (nr >= HIST_NR || ((word >> ABI_SHIFT) & ((1 << ABI_BITS) - 1)) != ABI_NATIVE)
		return;
	struct latency_hist *h = bpf_map_lookup_elem(&syscall_latency_seconds, &nr);
	if (!h)
		return;
	__u64 units = (bpf_ktime_get_ns() >> TS_SHIFT) - (word >> TS_BITS_SHIFT);
	__u32 slot = units ? log2_u64(units) + 1 : 0;
	if (slot >= HIST_BUCKETS)
		slot = HIST_BUCKETS - 1;
	__sync_fetch_and_add(&h->buckets[slot], 1);
	__sync_fetch_and_add(&h->sum, units);
}

// Which arguments of each syscall are file descriptors, a bit per argument,
// indexed by ABI * FD_ARGS_NR + number (ABI 3 unused); set by the agent before load from
// its syscall tables. The iterator classifies the first two.
#define FD_ARGS_NR 1024
#define FD_ARGS_LEN (4 * FD_ARGS_NR) // a power of two, so a mask bounds any index
volatile const __u8 fd_args[FD_ARGS_LEN] = {};

// What an fd refers to, decided from its inode in the kernel: no path
// lookup, no stat, nothing that could wait on the file system it lives on.
// The values are fdkind.Kind's.
enum fd_kind {
	KIND_NONE = 0,
	KIND_REGULAR,
	KIND_SOCKET,
	KIND_PIPE,
	KIND_TTY,
	KIND_DEVICE,
	KIND_OTHER,
};

#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFREG 0100000
#define S_IFBLK 0060000
#define S_IFDIR 0040000
#define S_IFCHR 0020000
#define S_IFIFO 0010000
#define ANON_INODE_FS_MAGIC 0x09041934
#define MINORBITS 20

// Majors that Documentation/admin-guide/devices.txt gives terminals:
// BSD ptys (2, 3), virtual consoles and serial ports (4), /dev/tty,
// console and ptmx (5), Unix98 pty slaves (136-143), ACM modems (166),
// USB serial (188), low-density serial ports (204), hypervisor consoles
// (229: hvc, the virtio console).
static __always_inline bool tty_major(__u32 major)
{
	return (major >= 2 && major <= 5) || (major >= 136 && major <= 143) ||
	       major == 166 || major == 188 || major == 204 || major == 229;
}

static __always_inline void classify_fd(struct task_struct *task, __u64 arg, struct fd_class *c)
{
	int fd = (int)arg;

	c->fd = fd;
	c->kind = KIND_NONE;
	c->magic = 0;
	if (fd < 0)
		return;
	struct files_struct *files = BPF_CORE_READ(task, files);
	if (!files)
		return;
	struct fdtable *fdt = BPF_CORE_READ(files, fdt);
	if (!fdt || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return;
	struct file **table = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	// A probe read: the table may be resized or the file closed under
	// us, and a stale pointer only ever yields a wrong kind for a syscall
	// on an fd that another thread just closed.
	if (bpf_probe_read_kernel(&file, sizeof(file), &table[fd]) || !file)
		return;
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	if (!inode)
		return;
	__u32 mode = BPF_CORE_READ(inode, i_mode);
	c->magic = BPF_CORE_READ(inode, i_sb, s_magic);
	switch (mode & S_IFMT) {
	case S_IFSOCK:
		c->kind = KIND_SOCKET;
		break;
	case S_IFIFO:
		c->kind = KIND_PIPE;
		break;
	case S_IFBLK:
		c->kind = KIND_DEVICE;
		break;
	case S_IFCHR:
		c->kind = tty_major(BPF_CORE_READ(inode, i_rdev) >> MINORBITS) ? KIND_TTY : KIND_DEVICE;
		break;
	case S_IFREG:
		// Kernels have given anonymous inodes (eventfd, epoll, timerfd...)
		// no type bits or S_IFREG; their file system says what they are.
		c->kind = c->magic == ANON_INODE_FS_MAGIC ? KIND_OTHER : KIND_REGULAR;
		break;
	default:
		c->kind = KIND_OTHER;
	}
}

// Saved user registers. A task's pt_regs hold what it entered the kernel
// with: for a task inside a syscall, the syscall number and its arguments,
// whether it sleeps or runs. An interrupt or fault taken in user mode
// overwrites them, so the syscall number alone is not proof; the entry
// code's own marks are (see regs_in_syscall). Every r below is the BTF
// pointer bpf_task_pt_regs returns, read with plain loads: a probe-read
// helper call each would cost the target's every syscall (sys_enter reads
// arg0) and the iterator each thread it lists.
#if defined(__TARGET_ARCH_x86)

#define TS_COMPAT 0x0002            // thread_info.status: a 32-bit syscall is active
#define X32_SYSCALL_BIT 0x40000000ULL
#define ENOSYS 38

// t is a trusted BTF pointer (the current task, the iterator's task): a
// direct load, not a probe-read helper, on every syscall of the target.
static __always_inline __u32 task_abi(struct task_struct *t, __u64 nr)
{
	if (t->thread_info.status & TS_COMPAT)
		return ABI_COMPAT;
	if (nr & X32_SYSCALL_BIT)
		return ABI_X32;
	return ABI_NATIVE;
}

// The x86 entry code sets ax to -ENOSYS before it dispatches a syscall and
// the syscall's return value replaces it on the way out; an interrupt frame
// holds the user's ax and, in orig_ax, -1 or an encoded vector that can
// look like a small syscall number.
static __always_inline long regs_nr(struct pt_regs *r)
{
	return r->orig_ax;
}

static __always_inline bool regs_in_syscall(struct pt_regs *r)
{
	return (long)r->orig_ax >= 0 && (long)r->ax == -ENOSYS;
}

static __always_inline __u64 regs_arg0(struct pt_regs *r, __u32 abi)
{
	return abi == ABI_COMPAT ? (__u32)r->bx : r->di;
}

static __always_inline void regs_args(struct pt_regs *r, __u32 abi, __u64 a[6])
{
	if (abi == ABI_COMPAT) {
		a[0] = (__u32)r->bx;
		a[1] = (__u32)r->cx;
		a[2] = (__u32)r->dx;
		a[3] = (__u32)r->si;
		a[4] = (__u32)r->di;
		a[5] = (__u32)r->bp;
		return;
	}
	a[0] = r->di;
	a[1] = r->si;
	a[2] = r->dx;
	a[3] = r->r10;
	a[4] = r->r8;
	a[5] = r->r9;
}

#elif defined(__TARGET_ARCH_arm64)

// vmlinux.h describes x86; these flavours name arm64's fields for CO-RE.
struct pt_regs___stallmon {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
	__u64 orig_x0;
	__s32 syscallno;
} __attribute__((preserve_access_index));

#define PSR_MODE32_BIT 0x10

static __always_inline __u32 regs_abi(struct pt_regs___stallmon *r)
{
	return (r->pstate & PSR_MODE32_BIT) ? ABI_COMPAT : ABI_NATIVE;
}

static __always_inline __u32 task_abi(struct task_struct *t, __u64 nr)
{
	return regs_abi((struct pt_regs___stallmon *)bpf_task_pt_regs(t));
}

// arm64's entry code stores NO_SYSCALL (-1) in syscallno for every
// exception that is not a syscall.
static __always_inline long regs_nr(struct pt_regs *r)
{
	return ((struct pt_regs___stallmon *)r)->syscallno;
}

static __always_inline bool regs_in_syscall(struct pt_regs *r)
{
	return regs_nr(r) >= 0;
}

static __always_inline __u64 regs_arg0(struct pt_regs *r, __u32 abi)
{
	__u64 v = ((struct pt_regs___stallmon *)r)->orig_x0;

	return abi == ABI_COMPAT ? (__u32)v : v;
}

static __always_inline void regs_args(struct pt_regs *r, __u32 abi, __u64 a[6])
{
	struct pt_regs___stallmon *ar = (struct pt_regs___stallmon *)r;

	a[0] = ar->orig_x0;
	a[1] = ar->regs[1];
	a[2] = ar->regs[2];
	a[3] = ar->regs[3];
	a[4] = ar->regs[4];
	a[5] = ar->regs[5];
	if (abi == ABI_COMPAT) {
		for (int i = 0; i < 6; i++)
			a[i] = (__u32)a[i];
	}
}

#else
#error "stallmon's kernel side knows amd64 and arm64"
#endif

// word_at packs an in-flight word, as sys_enter writes it, for a syscall
// number as the tracepoint or the registers give it (x32's bit included)
// entered at now (bpf_ktime_get_ns()): for the records made outside
// sys_enter, whose hot path packs its own.
static __always_inline __u64 word_at(struct task_struct *task, __u64 nr, __u64 now)
{
	__u32 abi = task_abi(task, nr);
#if defined(__TARGET_ARCH_x86)
	nr &= ~X32_SYSCALL_BIT;
#endif
	if (nr > NR_MASK)
		nr = NR_MASK;
	return ((now >> TS_SHIFT) << TS_BITS_SHIFT) | ((__u64)abi << ABI_SHIFT) | nr;
}

#include "unrecorded.h"

// is_target is the first thing every tracepoint program does, for every
// task on the machine: one compare in pid mode; in cgroup mode one helper
// that reads the current task's cgroup ancestor. The verifier drops the
// branch not taken, so each mode pays only for its own check.
static __always_inline __u64 *tree_word(__u32 tgid)
{
	__u32 idx = tgid >> 6;

	return bpf_map_lookup_elem(&tree, &idx);
}

static __always_inline bool in_tree(__u32 tgid)
{
	__u64 *w = tree_word(tgid);

	return w && (READ_ONCE(*w) >> (tgid & 63)) & 1;
}

static __always_inline bool is_target(void)
{
	if (target_cgroup)
		return bpf_get_current_ancestor_cgroup_id(target_cgroup_level) == target_cgroup;
	if (target_tree)
		return in_tree(bpf_get_current_pid_tgid() >> 32);
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

// Before 6.0 a cgroup kept its ancestors' ids rather than pointers.
struct cgroup___pre60 {
	__u64 ancestor_ids[0];
} __attribute__((preserve_access_index));

// task_in_target_cgroup is is_target for any task, for the iterator.
static __always_inline bool task_in_target_cgroup(struct task_struct *task)
{
	struct cgroup *cgrp = BPF_CORE_READ(task, cgroups, dfl_cgrp);
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

SEC("raw_tracepoint/sys_enter")
int sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (!is_target())
		return 0;

	count(COUNTER_ENTER);

	struct task_struct *task = bpf_get_current_task_btf();
	struct inflight *f = bpf_task_storage_get(&inflight, task, 0, 0);
	if (!f) {
		f = bpf_task_storage_get(&inflight, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
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
	f->arg0 = regs_arg0((struct pt_regs *)bpf_task_pt_regs(task), abi);
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

	struct inflight *f = bpf_task_storage_get(&inflight, bpf_get_current_task_btf(), 0, 0);
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

// record_death notes a thread that exits with a syscall other than exit or
// exit_group in flight (see nr_exit).
static __always_inline void record_death(struct task_struct *task, __u64 word, __u64 arg0)
{
	__u32 nr = word & NR_MASK;

	if (word == 0 || nr == nr_exit || nr == nr_exit_group)
		return;
	__u64 seq = __sync_fetch_and_add(&deaths_total, 1);
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
// a syscall in progress (ax = -ENOSYS) until it returns; arm64 keeps
// syscallno after the return, so a thread killed by a signal just after
// one would look killed inside it.
static __always_inline void record_death_regs(struct task_struct *task)
{
#if defined(__TARGET_ARCH_x86)
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);

	if (!regs || !regs_in_syscall(regs))
		return;
	__u64 nr = (__u64)regs_nr(regs);

	record_death(task, word_at(task, nr, bpf_ktime_get_ns()), regs_arg0(regs, task_abi(task, nr)));
#endif
}

// exit and exit_group never reach sys_exit. Storage is freed with the task
// anyway; deleting it here makes "created - released" an exact count of
// live entries, which the tests use to prove nothing leaks.
SEC("raw_tracepoint/sched_process_exit")
int thread_exit(struct bpf_raw_tracepoint_args *ctx)
{
	if (!is_target())
		return 0;

	struct task_struct *task = bpf_get_current_task_btf();
	exit_status = BPF_CORE_READ(task, exit_code);
	exited = 1;
	// The last thread of a tree member takes the process out of the tree
	// (signal->live has already counted it down): its pid may be reused
	// by a stranger once it is reaped.
	if (target_tree && BPF_CORE_READ(task, signal, live.counter) == 0) {
		__u32 tgid = BPF_CORE_READ(task, tgid);
		__u64 *w = tree_word(tgid);

		if (w)
			__sync_fetch_and_and(w, ~(1ULL << (tgid & 63)));
	}
	struct inflight *f = bpf_task_storage_get(&inflight, task, 0, 0);
	if (f)
		record_death(task, READ_ONCE(f->word), f->arg0);
	else
		record_death_regs(task);
	if (bpf_task_storage_delete(&inflight, task) == 0)
		count(COUNTER_STORAGE_RELEASED);
	clear_unrecorded();
	return 0;
}

// A member's children join the tree when they are forked, before they run
// a single instruction. Attached only in tree mode: every fork on the
// machine runs it.
SEC("raw_tracepoint/sched_process_fork")
int tree_fork(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *parent = (struct task_struct *)ctx->args[0];
	struct task_struct *child = (struct task_struct *)ctx->args[1];
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);

	if (!target_tree || ptgid == ctgid || !in_tree(ptgid))
		return 0;
	__u64 *w = tree_word(ctgid);
	if (w)
		__sync_fetch_and_or(w, 1ULL << (ctgid & 63));
	return 0;
}

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
	__u64 utime;       // user time in ns: grows only when the thread runs in user space
	__u8 comm[16];
	__u64 unrecorded_word;  // see struct unrecorded; 0 if the thread's latest entry was recorded
	__u64 unrecorded_since;
};

// Makes the type visible in BTF so bpf2go can generate its Go mirror.
const struct thread_rec *unused_thread_rec __attribute__((unused));

// The quiet set, from the agent's timeout table, set before load: a thread
// asleep interruptibly in one of these syscalls waits by design and breaks
// no rule however long it waits, and neither does a thread in user space.
// A pass that leaves such threads out and only counts them costs the agent
// nothing per idle thread, which is what lets it watch thousands. Indexed
// like fd_args; bit k set: quiet when every fd argument the iterator
// classifies is of kind k; QUIET_NO_FD: quiet when it classified none.
#define QUIET_NO_FD 0x80
volatile const __u8 quiet[FD_ARGS_LEN] = {};

// Set by the agent before each pass: nonzero leaves quiet threads out.
__u32 quiet_on = 0;

// The task flags that mark a thread the kernel made (monitor's
// workerFlags), set before load: such a thread is judged by its state only.
volatile const __u32 worker_flags = 0;

// What the latest pass left out: quiet threads in all, and per native
// syscall number those inside one, with the oldest entry time known (the
// in-flight word's, 0 when none). pass tags the entries the latest pass
// wrote; the agent bumps it before each pass, so nothing needs zeroing.
#define QUIET_NR 512

struct quiet_count {
	__u64 pass;
	__u64 threads;
	__u64 oldest; // kernel monotonic ns
};

__u64 quiet_pass = 0;
__u64 quiet_threads = 0;
__u64 quiet_threads_pass = 0;
struct quiet_count quiet_inflight[QUIET_NR] = {};

// Task states (include/linux/sched.h) as monitor/taskstate.go reads them.
#define TASK_INTERRUPTIBLE 0x0001
#define TASK_UNINTERRUPTIBLE 0x0002
#define TASK_STOPPED_BITS 0x000c // __TASK_STOPPED | __TASK_TRACED
#define TASK_DEAD_BIT 0x0080
#define TASK_WAKEKILL 0x0100
#define TASK_NOLOAD 0x0400
#define TASK_FROZEN_BIT 0x8000
#define PF_FROZEN_OLD 0x00010000
#define SIGNAL_GROUP_EXIT 0x00000004

// asleep_by_design is a thread state no state rule judges: an
// interruptible sleep, or TASK_IDLE (a long sleep its waker chose).
static __always_inline bool asleep_by_design(__u32 st)
{
	if (st & (TASK_DEAD_BIT | TASK_FROZEN_BIT | TASK_STOPPED_BITS))
		return false;
	if (st & TASK_INTERRUPTIBLE)
		return true;
	return (st & TASK_UNINTERRUPTIBLE) && (st & TASK_NOLOAD) && !(st & TASK_WAKEKILL);
}

// rec_syscall names the syscall rec's thread is in, as the snapshot's
// reader will judge it: the in-flight word's, else (a thread without
// storage) the registers'. BELIED: a word its registers belie.
enum { IN_USER = 0, IN_SYSCALL, BELIED };

static __always_inline int rec_syscall(struct thread_rec *rec, __u32 *nr, __u32 *abi)
{
	bool in_regs = rec->regs_nr >= 0;

	if (rec->word) {
		*nr = rec->word & NR_MASK;
		*abi = (rec->word >> ABI_SHIFT) & ((1 << ABI_BITS) - 1);
		if (!in_regs || *nr != ((__u64)rec->regs_nr & NR_MASK) || *abi != rec->regs_abi)
			return BELIED;
		return IN_SYSCALL;
	}
	if (in_regs && !rec->has_storage) {
		*nr = (__u64)rec->regs_nr & NR_MASK;
		*abi = rec->regs_abi;
		return IN_SYSCALL;
	}
	return IN_USER;
}

// is_quiet says whether rec may be left out of the pass. Anything a rule
// could judge is kept: D, running in the kernel, stopped, traced, frozen,
// exiting, dumping core, a zombie, a syscall outside the quiet set, a
// word its registers belie, and a thread whose entry went unrecorded
// (unknown, never healthy). Before the fds are classified (fds_known
// false) a syscall quiet on some fd kinds only is UNSURE.
enum { LOUD = 0, QUIET, UNSURE };

static __always_inline int is_quiet(struct thread_rec *rec, bool worker, bool fds_known)
{
	if (rec->unrecorded_word || rec->exit_state || rec->core_dump || rec->cgroup_frozen ||
	    (rec->signal_flags & SIGNAL_GROUP_EXIT) || (rec->flags & PF_FROZEN_OLD))
		return LOUD;
	bool sleeping = asleep_by_design(rec->state);
	__u32 nr = 0, abi = 0;
	int in = worker ? IN_USER : rec_syscall(rec, &nr, &abi);
	if (in == BELIED)
		return LOUD;
	if (in == IN_USER)
		return sleeping || rec->state == 0 ? QUIET : LOUD;
	if (!sleeping)
		return LOUD;
	__u32 idx = abi * FD_ARGS_NR + (nr & (FD_ARGS_NR - 1));
	barrier_var(idx);
	idx &= FD_ARGS_LEN - 1;
	__u8 mask = quiet[idx];
	if (mask == 0xff)
		return QUIET;
	if (!mask)
		return LOUD;
	if (!fds_known)
		return UNSURE;
	int fds = 0;
	for (int i = 0; i < 2; i++) {
		if (rec->fds[i].fd < 0)
			continue;
		fds++;
		if (!(mask & (1 << (rec->fds[i].kind & 7))))
			return LOUD;
	}
	return fds || (mask & QUIET_NO_FD) ? QUIET : LOUD;
}

// count_quiet adds a left-out thread to the pass's summary.
static __always_inline void count_quiet(struct thread_rec *rec)
{
	__u64 pass = quiet_pass;

	if (quiet_threads_pass != pass) {
		quiet_threads_pass = pass;
		quiet_threads = 0;
	}
	quiet_threads++;
	__u32 nr = 0, abi = 0;
	if (rec_syscall(rec, &nr, &abi) != IN_SYSCALL || abi != ABI_NATIVE || nr >= QUIET_NR)
		return;
	// The entry time is known only from a word.
	__u64 entered = (rec->word >> TS_BITS_SHIFT) << TS_SHIFT;
	struct quiet_count *q = &quiet_inflight[nr];
	if (q->pass != pass) {
		q->pass = pass;
		q->threads = 0;
		q->oldest = 0;
	}
	q->threads++;
	if (entered && (!q->oldest || entered < q->oldest))
		q->oldest = entered;
}

// Kernels before 5.14 name the field "state" and make it a long.
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

// Before 5.16 the core dump state hung off the mm.
struct mm_struct___pre516 {
	struct core_state *core_state;
} __attribute__((preserve_access_index));

// t is a trusted BTF pointer in both: plain loads.
static __always_inline __u32 task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return t->__state;
	return ((struct task_struct___pre514 *)t)->state;
}

static __always_inline bool dumping_core(struct task_struct *t)
{
	if (bpf_core_field_exists(struct signal_struct, core_state))
		return t->signal->core_state != NULL;
	struct mm_struct___pre516 *mm = (void *)BPF_CORE_READ(t, mm);
	return mm && BPF_CORE_READ(mm, core_state) != NULL;
}

SEC("iter/task")
int snapshot(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct thread_rec rec = {};

	// The link filters by pid where the kernel can (>= 6.1); this check
	// keeps older kernels, which walk every task, correct. A cgroup has no
	// link filter: its tasks are found by their cgroup's ancestry.
	if (!task)
		return 0;
	if (target_cgroup ? !task_in_target_cgroup(task) :
	    target_tree ? !in_tree(task->tgid) : task->tgid != target_tgid)
		return 0;

	// First what tells a quiet thread, in plain loads (task is a trusted
	// BTF pointer): most threads of a large service are quiet, and for
	// them the pass ends here.
	rec.tid = task->pid;
	rec.tgid = task->tgid;
	rec.state = task_state(task);
	rec.flags = task->flags;
	rec.exit_state = task->exit_state;
	rec.signal_flags = task->signal->flags;
	rec.core_dump = dumping_core(task);
	// cgroup v2 parks a frozen task in an interruptible sleep (its state
	// alone looks idle) and marks it with this bit; cgroup v1 and system
	// suspend use TASK_FROZEN, which the state shows.
	if (bpf_core_field_exists(task->frozen))
		rec.cgroup_frozen = BPF_CORE_READ_BITFIELD(task, frozen);

	struct inflight *f = bpf_task_storage_get(&inflight, task, 0, 0);
	if (f) {
		rec.has_storage = 1;
		rec.word = READ_ONCE(f->word);
	}
	read_unrecorded(task, &rec.unrecorded_word, &rec.unrecorded_since);

	rec.regs_nr = -1;
	rec.fds[0].fd = -1;
	rec.fds[1].fd = -1;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	bool in_regs = regs && regs_in_syscall(regs);
	if (in_regs) {
		rec.regs_nr = regs_nr(regs);
		rec.regs_abi = task_abi(task, rec.regs_nr);
	}
	bool worker = rec.flags & worker_flags;
	if (quiet_on && is_quiet(&rec, worker, false) == QUIET) {
		count_quiet(&rec);
		return 0;
	}

	rec.on_cpu = task->on_cpu;
	rec.voluntary = task->nvcsw;
	rec.switches = rec.voluntary + task->nivcsw;
	rec.utime = task->utime;
	if (f)
		rec.closing = f->closing;
	if (in_regs) {
		long nr = rec.regs_nr;
		regs_args(regs, rec.regs_abi, rec.args);

		__u32 idx = rec.regs_abi * FD_ARGS_NR + ((__u32)nr & (FD_ARGS_NR - 1));
		// Older verifiers (6.1) lose the bounds of that sum; a mask
		// the compiler cannot drop as redundant restores them.
		barrier_var(idx);
		idx &= FD_ARGS_LEN - 1;
		__u8 mask = fd_args[idx];
		int found = 0;
		for (int i = 0; i < 6; i++) {
			if (!(mask & (1 << i)) || found >= 2)
				continue;
			classify_fd(task, rec.args[i], &rec.fds[found & 1]);
			found++;
		}
	}
	if (quiet_on && is_quiet(&rec, worker, true) == QUIET) {
		count_quiet(&rec);
		return 0;
	}
	bpf_probe_read_kernel_str(rec.comm, sizeof(rec.comm), task->comm);
	rec.now = bpf_ktime_get_ns();
	bpf_seq_write(seq, &rec, sizeof(rec));
	return 0;
}
