/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * ioctls of /dev/faultmod, the test module that reproduces kernel bugs for
 * stallmon's VM scenarios. faultmod.go mirrors these numbers for Go, and its
 * test parses this file so the two cannot drift apart.
 */
#ifndef FAULTMOD_H
#define FAULTMOD_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define FAULTMOD_IOC_MAGIC 0xfa

/* Sleep in TASK_UNINTERRUPTIBLE until FAULTMOD_RELEASE; SIGKILL cannot end it. */
#define FAULTMOD_SLEEP_D _IO(FAULTMOD_IOC_MAGIC, 1)
/*
 * Take the global mutex, then BUG(): the oops kills the calling thread
 * inside the syscall with the mutex held. The argument must be
 * FAULTMOD_OOPS_CONFIRM, so that a stray call (or a probe for the ioctl)
 * fails with EINVAL instead of oopsing the kernel.
 */
#define FAULTMOD_OOPS_MUTEX _IO(FAULTMOD_IOC_MAGIC, 2)
#define FAULTMOD_OOPS_CONFIRM 0x0badc0deUL
/* Take and release the global mutex, as poll(2) on the device does too: both
 * block in D forever after an OOPS_MUTEX. */
#define FAULTMOD_LOCK _IO(FAULTMOD_IOC_MAGIC, 3)
/* Stay on the CPU in the kernel for *(__u32 *)arg seconds, or until FAULTMOD_RELEASE. */
#define FAULTMOD_SPIN _IOW(FAULTMOD_IOC_MAGIC, 4, __u32)
/* End every FAULTMOD_SLEEP_D, FAULTMOD_SLEEP_KILLABLE and FAULTMOD_SPIN in progress;
 * returns how many slept. */
#define FAULTMOD_RELEASE _IO(FAULTMOD_IOC_MAGIC, 5)

/*
 * BUG() with no lock held, argument FAULTMOD_OOPS_CONFIRM as for
 * FAULTMOD_OOPS_MUTEX: the oops kills the calling thread inside the
 * syscall and leaves the module as it was, so a scenario may oops more
 * than once (a 32-bit caller's, say).
 */
#define FAULTMOD_OOPS _IO(FAULTMOD_IOC_MAGIC, 8)

/*
 * Sleep in TASK_KILLABLE (state D) until FAULTMOD_RELEASE or a fatal
 * signal, which ends it with -EINTR: the D that SIGKILL does end, as
 * a vfork parent's or a page-cache read's.
 */
#define FAULTMOD_SLEEP_KILLABLE _IO(FAULTMOD_IOC_MAGIC, 9)

/* Longest FAULTMOD_SPIN accepted: a day is longer than any test waits. */
#define FAULTMOD_SPIN_MAX_SECONDS 86400

/*
 * Hold the kernel's per-CPU BPF task storage lock, bpf_task_storage_busy
 * (kernel/bpf/bpf_task_storage.c), on one CPU, as a task preempted inside
 * it does: until FAULTMOD_RELEASE_TASK_STORAGE or the close of this file,
 * bpf_task_storage_get() called from a tracing program on that CPU cannot
 * create a task's storage (6.2 and later) or even look it up (6.1), and
 * returns NULL. The symbol is static: the caller passes its per-CPU offset
 * from /proc/kallsyms, and the module refuses an offset whose value on that
 * CPU is not a plausible lock depth.
 */
struct faultmod_storage_hold {
	__u64 offset; /* &bpf_task_storage_busy, a per-CPU offset */
	__u32 cpu;
	__u32 pad;    /* must be 0 */
};
#define FAULTMOD_HOLD_TASK_STORAGE _IOW(FAULTMOD_IOC_MAGIC, 6, struct faultmod_storage_hold)
#define FAULTMOD_RELEASE_TASK_STORAGE _IO(FAULTMOD_IOC_MAGIC, 7)
/* Deepest bpf_task_storage_busy a hold accepts finding: nesting is shallow. */
#define FAULTMOD_STORAGE_DEPTH_MAX 8

#endif /* FAULTMOD_H */
