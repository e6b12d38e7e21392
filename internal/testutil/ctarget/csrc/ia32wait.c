/*
 * ia32wait: a 32-bit (ia32) process with two threads asleep in syscalls
 * whose numbers mean something else in the 64-bit table: read (3, close on
 * x86_64) on an empty pipe and nanosleep (162, sync on x86_64) for an
 * hour. Built with -m32; a tracer that takes a compat task's syscall
 * number for a 64-bit one names them wrongly.
 *
 * Prints "ready pid=N read_tid=A nanosleep_tid=B pipe_fd=F" once both
 * threads sleep in their syscall (as /proc/self/task/TID/syscall shows),
 * then reads stdin (also an ia32 read, on fd 0) and exits 0 at EOF.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int pipefd[2];

/* Each thread publishes its tid before it blocks, under this lock. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pid_t read_tid, sleep_tid;

static void publish(pid_t *slot)
{
	pthread_mutex_lock(&mu);
	*slot = (pid_t)syscall(SYS_gettid);
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static void *reader(void *arg)
{
	char c;
	(void)arg;
	publish(&read_tid);
	/* Raw syscall: the number in the frame is SYS_read, 3, whatever
	 * glibc's read() would pick. Nobody writes the pipe. */
	syscall(SYS_read, pipefd[0], &c, 1);
	return NULL;
}

/* The ia32 nanosleep takes the old 32-bit timespec, whatever time_t
 * glibc was built with. (Built 64-bit, for a check of the logic only, it
 * takes the native one.) */
#ifdef __i386__
struct sys_timespec {
	int32_t tv_sec, tv_nsec;
};
#else
#define sys_timespec timespec
#endif

static void *sleeper(void *arg)
{
	struct sys_timespec ts = {3600, 0};
	(void)arg;
	publish(&sleep_tid);
	syscall(SYS_nanosleep, &ts, NULL);
	return NULL;
}

/* asleep_in tells whether thread tid sleeps in syscall nr: /proc shows
 * the number only while the thread is not running. */
static int asleep_in(pid_t tid, long nr)
{
	char path[64], buf[256];
	FILE *f;
	long got;
	int ok;

	snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	ok = fgets(buf, sizeof buf, f) != NULL && sscanf(buf, "%ld ", &got) == 1 && got == nr;
	fclose(f);
	return ok;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "ia32wait: %s: %s\n", what, strerror(err));
	exit(1);
}

int main(void)
{
	pthread_t a, b;
	char buf[256];
	int err, i;

	if (pipe(pipefd) != 0)
		die("pipe", errno);
	if ((err = pthread_create(&a, NULL, reader, NULL)) != 0)
		die("pthread_create", err);
	if ((err = pthread_create(&b, NULL, sleeper, NULL)) != 0)
		die("pthread_create", err);
	pthread_mutex_lock(&mu);
	while (read_tid == 0 || sleep_tid == 0)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);

	/* No notification comes when a thread falls asleep: poll /proc,
	 * every millisecond for at most 5 seconds. */
	for (i = 0; !(asleep_in(read_tid, SYS_read) && asleep_in(sleep_tid, SYS_nanosleep)); i++) {
		struct timespec ms = {0, 1000000};
		if (i == 5000) {
			fprintf(stderr, "ia32wait: threads %d and %d not asleep in read and nanosleep after 5s\n",
				(int)read_tid, (int)sleep_tid);
			return 1;
		}
		nanosleep(&ms, NULL);
	}
	printf("ready pid=%d read_tid=%d nanosleep_tid=%d pipe_fd=%d\n", (int)getpid(), (int)read_tid,
	       (int)sleep_tid, pipefd[0]);
	fflush(stdout);

	for (;;) {
		ssize_t n = read(0, buf, sizeof buf);
		if (n == 0)
			return 0; /* exit_group ends the sleeping threads */
		if (n < 0 && errno != EINTR)
			die("reading stdin", errno);
	}
}
