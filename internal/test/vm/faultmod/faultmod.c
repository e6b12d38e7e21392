// SPDX-License-Identifier: GPL-2.0
//go:build ignore

/*
 * faultmod: a misc device whose ioctls reproduce the kernel bugs stallmon
 * exists to detect (a task stuck in D for good, an oops that leaves a lock
 * held, a syscall that never leaves the CPU), and the kernel states that
 * blind stallmon's own tracker (the BPF task storage lock held on a CPU).
 * Test-only: load it in a VM.
 */
#include <linux/atomic.h>
#include <linux/fs.h>
#include <linux/ktime.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/percpu.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

#include "faultmod.h"

static DEFINE_MUTEX(faultmod_mutex);
static DECLARE_WAIT_QUEUE_HEAD(release_wq);

/*
 * Each FAULTMOD_RELEASE starts a new generation: sleepers and spinners end
 * when it differs from the one they started in, so a release never frees a
 * caller that arrives after it.
 */
static atomic_t release_gen = ATOMIC_INIT(0);
static atomic_t sleepers = ATOMIC_INIT(0);

static long faultmod_sleep_d(void)
{
	int gen = atomic_read(&release_gen);
	DEFINE_WAIT(wait);

	atomic_inc(&sleepers);
	for (;;) {
		/* Plain TASK_UNINTERRUPTIBLE, not TASK_KILLABLE: the point is a
		 * task that SIGKILL cannot end. */
		prepare_to_wait(&release_wq, &wait, TASK_UNINTERRUPTIBLE);
		if (atomic_read(&release_gen) != gen)
			break;
		schedule();
	}
	finish_wait(&release_wq, &wait);
	atomic_dec(&sleepers);
	return 0;
}

/*
 * faultmod_sleep_d's twin in TASK_KILLABLE: a fatal signal ends it. Kept a
 * function of its own, each called once, so that both stay inlined into
 * faultmod_ioctl, the frame the tests look for in a hung thread's stack.
 */
static long faultmod_sleep_killable(void)
{
	int gen = atomic_read(&release_gen);
	long ret = 0;
	DEFINE_WAIT(wait);

	atomic_inc(&sleepers);
	for (;;) {
		prepare_to_wait(&release_wq, &wait, TASK_KILLABLE);
		if (atomic_read(&release_gen) != gen)
			break;
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		schedule();
	}
	finish_wait(&release_wq, &wait);
	atomic_dec(&sleepers);
	return ret;
}

static long faultmod_spin(u32 __user *uarg)
{
	int gen = atomic_read(&release_gen);
	ktime_t end;
	u32 secs;

	if (get_user(secs, uarg))
		return -EFAULT;
	if (secs > FAULTMOD_SPIN_MAX_SECONDS)
		return -EINVAL;
	/* ktime rather than jiffies: a jiffies deadline ends up to a tick
	 * early, and callers check that the whole time went by. */
	end = ktime_add_ms(ktime_get(), (u64)secs * MSEC_PER_SEC);
	/* cond_resched() lets other tasks and the watchdogs run, so this is a
	 * syscall that stays on the CPU, not a lockup. */
	while (ktime_before(ktime_get(), end) && atomic_read(&release_gen) == gen)
		cond_resched();
	return 0;
}

static long faultmod_oops_mutex(unsigned long arg)
{
	if (arg != FAULTMOD_OOPS_CONFIRM)
		return -EINVAL;
	mutex_lock(&faultmod_mutex);
	pr_emerg("faultmod: BUG() with faultmod_mutex held, pid %d\n", task_pid_nr(current));
	BUG();
	return 0;
}

static long faultmod_oops(unsigned long arg)
{
	if (arg != FAULTMOD_OOPS_CONFIRM)
		return -EINVAL;
	pr_emerg("faultmod: BUG() without a lock, pid %d\n", task_pid_nr(current));
	BUG();
	return 0;
}

static long faultmod_lock(void)
{
	mutex_lock(&faultmod_mutex);
	mutex_unlock(&faultmod_mutex);
	return 0;
}

/*
 * poll(2) takes the global mutex too, and reports nothing ready without
 * poll_wait(): before an oops a poll with a timeout sleeps interruptibly
 * until it (an idle event loop, healthy); after FAULTMOD_OOPS_MUTEX it
 * blocks in mutex_lock in D for good, SIGKILL or not: the incident of an
 * event loop stuck in an "unbounded" syscall on a lock an oops left held.
 */
static __poll_t faultmod_poll(struct file *file, poll_table *wait)
{
	mutex_lock(&faultmod_mutex);
	mutex_unlock(&faultmod_mutex);
	return 0;
}

