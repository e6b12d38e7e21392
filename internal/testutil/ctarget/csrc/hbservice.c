// hbservice: the kind of service stallmon's seed describes. Its heartbeat
// thread sends "hb NODE SEQ MONO" (MONO: CLOCK_MONOTONIC at the send, in
// ns, so a test can tell when the last packet left) to a UDP destination (multicast or unicast,
// IPv4) every INTERVAL_MS, whatever the main thread does; the main thread
// serves requests from stdin, one path per line: it reads the file and
// answers "ok N" on stdout. A read of a file on a hung file system is the
// stall the heartbeat thread goes on beside.
//
// usage: hbservice ADDR PORT NODE INTERVAL_MS [PATH AFTER_MS]
// It prints "ready" once the heartbeat socket exists. With PATH, the main
// thread reads PATH AFTER_MS in, first, for a service started where no one
// can write to its stdin (stallmon run). At EOF on stdin the main thread
// waits for ever: only a signal ends the service.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int sock;
static struct sockaddr_in dst;
static const char *node;
static long interval_ms;

static void *heartbeat(void *arg)
{
	(void)arg;
	struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
	char buf[128];
	for (unsigned long seq = 1;; seq++) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		int n = snprintf(buf, sizeof(buf), "hb %s %lu %lld", node, seq,
				 (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
		// A dropped packet is not this thread's business: it sends on.
		sendto(sock, buf, n, 0, (struct sockaddr *)&dst, sizeof(dst));
		nanosleep(&ts, NULL);
	}
	return NULL;
}

// serve is one request: read the file at path.
static long serve(const char *path)
{
	static char buf[1 << 16];
	int fd = open(path, O_RDONLY);
	long n = -1;
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf));
		close(fd);
	}
	return n;
}

int main(int argc, char **argv)
{
	if (argc != 5 && argc != 7) {
		fprintf(stderr, "usage: hbservice ADDR PORT NODE INTERVAL_MS [PATH AFTER_MS]\n");
		return 2;
	}
	memset(&dst, 0, sizeof(dst));
	dst.sin_family = AF_INET;
	dst.sin_port = htons(atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
		fprintf(stderr, "bad address %s\n", argv[1]);
		return 2;
	}
	node = argv[3];
	interval_ms = atol(argv[4]);
	sock = socket(AF_INET, SOCK_DGRAM, 0);
	if (sock < 0) {
		perror("socket");
		return 1;
	}
	unsigned char loop = 1;
	setsockopt(sock, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop));
	struct in_addr lo = {htonl(INADDR_LOOPBACK)};
	setsockopt(sock, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof(lo));
	pthread_t t;
	if (pthread_create(&t, NULL, heartbeat, NULL)) {
		perror("pthread_create");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	char path[4096];
	if (argc == 7) {
		long after = atol(argv[6]);
		struct timespec ts = {after / 1000, (after % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		printf("ok %ld\n", serve(argv[5]));
		fflush(stdout);
	}
	while (fgets(path, sizeof(path), stdin)) {
		path[strcspn(path, "\n")] = 0;
		printf("ok %ld\n", serve(path));
		fflush(stdout);
	}
	for (;;)
		pause();
}
