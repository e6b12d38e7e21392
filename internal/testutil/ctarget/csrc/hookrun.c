/*
 * hookrun: runs a BPF program of another process, on its own thread,
 * with BPF_PROG_TEST_RUN: the program then runs with this thread inside
 * bpf(2), as stallmon's exit hook runs on a thread that the kernel kills
 * inside a syscall (an oops). Built with -m32 or -mx32, that syscall is
 * one of the 32-bit ABI's (bpf is 357 on ia32, close to nothing on amd64).
 *
 * Prints "ready pid=N", then reads "PID FD" from stdin: the program is
 * descriptor FD of process PID, taken with pidfd_getfd(2) (root, or
 * ptrace rights over PID). Prints "ran tid=T retval=R" once it ran, then
 * waits for EOF on stdin and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void die(const char *what, int err)
{
	fprintf(stderr, "hookrun: %s: %s\n", what, strerror(err));
	exit(1);
}

int main(void)
{
	/* A raw tracepoint's test context is its u64 arguments. */
	uint64_t ctx[2] = {0, 0};
	union bpf_attr attr;
	char line[64];
	int pid, fd, pidfd, prog;

	printf("ready pid=%d\n", (int)getpid());
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin) || sscanf(line, "%d %d", &pid, &fd) != 2)
		die("reading \"PID FD\" from stdin", EINVAL);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		die("pidfd_open", errno);
	prog = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	if (prog < 0)
		die("pidfd_getfd", errno);
	memset(&attr, 0, sizeof attr);
	attr.test.prog_fd = (uint32_t)prog;
	attr.test.ctx_in = (uint64_t)(uintptr_t)ctx;
	attr.test.ctx_size_in = sizeof ctx;
	if (syscall(SYS_bpf, BPF_PROG_TEST_RUN, &attr, sizeof attr) != 0)
		die("BPF_PROG_TEST_RUN", errno);
	printf("ran tid=%d retval=%u\n", (int)syscall(SYS_gettid), attr.test.retval);
	fflush(stdout);
	while (fgets(line, sizeof line, stdin))
		;
	return 0;
}
