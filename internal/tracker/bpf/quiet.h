// The quiet set: threads that wait by design, which the iterator counts
// instead of listing, so that a pass costs the agent nothing per idle
// thread. The agent lays out the quiet table (internal/tracker/quiet.go)
// with the bits of enum quiet_set, generated into Go by bpf2go's -type.

#ifndef STALLMON_QUIET_H
#define STALLMON_QUIET_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "fdclass.h"
#include "maps.h"
#include "native.h"
#include "taskstate.h"
#include "word.h"

// The quiet set, from the agent's timeout table, set before load: a thread
// asleep interruptibly in one of these syscalls waits by design and breaks
// no rule however long it waits, and neither does a thread in user space.
// A pass that leaves such threads out and only counts them costs the agent
// nothing per idle thread, which is what lets it watch thousands. Indexed
// like fd_args; bit k set: quiet when every fd argument the iterator
// classifies is of kind k; QUIET_NO_FD: quiet when it classified none;
// QUIET_ANY_FD, every bit: quiet whatever the fds, known before they are
// classified.
enum quiet_set {
	QUIET_NO_FD = 0x80,
	QUIET_ANY_FD = 0xff,
	QUIET_NR = 512, // the native syscall numbers quiet_inflight counts (native.h)
};

_Static_assert(KIND_MAX <= 7, "a quiet mask has a bit per fd kind below QUIET_NO_FD");

// An enum reaches BTF, and so bpf2go, only if something refers to it.
const enum quiet_set *unused_quiet_set __attribute__((unused));

volatile const __u8 quiet[FD_ARGS_LEN] = {};

// Set by the agent before each pass: nonzero leaves quiet threads out.
__u32 quiet_on = 0;

// The task flags that mark a thread the kernel made (the tracker's
// workerFlags: PF_IO_WORKER, and PF_USER_WORKER where the kernel has it),
// set before load: such a thread is judged by its state only.
volatile const __u32 worker_flags = 0;

// What the latest pass left out: quiet threads in all, and per native
// syscall number (a 32-bit call under the native call it is) those inside
// one, with the oldest entry time known (the
// in-flight word's, 0 when none). pass tags the entries the latest pass
// wrote; the agent bumps it before each pass, so nothing needs zeroing.
struct quiet_count {
	__u64 pass;
	__u64 threads;
	__u64 oldest; // kernel monotonic ns
};

__u64 quiet_pass = 0;
__u64 quiet_threads = 0;
__u64 quiet_threads_pass = 0;
struct quiet_count quiet_inflight[QUIET_NR] = {};

// rec_syscall names the syscall rec's thread is in, as the snapshot's
// reader will judge it: the in-flight word's, else the registers'. Without
// a word the registers hold the syscall of a thread without storage (in
// flight since before attach, or the sampled tracker's every thread) and
// of one asleep in it before sys_enter could record it (a seccomp
// user-notification supervisor holds it; the iterator left out registers
// that hold a syscall already returned). BELIED: a word its registers
// belie.
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
	if (in_regs && (!rec->has_storage || asleep_in_kernel(rec->state))) {
		*nr = (__u64)rec->regs_nr & NR_MASK;
		*abi = rec->regs_abi;
		return IN_SYSCALL;
	}
	return IN_USER;
}

// is_quiet says whether rec may be left out of the pass. Anything a rule
// could judge is kept: D, running in the kernel, asleep outside any
// syscall (a page fault: nothing waits there by design), stopped, traced,
// frozen, exiting, dumping core, a zombie, a syscall outside the quiet
// set, a word its registers belie, and a thread whose entry went
// unrecorded (unknown, never healthy). A thread the kernel made is judged
// by its state only: asleep interruptibly it idles. Before the fds are
// classified (fds_known false) a syscall quiet on some fd kinds only is
// UNSURE.
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
	// Outside any syscall only a thread in user space, running or
	// runnable, is quiet. A thread of the process asleep there is in a
	// page fault; a worker the kernel made asleep is doing the process's
	// I/O, or waiting for some: only its wait site (waitsite.h), read in
	// user space, tells which. Both are listed.
	if (in == IN_USER)
		return rec->state == 0 ? QUIET : LOUD;
	if (!sleeping)
		return LOUD;
	__u32 idx = abi * FD_ARGS_NR + (nr & (FD_ARGS_NR - 1));
	barrier_var(idx);
	idx &= FD_ARGS_LEN - 1;
	__u8 mask = quiet[idx];
	if (mask == QUIET_ANY_FD)
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
	if (rec_syscall(rec, &nr, &abi) != IN_SYSCALL)
		return;
	nr = native_nr(abi, nr);
	if (nr >= QUIET_NR)
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

#endif
