/*
 * enosysloop: two threads that make, in a loop, a syscall the kernel does
 * not have. It fails with ENOSYS, the value the x86 entry code puts in a
 * thread's saved ax while a syscall is in progress, so for the moment
 * between its return and the return to user space the thread's registers
 * look as if it were inside that syscall. A fatal signal is acted on just
 * there: a tracker that reads death from the registers alone takes the
 * threads a group exit or SIGKILL ends for threads dead inside a syscall.
 *
 * Prints "ready pid=N" once both threads loop, then reads stdin and
 * exits 0 (exit_group) at EOF.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Above every ABI's table: ENOSYS on every kernel. */
#define NO_SUCH_SYSCALL 4000

static atomic_int looping;

static void *loop(void *arg)
{
	(void)arg;
	atomic_fetch_add(&looping, 1);
	for (;;)
		syscall(NO_SUCH_SYSCALL);
	return NULL;
}

int main(void)
{
	pthread_t th;
	char buf[256];
	int i, err;

	for (i = 0; i < 2; i++) {
		if ((err = pthread_create(&th, NULL, loop, NULL)) != 0) {
			fprintf(stderr, "enosysloop: pthread_create: %s\n", strerror(err));
			return 1;
		}
	}
	while (atomic_load(&looping) < 2)
		sched_yield();
	printf("ready pid=%d\n", (int)getpid());
	fflush(stdout);
	while (read(0, buf, sizeof buf) > 0)
		;
	return 0;
}
