// Per-architecture access to a task's saved user registers and to the ABI
// of its syscall: the only code that differs between the x86 and the arm64
// objects. Everything else reads registers through these functions.

#ifndef STALLMON_REGS_H
#define STALLMON_REGS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "build.h"
#include "once.h"
#include "word.h"

#ifdef STALLMON_MINIMAL

// bpf_task_pt_regs came in 5.15. A task's saved user registers sit at a
// fixed offset from its kernel stack's base (the top of the stack, less
// any padding: x86's FRED or KASAN change the offset, not its being
// fixed), which sys_enter measures once from the pointer its tracepoint
// hands it (calibrate_regs). Until then task_regs has no answer; the
// agent refuses to start the minimal tracker before it has one
// (internal/tracker/regsoffset.go).
__u64 regs_offset = 0;

// A kernel stack is 16 KB (32 KB with KASAN, 64 KB on some arm64
// configurations): an offset beyond this is no pt_regs of the stack.
#define REGS_OFFSET_MAX (1 << 20)

static __always_inline struct pt_regs *task_regs(struct task_struct *t)
{
	__u64 off = READ_ONCE(regs_offset);

	if (!off)
		return NULL;
	__u64 stack = (__u64)BPF_CORE_READ(t, stack);
	return stack ? (struct pt_regs *)(stack + off) : NULL;
}

// calibrate_regs measures regs_offset from any thread's sys_enter (ctx's
// first argument is its pt_regs), once.
static __always_inline void calibrate_regs(struct bpf_raw_tracepoint_args *ctx)
{
	if (READ_ONCE(regs_offset))
		return;
	__u64 regs = ctx->args[0];
	__u64 stack = (__u64)BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), stack);

	if (stack && regs > stack && regs - stack < REGS_OFFSET_MAX)
		WRITE_ONCE(regs_offset, regs - stack);
}

// sys_enter's registers: its tracepoint's own argument.
#define enter_regs(ctx, task) ((struct pt_regs *)(ctx)->args[0])

#else

#define task_regs(t) ((struct pt_regs *)bpf_task_pt_regs(t))
#define calibrate_regs(ctx)
#define enter_regs(ctx, task) task_regs(task)

#endif

// Saved user registers. A task's pt_regs hold what it entered the kernel
// with: for a task inside a syscall, the syscall number and its arguments,
// whether it sleeps or runs. An interrupt or fault taken in user mode
// overwrites them, so the syscall number alone is not proof; the entry
// code's own marks are (see regs_in_syscall). Every r below but
// probe_syscall's is the BTF pointer bpf_task_pt_regs returns, read with
// plain loads: a probe-read helper call each would cost the target's every
// syscall (sys_enter reads arg0) and the iterator each thread it lists.
#if defined(__TARGET_ARCH_x86)

#define TS_COMPAT 0x0002            // thread_info.status: a 32-bit syscall is active
#define X32_SYSCALL_BIT 0x40000000ULL
#define ENOSYS 38

// t is a trusted BTF pointer (the current task, the iterator's task): a
// direct load, not a probe-read helper, on every syscall of the target.
static __always_inline __u32 task_abi(struct task_struct *t, __u64 nr)
{
	if (KREAD(t, thread_info.status) & TS_COMPAT)
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
	return KREAD(r, orig_ax);
}

static __always_inline bool regs_in_syscall(struct pt_regs *r)
{
	return (long)KREAD(r, orig_ax) >= 0 && (long)KREAD(r, ax) == -ENOSYS;
}

// regs_returned, where regs_in_syscall(r) holds: the syscall the registers
// name has returned all the same. Never on x86: the return replaces the
// -ENOSYS that regs_in_syscall checks (unless it returns -ENOSYS itself).
static __always_inline bool regs_returned(struct pt_regs *r)
{
	return false;
}

static __always_inline __u64 regs_arg0(struct pt_regs *r, __u32 abi)
{
	return abi == ABI_COMPAT ? (__u32)KREAD(r, bx) : KREAD(r, di);
}