static long faultmod_release(void)
{
	int n = atomic_read(&sleepers);

	atomic_inc(&release_gen);
	wake_up_all(&release_wq);
	return n;
}

/*
 * A task storage hold belongs to the file that took it, so a test that dies
 * never leaves a CPU's task storage locked for the tests after it.
 */
struct faultmod_file {
	int __percpu *held; /* bpf_task_storage_busy while held, else NULL */
	unsigned int cpu;
};

/* Not faultmod_mutex: an OOPS_MUTEX leaves that one held for good. */
static DEFINE_MUTEX(hold_mutex);

/*
 * Run on the held CPU by IPI: one this_cpu instruction, which the kernel's
 * own this_cpu_inc_return/this_cpu_dec on that CPU cannot interleave with.
 */
static void storage_busy_inc(void *counter)
{
	this_cpu_inc(*(int __percpu *)counter);
}

static void storage_busy_dec(void *counter)
{
	this_cpu_dec(*(int __percpu *)counter);
}

static long faultmod_hold_task_storage(struct faultmod_file *ff, struct faultmod_storage_hold __user *uarg)
{
	struct faultmod_storage_hold h;
	int __percpu *busy;
	long err = 0;
	int depth;

	if (copy_from_user(&h, uarg, sizeof(h)))
		return -EFAULT;
	if (h.pad || h.offset % sizeof(int) || h.cpu >= nr_cpu_ids || !cpu_online(h.cpu))
		return -EINVAL;
	busy = (int __percpu *)(unsigned long)h.offset;
	/* A wrong offset is refused here rather than written to. */
	if (copy_from_kernel_nofault(&depth, per_cpu_ptr(busy, h.cpu), sizeof(depth)))
		return -EFAULT;
	if (depth < 0 || depth > FAULTMOD_STORAGE_DEPTH_MAX)
		return -EINVAL;
	mutex_lock(&hold_mutex);
	if (ff->held) {
		err = -EBUSY;
	} else {
		err = smp_call_function_single(h.cpu, storage_busy_inc, (void __force *)busy, 1);
		if (!err) {
			ff->held = busy;
			ff->cpu = h.cpu;
		}
	}
	mutex_unlock(&hold_mutex);
	return err;
}

static long faultmod_release_task_storage(struct faultmod_file *ff)
{
	long err = 0;

	mutex_lock(&hold_mutex);
	if (ff->held) {
		err = smp_call_function_single(ff->cpu, storage_busy_dec, (void __force *)ff->held, 1);
		if (!err)
			ff->held = NULL;
	}
	mutex_unlock(&hold_mutex);
	return err;
}

static int faultmod_open(struct inode *inode, struct file *file)
{
	struct faultmod_file *ff = kzalloc(sizeof(*ff), GFP_KERNEL);

	if (!ff)
		return -ENOMEM;
	file->private_data = ff;
	return 0;
}

static int faultmod_file_release(struct inode *inode, struct file *file)
{
	faultmod_release_task_storage(file->private_data);
	kfree(file->private_data);
	return 0;
}

static long faultmod_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	switch (cmd) {
	case FAULTMOD_HOLD_TASK_STORAGE:
		return faultmod_hold_task_storage(file->private_data, (struct faultmod_storage_hold __user *)arg);
	case FAULTMOD_RELEASE_TASK_STORAGE:
		return faultmod_release_task_storage(file->private_data);
	case FAULTMOD_SLEEP_D:
		return faultmod_sleep_d();
	case FAULTMOD_SLEEP_KILLABLE:
		return faultmod_sleep_killable();
	case FAULTMOD_OOPS_MUTEX:
		return faultmod_oops_mutex(arg);
	case FAULTMOD_OOPS:
		return faultmod_oops(arg);
	case FAULTMOD_LOCK:
		return faultmod_lock();
	case FAULTMOD_SPIN:
		return faultmod_spin((u32 __user *)arg);
	case FAULTMOD_RELEASE:
		return faultmod_release();
	}
	return -ENOTTY;
}

static const struct file_operations faultmod_fops = {
	.owner = THIS_MODULE,
	.open = faultmod_open,
	.release = faultmod_file_release,
	.unlocked_ioctl = faultmod_ioctl,
	.poll = faultmod_poll,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice faultmod_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "faultmod",
	.fops = &faultmod_fops,
	.mode = 0600,
};

module_misc_device(faultmod_dev);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Reproduces stuck-syscall kernel bugs for stallmon's VM tests");
