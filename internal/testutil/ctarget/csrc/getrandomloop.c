/*
 * getrandomloop: one thread that fills a 16 MiB buffer with getrandom(2)
 * in a loop, the same arguments each time. Each call spends tens of
 * milliseconds in the kernel and returns; the thread never sleeps, makes
 * no read or write call and spends next to no time in user space: the
 * legitimate busy loop a tracker must not age as one call.
 *
 * The raw syscall: a libc may serve getrandom from the vDSO, in user
 * space. Prints "ready pid=N" once the loop runs; exits 0 at EOF on stdin
 * (the loop runs in a second thread).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BUF_SIZE (16 << 20)

static atomic_int looping;

static void *loop(void *arg)
{
	char *buf = arg;

	atomic_store(&looping, 1);
	for (;;)
		syscall(SYS_getrandom, buf, BUF_SIZE, 0);
	return NULL;
}

int main(void)
{
	pthread_t th;
	char line[256];
	char *buf;
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((buf = malloc(BUF_SIZE)) == NULL) {
		fprintf(stderr, "getrandomloop: malloc failed\n");
		return 1;
	}
	if ((err = pthread_create(&th, NULL, loop, buf)) != 0) {
		fprintf(stderr, "getrandomloop: pthread_create: %s\n", strerror(err));
		return 1;
	}
	while (!atomic_load(&looping))
		sched_yield();
	printf("ready pid=%d\n", (int)getpid());
	while (fgets(line, sizeof line, stdin))
		;
	return 0;
}
