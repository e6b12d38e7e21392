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

// The in-flight word packs the syscall number (low NR_BITS) with the entry
// time (upper bits, in units of 2^TS_SHIFT ns, about 1 us). One aligned
// 64-bit store publishes both at once: a reader racing with sys_enter can
// never pair a new syscall number with the previous syscall's timestamp,
// which would show a fast syscall as hours old. 0 means "not in a syscall".
#define NR_BITS 12
#define NR_MASK ((1ULL << NR_BITS) - 1)
#define TS_SHIFT 10

#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

struct inflight {
	__u64 word;
	__u64 arg0;
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
	if (nr >= HIST_NR)
		return;
	struct latency_hist *h = bpf_map_lookup_elem(&syscall_latency_seconds, &nr);
	if (!h)
		return;
	__u64 units = (bpf_ktime_get_ns() >> TS_SHIFT) - (word >> NR_BITS);
	__u32 slot = units ? log2_u64(units) + 1 : 0;
	if (slot >= HIST_BUCKETS)
		slot = HIST_BUCKETS - 1;
	__sync_fetch_and_add(&h->buckets[slot], 1);
	__sync_fetch_and_add(&h->sum, units);
}

static __always_inline bool is_target(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
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
			return 0;
		}
		count(COUNTER_STORAGE_CREATED);
	}

	__u64 nr = ctx->args[1];
	if (nr > NR_MASK) {
		count(COUNTER_NR_TOO_LARGE);
		nr = NR_MASK;
	}

	struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
	f->arg0 = PT_REGS_PARM1_CORE_SYSCALL(regs);
	// arg0 is informational (the fd): a racing reader may pair it with
	// the previous word, which only ever mislabels a syscall that has
	// just returned. The word alone decides what is in flight.
	__u64 ts = bpf_ktime_get_ns() >> TS_SHIFT;
	WRITE_ONCE(f->word, (ts << NR_BITS) | nr);
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
static __always_inline void record_death(struct task_struct *task, struct inflight *f)
{
	__u64 word = READ_ONCE(f->word);
	__u32 nr = word & NR_MASK;

	if (word == 0 || nr == nr_exit || nr == nr_exit_group)
		return;
	__u64 seq = __sync_fetch_and_add(&deaths_total, 1);
	__u32 slot = seq % DEATHS;
	struct death *d = bpf_map_lookup_elem(&deaths, &slot);
	if (!d)
		return;
	d->word = word;
	d->arg0 = f->arg0;
	d->at = bpf_ktime_get_ns();
	d->tid = BPF_CORE_READ(task, pid);
	d->exit_code = BPF_CORE_READ(task, exit_code);
	bpf_probe_read_kernel_str(d->comm, sizeof(d->comm), task->comm);
	WRITE_ONCE(d->seq, seq + 1);
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
	struct inflight *f = bpf_task_storage_get(&inflight, task, 0, 0);
	if (f)
		record_death(task, f);
	if (bpf_task_storage_delete(&inflight, task) == 0)
		count(COUNTER_STORAGE_RELEASED);
	return 0;
}

// One record per thread of the target, written by the task iterator.
struct thread_rec {
	__u32 tid;
	__u32 state;       // task->__state (TASK_* bits)
	__u64 word;        // struct inflight.word, 0 if not in a syscall
	__u64 arg0;
	__u64 now;         // bpf_ktime_get_ns() when this record was made
	__u8 comm[16];
	__u32 has_storage; // 1 if the thread has storage
	__u32 on_cpu;      // 1 if running on a CPU right now
};

// Makes the type visible in BTF so bpf2go can generate its Go mirror.
const struct thread_rec *unused_thread_rec __attribute__((unused));

// Kernels before 5.14 name the field "state" and make it a long.
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

static __always_inline __u32 task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___pre514 *)t, state);
}

SEC("iter/task")
int snapshot(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct thread_rec rec = {};

	// The link filters by pid where the kernel can (>= 6.1); this check
	// keeps older kernels, which walk every task, correct.
	if (!task || task->tgid != target_tgid)
		return 0;

	rec.tid = task->pid;
	rec.state = task_state(task);
	rec.on_cpu = BPF_CORE_READ(task, on_cpu);
	bpf_probe_read_kernel_str(rec.comm, sizeof(rec.comm), task->comm);

	struct inflight *f = bpf_task_storage_get(&inflight, task, 0, 0);
	if (f) {
		rec.has_storage = 1;
		rec.word = READ_ONCE(f->word);
		rec.arg0 = f->arg0;
	}
	rec.now = bpf_ktime_get_ns();
	bpf_seq_write(seq, &rec, sizeof(rec));
	return 0;
}
