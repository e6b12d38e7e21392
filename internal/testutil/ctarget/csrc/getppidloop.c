/*
 * getppidloop: the loop whose syscalls the benchmark harness
 * (internal/test/bench/) times under each tracker. It speaks the workload
 * line protocol (internal/workload/doc.go): "ready pid=N" once, then for
 * each command line
 *
 *   run N   N getppid(2) calls in a row   ok ns_per_call=F
 *
 * F is the mean wall-clock time of one call, read with the vDSO's
 * CLOCK_MONOTONIC around the whole loop, so the clock costs no syscall.
 * One thread only: strace -f and every tracker see exactly this loop.
 * EOF on stdin exits with status 0.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(void)
{
	char line[128];
	long n, i;
	double start;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready pid=%d\n", (int)getpid());
	while (fgets(line, sizeof line, stdin)) {
		if (strncmp(line, "run ", 4) != 0 || (n = strtol(line + 4, NULL, 10)) <= 0) {
			printf("err want \"run N\" with N > 0\n");
			continue;
		}
		start = now_ns();
		for (i = 0; i < n; i++)
			getppid();
		printf("ok ns_per_call=%.2f\n", (now_ns() - start) / (double)n);
	}
	return 0;
}
