/*
 * threadexit: a process whose worker thread returns normally and which
 * then exits with status 0: the two ways a thread legitimately ends
 * inside a syscall, exit(2) (glibc's end of a thread that returns) and
 * exit_group(2) (the end of main). Each ABI numbers them its own way:
 * amd64 60 and 231, ia32 1 and 252 (write and ioprio_get on amd64), x32
 * 60 and 231 with bit 30 set. Built with -m32 or -mx32, a tracker that
 * takes these numbers for native ones sees a thread die inside write.
 *
 * Without arguments it runs at once. With "wait" it first prints
 * "ready pid=N" and waits for a line on stdin, so that a watcher can
 * attach first; it then prints "done tid=T" (the worker's tid) before it
 * exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *worker(void *arg)
{
	/* One ordinary syscall first, so the worker has been seen inside
	 * one before it ends in exit(2). */
	*(pid_t *)arg = (pid_t)syscall(SYS_gettid);
	return NULL;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "threadexit: %s: %s\n", what, strerror(err));
	exit(1);
}

int main(int argc, char **argv)
{
	int wait = argc > 1 && strcmp(argv[1], "wait") == 0;
	pid_t tid = 0;
	pthread_t th;
	char line[64];
	int err;

	if (argc > 1 && !wait) {
		fprintf(stderr, "usage: threadexit [wait]\n");
		return 2;
	}
	if (wait) {
		printf("ready pid=%d\n", (int)getpid());
		fflush(stdout);
		if (!fgets(line, sizeof line, stdin))
			die("waiting for a line on stdin", errno ? errno : EIO);
	}
	if ((err = pthread_create(&th, NULL, worker, &tid)) != 0)
		die("pthread_create", err);
	/* pthread_join returns once the kernel has cleared the worker's tid
	 * (CLONE_CHILD_CLEARTID), that is, once the thread is gone. */
	if ((err = pthread_join(th, NULL)) != 0)
		die("pthread_join", err);
	if (wait) {
		printf("done tid=%d\n", (int)tid);
		fflush(stdout);
	}
	return 0;
}
