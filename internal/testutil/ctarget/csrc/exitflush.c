/*
 * exitflush PATH: a process whose files are closed, at its exit, by a
 * thread other than its leader. The leader ends first (exit(2) of the
 * main thread); the worker opens PATH, prints "ready pid=P tid=T" and,
 * at a line on stdin, calls exit_group(2). The kernel closes the
 * process's files in the worker's do_exit (exit_files), after the worker
 * is counted out of its process: with PATH on a FUSE file system whose
 * server holds flushes, the worker hangs there, in a process that
 * cgroup.procs no longer lists (its leader is past cgroup_exit and no
 * thread of it is live).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *path;

static void die(const char *what, int err)
{
	fprintf(stderr, "exitflush: %s: %s\n", what, strerror(err));
	exit(1);
}

static void *worker(void *arg)
{
	char line[64];

	(void)arg;
	if (open(path, O_RDWR) < 0)
		die("opening the file", errno);
	printf("ready pid=%d tid=%d\n", (int)getpid(), (int)syscall(SYS_gettid));
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		die("waiting for a line on stdin", errno ? errno : EIO);
	syscall(SYS_exit_group, 0);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th;
	int err;

	if (argc != 2) {
		fprintf(stderr, "usage: exitflush PATH\n");
		return 2;
	}
	path = argv[1];
	if ((err = pthread_create(&th, NULL, worker, NULL)) != 0)
		die("pthread_create", err);
	/* The leader alone ends, as a thread does: the process lives on in
	 * the worker. */
	syscall(SYS_exit, 0);
	return 0;
}
