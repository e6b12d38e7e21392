/*
 * idlethreads: a process with many threads, most of them idle, as a JVM
 * or a thread-per-connection server has, for the benchmark harness's poll
 * cost rows (internal/test/bench/). It speaks the workload line
 * protocol (internal/workload/doc.go): "ready pid=N" once, then for each
 * command line
 *
 *   spawn IDLE BUSY   ok threads=T   start IDLE threads that wait in
 *                                    futex(2) forever and BUSY threads
 *                                    that call getppid(2) 100 times and
 *                                    sleep 1 ms, in a loop (about 100,000
 *                                    syscalls a second each); T counts
 *                                    every thread of the process
 *
 *   fifo N PATH       ok threads=T   start N threads that open PATH, a
 *                                    FIFO, for reading: each waits in
 *                                    openat(2) for a writer, and none
 *                                    ever comes (a syscall that
 *                                    stallmon's table bounds, so its
 *                                    threads are never left out as quiet)
 *
 *   calls             ok calls=N     the getppid calls the busy threads
 *                                    made so far
 *   read PATH         ok tid=T       start a thread that reads one byte
 *                                    of PATH (a file on a file system
 *                                    that hangs: the one real hang)
 *
 * The reply comes once every new thread runs. Thread stacks are small
 * (64 KiB) so that 10,000 threads fit in little memory. EOF on stdin exits
 * with status 0, ending every thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define STACK_SIZE (64 * 1024)

static atomic_int started; /* threads that began to run */
static int never;          /* the futex word idle threads wait on; never woken */
static atomic_long calls;  /* getppid calls made by the busy threads */
static atomic_int reader_tid;
static char read_path[PATH_MAX];
static char fifo_path[PATH_MAX];

static void *idle(void *arg)
{
	(void)arg;
	atomic_fetch_add(&started, 1);
	for (;;)
		syscall(SYS_futex, &never, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	return NULL;
}

static void *busy(void *arg)
{
	struct timespec ms = {0, 1000 * 1000};
	int i;

	(void)arg;
	atomic_fetch_add(&started, 1);
	for (;;) {
		for (i = 0; i < 100; i++)
			getppid();
		atomic_fetch_add(&calls, 100);
		nanosleep(&ms, NULL);
	}
	return NULL;
}

static void *fifo_waiter(void *arg)
{
	int fd;

	(void)arg;
	atomic_fetch_add(&started, 1);
	for (;;) {
		fd = open(fifo_path, O_RDONLY);
		if (fd >= 0)
			close(fd); /* a writer came after all: wait for the next */
		else if (errno != EINTR)
			pause(); /* out of openat, where the harness looks for it */
	}
	return NULL;
}

static void *reader(void *arg)
{
	char b;
	int fd;

	(void)arg;
	atomic_store(&reader_tid, (int)syscall(SYS_gettid));
	fd = open(read_path, O_RDONLY);
	if (fd >= 0 && read(fd, &b, 1) >= 0)
		close(fd);
	return NULL;
}

/* spawn starts n threads running fn; it returns 0 or an errno. */
static int spawn(long n, void *(*fn)(void *))
{
	pthread_attr_t attr;
	pthread_t th;
	long i;
	int err;

	if ((err = pthread_attr_init(&attr)) != 0)
		return err;
	if ((err = pthread_attr_setstacksize(&attr, STACK_SIZE)) == 0)
		err = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (i = 0; err == 0 && i < n; i++)
		err = pthread_create(&th, &attr, fn, NULL);
	pthread_attr_destroy(&attr);
	return err;
}

int main(void)
{
	struct timespec tick = {0, 100 * 1000};
	char line[PATH_MAX + 32]; /* a command and a path */
	long idle_n, busy_n, total = 1;
	struct stat st;
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready pid=%d\n", (int)getpid());
	while (fgets(line, sizeof line, stdin)) {
		if (strcmp(line, "calls\n") == 0) {
			printf("ok calls=%ld\n", atomic_load(&calls));
			continue;
		}
		if (sscanf(line, "read %4095s", read_path) == 1) {
			pthread_t th;

			if ((err = pthread_create(&th, NULL, reader, NULL)) != 0) {
				printf("err creating reader: %s\n", strerror(err));
				continue;
			}
			pthread_detach(th);
			while (atomic_load(&reader_tid) == 0)
				nanosleep(&tick, NULL);
			printf("ok tid=%d\n", atomic_exchange(&reader_tid, 0));
			continue;
		}
		busy_n = 0;
		if (sscanf(line, "fifo %ld %4095s", &idle_n, fifo_path) == 2) {
			if (idle_n < 0 || stat(fifo_path, &st) != 0 || !S_ISFIFO(st.st_mode)) {
				printf("err want \"fifo N PATH\" with PATH a FIFO\n");
				continue;
			}
			err = spawn(idle_n, fifo_waiter);
		} else if (sscanf(line, "spawn %ld %ld", &idle_n, &busy_n) == 2 && idle_n >= 0 && busy_n >= 0) {
			if ((err = spawn(idle_n, idle)) == 0)
				err = spawn(busy_n, busy);
		} else {
			printf("err want \"spawn IDLE BUSY\", \"fifo N PATH\", \"read PATH\" or \"calls\"\n");
			continue;
		}
		if (err != 0) {
			/* Some threads may run already: the count is unknown now. */
			printf("err creating threads: %s\n", strerror(err));
			return 1;
		}
		total += idle_n + busy_n;
		/* No notification exists for "a thread began to run": poll. */
		while (atomic_load(&started) < total - 1)
			nanosleep(&tick, NULL);
		printf("ok threads=%ld\n", total);
	}
	return 0;
}
