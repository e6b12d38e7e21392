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
/* End every FAULTMOD_SLEEP_D and FAULTMOD_SPIN in progress; returns how many slept. */
#define FAULTMOD_RELEASE _IO(FAULTMOD_IOC_MAGIC, 5)

/* Longest FAULTMOD_SPIN accepted: a day is longer than any test waits. */
#define FAULTMOD_SPIN_MAX_SECONDS 86400

#endif /* FAULTMOD_H */