static __always_inline void regs_args(struct pt_regs *r, __u32 abi, __u64 a[6])
{
	if (abi == ABI_COMPAT) {
		a[0] = (__u32)KREAD(r, bx);
		a[1] = (__u32)KREAD(r, cx);
		a[2] = (__u32)KREAD(r, dx);
		a[3] = (__u32)KREAD(r, si);
		a[4] = (__u32)KREAD(r, di);
		a[5] = (__u32)KREAD(r, bp);
		return;
	}
	a[0] = KREAD(r, di);
	a[1] = KREAD(r, si);
	a[2] = KREAD(r, dx);
	a[3] = KREAD(r, r10);
	a[4] = KREAD(r, r8);
	a[5] = KREAD(r, r9);
}

// probe_syscall is regs_in_syscall, regs_nr and task_abi for a task the
// program holds no trusted pointer to (a vfork child, found through its
// parent), read with probe reads from its registers at r: the syscall
// number (x32's bit included), or -1 outside any syscall.
static __always_inline long probe_syscall(struct task_struct *t, struct pt_regs *r, __u32 *abi)
{
	long nr = BPF_CORE_READ(r, orig_ax);

	if (nr < 0 || (long)BPF_CORE_READ(r, ax) != -ENOSYS)
		return -1;
	if (BPF_CORE_READ(t, thread_info.status) & TS_COMPAT)
		*abi = ABI_COMPAT;
	else
		*abi = nr & X32_SYSCALL_BIT ? ABI_X32 : ABI_NATIVE;
	return nr;
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
	return (KREAD(r, pstate) & PSR_MODE32_BIT) ? ABI_COMPAT : ABI_NATIVE;
}

static __always_inline __u32 task_abi(struct task_struct *t, __u64 nr)
{
	struct pt_regs___stallmon *r = (struct pt_regs___stallmon *)task_regs(t);

#ifdef STALLMON_MINIMAL
	// Only the minimal object's task_regs fails, before calibration.
	if (!r)
		return ABI_NATIVE;
#endif
	return regs_abi(r);
}

// arm64's entry code stores NO_SYSCALL (-1) in syscallno for every
// exception that is not a syscall.
static __always_inline long regs_nr(struct pt_regs *r)
{
	struct pt_regs___stallmon *ar = (struct pt_regs___stallmon *)r;

	return KREAD(ar, syscallno);
}

static __always_inline bool regs_in_syscall(struct pt_regs *r)
{
	return regs_nr(r) >= 0;
}

// regs_returned, where regs_in_syscall(r) holds: the syscall the registers
// name has returned all the same. syscallno stays after the return, but
// the return value replaces x0, which the entry code copied to orig_x0:
// until then they are equal (and after a return of the first argument's
// value, which this cannot tell).
static __always_inline bool regs_returned(struct pt_regs *r)
{
	struct pt_regs___stallmon *ar = (struct pt_regs___stallmon *)r;

	return KREAD(ar, regs[0]) != KREAD(ar, orig_x0);
}

static __always_inline __u64 regs_arg0(struct pt_regs *r, __u32 abi)
{
	struct pt_regs___stallmon *ar = (struct pt_regs___stallmon *)r;
	__u64 v = KREAD(ar, orig_x0);

	return abi == ABI_COMPAT ? (__u32)v : v;
}

static __always_inline void regs_args(struct pt_regs *r, __u32 abi, __u64 a[6])
{
	struct pt_regs___stallmon *ar = (struct pt_regs___stallmon *)r;

	a[0] = KREAD(ar, orig_x0);
	a[1] = KREAD(ar, regs[1]);
	a[2] = KREAD(ar, regs[2]);
	a[3] = KREAD(ar, regs[3]);
	a[4] = KREAD(ar, regs[4]);
	a[5] = KREAD(ar, regs[5]);
	if (abi == ABI_COMPAT) {
		for (int i = 0; i < 6; i++)
			a[i] = (__u32)a[i];
	}
}

// probe_syscall: see the x86 version. The task it reads has no word, so
// a syscall its registers name counts only if it has not returned (see
// regs_returned).
static __always_inline long probe_syscall(struct task_struct *t, struct pt_regs *r, __u32 *abi)
{
	struct pt_regs___stallmon *ar = (struct pt_regs___stallmon *)r;
	long nr = BPF_CORE_READ(ar, syscallno);

	if (nr < 0 || BPF_CORE_READ(ar, regs[0]) != BPF_CORE_READ(ar, orig_x0))
		return -1;
	*abi = BPF_CORE_READ(ar, pstate) & PSR_MODE32_BIT ? ABI_COMPAT : ABI_NATIVE;
	return nr;
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

#endif
