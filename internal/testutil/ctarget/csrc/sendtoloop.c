/*
 * sendtoloop: the loop whose datagrams the benchmark harness
 * (internal/test/bench/) times with and without stallmon's egress gate.
 * usage: sendtoloop ADDR PORT (IPv4). It speaks the workload line
 * protocol (internal/workload/doc.go): "ready pid=N" once, then for each
 * command line
 *
 *   run N   N sendto(2) calls of 64 bytes to ADDR:PORT   ok ns_per_call=F
 *
 * F is the mean wall-clock time of one call (vDSO CLOCK_MONOTONIC around
 * the whole loop). A send that fails is counted and reported as errors=E.
 * EOF on stdin exits with status 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	char line[128], payload[64];
	struct sockaddr_in dst;
	long n, i, errors;
	double start;
	int sock;

	if (argc != 3) {
		fprintf(stderr, "usage: sendtoloop ADDR PORT\n");
		return 2;
	}
	memset(&dst, 0, sizeof(dst));
	dst.sin_family = AF_INET;
	dst.sin_port = htons(atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
		fprintf(stderr, "bad address %s\n", argv[1]);
		return 2;
	}
	sock = socket(AF_INET, SOCK_DGRAM, 0);
	if (sock < 0) {
		perror("socket");
		return 1;
	}
	memset(payload, 'x', sizeof(payload));
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready pid=%d\n", (int)getpid());
	while (fgets(line, sizeof line, stdin)) {
		if (strncmp(line, "run ", 4) != 0 || (n = strtol(line + 4, NULL, 10)) <= 0) {
			printf("err want \"run N\" with N > 0\n");
			continue;
		}
		errors = 0;
		start = now_ns();
		for (i = 0; i < n; i++)
			if (sendto(sock, payload, sizeof(payload), 0, (struct sockaddr *)&dst, sizeof(dst)) < 0)
				errors++;
		printf("ok ns_per_call=%.2f errors=%ld\n", (now_ns() - start) / (double)n, errors);
	}
	return 0;
}
