/*
 * ioctlcall: a process one thread of which makes one ioctl(2) on a device
 * while the main thread lives on, for ioctls that never return or kill
 * their caller (internal/test/vm's faultmod): built with -m32, that is a
 * 32-bit caller (ioctl is 54 on ia32, 16 on amd64), for the VM scenarios.
 *
 *   ioctlcall PATH REQUEST ARG
 *
 * opens PATH and prints "ready pid=N fd=F", then waits for a line on
 * stdin. A second thread then prints "calling tid=T" and makes
 * ioctl(F, REQUEST, ARG) (numbers in C syntax: 0x... for hex), and prints
 * "returned ret=R errno=E" if it returns. The main thread reads stdin on
 * until EOF, and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fd;
static unsigned long request, arg;

static void *caller(void *unused)
{
	long ret;

	(void)unused;
	printf("calling tid=%d\n", (int)syscall(SYS_gettid));
	fflush(stdout);
	ret = syscall(SYS_ioctl, fd, request, arg);
	printf("returned ret=%ld errno=%d\n", ret, ret < 0 ? errno : 0);
	fflush(stdout);
	return NULL;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "ioctlcall: %s: %s\n", what, strerror(err));
	exit(1);
}

int main(int argc, char **argv)
{
	char line[256];
	pthread_t th;
	int err;

	if (argc != 4) {
		fprintf(stderr, "usage: ioctlcall PATH REQUEST ARG\n");
		return 2;
	}
	request = strtoul(argv[2], NULL, 0);
	arg = strtoul(argv[3], NULL, 0);
	fd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die(argv[1], errno);
	printf("ready pid=%d fd=%d\n", (int)getpid(), fd);
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		die("waiting for a line on stdin", errno ? errno : EIO);
	if ((err = pthread_create(&th, NULL, caller, NULL)) != 0)
		die("pthread_create", err);
	while (fgets(line, sizeof line, stdin))
		;
	return 0;
}
