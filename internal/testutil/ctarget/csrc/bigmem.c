/*
 * bigmem: a process that does long, legitimate work on its own address
 * space, as a big redis or database does: populate, lock or unmap many
 * GiB, or fork with them mapped (a BGSAVE). Sibling threads meanwhile map,
 * touch and unmap memory as an allocator does, so they wait on the
 * process's mmap_lock while the work holds it. It speaks the workload
 * line protocol (internal/workload/doc.go): "ready pid=N" once, then for
 * each command line one reply. The work runs on the main thread, the one
 * that reads commands; "seconds" is its duration, CLOCK_MONOTONIC.
 *
 *   siblings N     ok tids=A,B,..      start N threads: even ones mmap,
 *                                      touch and munmap 1 MiB, odd ones
 *                                      fault in the next page of a region
 *                                      of their own (MADV_DONTNEED when they
 *                                      wrap); each sleeps 1 ms per round
 *   populate GIB   ok tid=T seconds=S  mmap(MAP_POPULATE) of GIB GiB
 *   madvise GIB    ok tid=T seconds=S  mmap, then madvise(MADV_POPULATE_WRITE)
 *   mlockall GIB   ok tid=T seconds=S  mmap, then mlockall(MCL_CURRENT)
 *   fork           ok tid=T seconds=S child=P  fork(2) with everything
 *                                      mapped; the child exits at once and
 *                                      is reaped; seconds is the parent's
 *                                      time in fork alone
 *   unmap          ok tid=T seconds=S  munlockall and munmap everything the
 *                                      commands above mapped
 *
 * EOF on stdin exits with status 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#define CHUNK (1 << 20)         /* what an allocator sibling maps per round */
#define REGION (256 << 20)      /* each faulting sibling's own region */
#define MAX_SIBLINGS 16
#define MAX_MAPS 8

static atomic_int started;
static int sibling_tids[MAX_SIBLINGS];

static struct {
	void *addr;
	size_t len;
} maps[MAX_MAPS];
static int nmaps;

static long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void *sibling(void *arg)
{
	long i = (long)arg, page = sysconf(_SC_PAGESIZE);
	struct timespec ms = {0, 1000 * 1000};
	char *region = NULL;
	size_t off = 0;

	sibling_tids[i] = (int)syscall(SYS_gettid);
	if (i % 2) {
		region = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (region == MAP_FAILED) {
			fprintf(stderr, "bigmem: sibling region: %s\n", strerror(errno));
			exit(1);
		}
	}
	atomic_fetch_add(&started, 1);
	for (;;) {
		if (region) {
			region[off] = 1;
			if ((off += page) == REGION) {
				madvise(region, REGION, MADV_DONTNEED);
				off = 0;
			}
		} else {
			char *p = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (p != MAP_FAILED) {
				memset(p, 1, CHUNK);
				munmap(p, CHUNK);
			}
		}
		nanosleep(&ms, NULL);
	}
	return NULL;
}

static int siblings(long n, char *out, size_t outlen)
{
	struct timespec tick = {0, 100 * 1000};
	int before = atomic_load(&started), err;
	size_t used = 0;
	pthread_t th;
	long i;

	if (n < 1 || before + n > MAX_SIBLINGS)
		return EINVAL;
	for (i = before; i < before + n; i++) {
		if ((err = pthread_create(&th, NULL, sibling, (void *)i)) != 0)
			return err;
		pthread_detach(th);
	}
	/* No notification exists for "a thread began to run": poll. */
	while (atomic_load(&started) < before + n)
		nanosleep(&tick, NULL);
	out[0] = 0;
	for (i = 0; i < before + n; i++)
		used += snprintf(out + used, outlen - used, "%s%d", i ? "," : "", sibling_tids[i]);
	return 0;
}

static void *map(size_t len, int flags)
{
	void *p;

	if (nmaps == MAX_MAPS) {
		errno = ENOSPC;
		return MAP_FAILED;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
	if (p != MAP_FAILED) {
		maps[nmaps].addr = p;
		maps[nmaps++].len = len;
	}
	return p;
}

/* work runs one command's operation and returns 0 or an errno; *extra is
 * set for fork (the child's pid). */
static int work(const char *op, size_t len, long *extra)
{
	void *p;
	pid_t child;

	if (strcmp(op, "populate") == 0)
		return map(len, MAP_POPULATE) == MAP_FAILED ? errno : 0;
	if (strcmp(op, "madvise") == 0) {
		if ((p = map(len, 0)) == MAP_FAILED)
			return errno;
		return madvise(p, len, MADV_POPULATE_WRITE) ? errno : 0;
	}
	if (strcmp(op, "mlockall") == 0) {
		if (map(len, 0) == MAP_FAILED)
			return errno;
		return mlockall(MCL_CURRENT) ? errno : 0;
	}
	if (strcmp(op, "fork") == 0) {
		if ((child = fork()) < 0)
			return errno;
		if (child == 0)
			_exit(0);
		*extra = child;
		return 0;
	}
	if (strcmp(op, "unmap") == 0) {
		munlockall();
		while (nmaps > 0) {
			nmaps--;
			if (munmap(maps[nmaps].addr, maps[nmaps].len))
				return errno;
		}
		return 0;
	}
	return ENOSYS;
}

int main(void)
{
	char line[128], op[32], tids[MAX_SIBLINGS * 12];
	long n, t0, extra, ns;
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready pid=%d\n", (int)getpid());
	while (fgets(line, sizeof line, stdin)) {
		n = 0;
		if (sscanf(line, "%31s %ld", op, &n) < 1)
			continue;
		if (strcmp(op, "siblings") == 0) {
			if ((err = siblings(n, tids, sizeof tids)) != 0)
				printf("err siblings: %s\n", strerror(err));
			else
				printf("ok tids=%s\n", tids);
			continue;
		}
		extra = 0;
		t0 = now_ns();
		err = work(op, (size_t)n << 30, &extra);
		ns = now_ns() - t0;
		if (err) {
			printf("err %s: %s\n", op, strerror(err));
			continue;
		}
		if (extra) {
			/* Reaped after the clock stopped: only fork itself is timed. */
			int st;

			while (waitpid((pid_t)extra, &st, 0) < 0 && errno == EINTR)
				;
			printf("ok tid=%d seconds=%.3f child=%ld\n", (int)getpid(), ns / 1e9, extra);
			continue;
		}
		printf("ok tid=%d seconds=%.3f\n", (int)getpid(), ns / 1e9);
	}
	return 0;
}
