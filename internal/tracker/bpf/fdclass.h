// What a file descriptor refers to, classified in the kernel: for the fd
// arguments of a blocked syscall (the iterator) and for the fd close(2)
// closes (sys_enter). The agent judges a syscall by what it waits on, and
// its fdkind.Kind values must equal enum fd_kind's: a test in
// internal/tracker compares them through the generated Go constants.

#ifndef STALLMON_FDCLASS_H
#define STALLMON_FDCLASS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

// What close(2) closes, classified at sys_enter: by the time a close
// waits (a tty draining its output, an NFS flush) the fd is gone from the
// table, and the iterator could no longer tell what it was.
struct fd_class {
	__s32 fd;
	__u32 kind;
	__u64 magic; // the super block's s_magic: which file system
};

// Which arguments of each syscall are file descriptors, a bit per argument,
// indexed by ABI * FD_ARGS_NR + number (ABI 3 unused); set by the agent before load from
// its syscall tables. The iterator classifies the first two.
enum fd_args_table {
	FD_ARGS_NR = 1024,
	FD_ARGS_LEN = 4 * FD_ARGS_NR, // a power of two, so a mask bounds any index
};
volatile const __u8 fd_args[FD_ARGS_LEN] = {};

// close(2)'s number in the native and the compat table, set before load.
volatile const __u32 nr_close = 0;
volatile const __u32 nr_close_compat = 0;

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
	KIND_MAX, // how many kinds there are
};

// An enum reaches BTF, and so bpf2go, only if something refers to it.
const enum fd_args_table *unused_fd_args_table __attribute__((unused));
const enum fd_kind *unused_fd_kind __attribute__((unused));

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

#endif
