/*
 * churn OLD GAP_US PATH: threads that come and go as fast as they can
 * around one thread stuck in a read of PATH (a file on a file system that
 * hangs), for the tests of a task iterator walking a process under churn.
 *
 * In order of creation, so in the order of the kernel's thread list:
 *
 *   OLD threads that wait in futex(2), each on its own word;
 *   the reader, which waits for the word to go;
 *   four churners, which create and join threads that do nothing, as fast
 *   as they can, for as long as the process lives.
 *
 * Prints "ready pid=N reader=TID old=OLD" once every thread runs. A line
 * "hang" on stdin sends the reader into its read of PATH, where it hangs,
 * and from then on the main thread ends the old threads one after the
 * other, oldest first, one every GAP_US microseconds: threads older than
 * the stuck one, so placed before it in the thread list, exit while an
 * iterator walks that list. EOF on stdin exits with status 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define STACK_SIZE (64 * 1024)

static atomic_int started;
static atomic_int reader_tid;
static atomic_int *release; /* one futex word per old thread */
static atomic_int go;       /* the reader's: set by "hang" */
static const char *path;
static pthread_attr_t attr;

static void die(const char *what, int err)
{
	fprintf(stderr, "churn: %s: %s\n", what, strerror(err));
	exit(1);
}

static void *old(void *arg)
{
	atomic_int *word = arg;

	atomic_fetch_add(&started, 1);
	while (!atomic_load(word))
		syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	return NULL;
}

static void *reader(void *arg)
{
	char b;
	int fd;

	(void)arg;
	atomic_store(&reader_tid, (int)syscall(SYS_gettid));
	atomic_fetch_add(&started, 1);
	while (!atomic_load(&go))
		syscall(SYS_futex, &go, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("opening the file to hang on", errno);
	if (read(fd, &b, 1) < 0)
		die("reading the file to hang on", errno);
	/* Released: nothing more to do, the process lives on. */
	return NULL;
}

static void *nothing(void *arg)
{
	return arg;
}

static void *churner(void *arg)
{
	pthread_t t;
	int err;

	(void)arg;
	atomic_fetch_add(&started, 1);
	for (;;) {
		if ((err = pthread_create(&t, &attr, nothing, NULL)) != 0)
			die("pthread_create (churn)", err);
		pthread_join(t, NULL);
	}
	return NULL;
}

static void *watch_stdin(void *arg)
{
	(void)arg;
	while (getchar() != EOF)
		;
	exit(0);
}

static void start(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	int err;

	if ((err = pthread_create(&t, &attr, fn, arg)) != 0)
		die("pthread_create", err);
	pthread_detach(t);
}

int main(int argc, char **argv)
{
	struct timespec gap;
	char line[16];
	int n, i, want;

	if (argc != 4) {
		fprintf(stderr, "usage: churn OLD GAP_US PATH\n");
		return 2;
	}
	n = atoi(argv[1]);
	gap.tv_sec = 0;
	gap.tv_nsec = atol(argv[2]) * 1000;
	path = argv[3];
	if (n < 0 || gap.tv_nsec < 0 || gap.tv_nsec >= 1000000000)
		die("arguments", EINVAL);
	release = calloc(n ? n : 1, sizeof *release);
	if (!release)
		die("calloc", ENOMEM);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, STACK_SIZE);

	for (i = 0; i < n; i++)
		start(old, &release[i]);
	start(reader, NULL);
	for (i = 0; i < 4; i++)
		start(churner, NULL);
	want = n + 5;
	while (atomic_load(&started) < want)
		sched_yield();
	printf("ready pid=%d reader=%d old=%d\n", (int)getpid(), atomic_load(&reader_tid), n);
	fflush(stdout);

	if (!fgets(line, sizeof line, stdin))
		return 0;
	if (strcmp(line, "hang\n") != 0)
		die("command (want hang)", EINVAL);
	atomic_store(&go, 1);
	syscall(SYS_futex, &go, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	start(watch_stdin, NULL);
	for (i = 0; i < n; i++) {
		nanosleep(&gap, NULL);
		atomic_store(&release[i], 1);
		syscall(SYS_futex, &release[i], FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	}
	for (;;)
		pause();
}
