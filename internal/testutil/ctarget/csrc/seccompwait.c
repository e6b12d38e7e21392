/*
 * seccompwait: a syscall held, before it even starts, by a seccomp
 * user-notification supervisor (what LXD, Incus or Sysbox do to emulate
 * mknod or mount for a container). The filter sends every mkdirat(2) of
 * this process to a listener and runs everything else; the kernel holds
 * the caller in the seccomp hook, before the sys_enter tracepoint, asleep
 * in S, until the listener answers.
 *
 * Prints "ready pid=N listener=FD": FD is the listener, open in this
 * process, for a supervisor to take with pidfd_getfd(2). While it stays
 * open nobody answering means the syscall waits for ever. Then, for each
 * line "mkdir PATH" on stdin, the main thread makes one getppid(2) (so that
 * a syscall tracer has seen the thread) and mkdirat(AT_FDCWD, PATH, 0700),
 * and prints "ok ret=R errno=E" once it returns. Exits 0 at EOF.
 *
 * Built with -m32 it holds the ia32 mkdirat (296) instead of the 64-bit
 * one (258).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__i386__)
#define ARCH AUDIT_ARCH_I386
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#else
#error "seccompwait knows x86_64, i386 and aarch64"
#endif

int main(void)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mkdirat, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = sizeof(filter) / sizeof(filter[0]),
		.filter = filter,
	};
	char line[4096];

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		perror("prctl(PR_SET_NO_NEW_PRIVS)");
		return 1;
	}
	int listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	if (listener < 0) {
		perror("seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER)");
		return 1;
	}
	printf("ready pid=%d listener=%d\n", (int)getpid(), listener);
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = 0;
		if (strncmp(line, "mkdir ", 6) != 0) {
			printf("err unknown command %s\n", line);
			fflush(stdout);
			continue;
		}
		syscall(SYS_getppid);
		long ret = syscall(SYS_mkdirat, AT_FDCWD, line + 6, 0700);
		printf("ok ret=%ld errno=%d\n", ret, ret < 0 ? errno : 0);
		fflush(stdout);
	}
	return 0;
}
