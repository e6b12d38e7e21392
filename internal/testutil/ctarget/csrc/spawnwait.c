/*
 * spawnwait MODE SECONDS: a parent thread that waits in killable D for a
 * child to exec, for about SECONDS, and then exits 0.
 *
 *   vfork        vfork(); the child sleeps SECONDS, then execs /bin/true.
 *   posix_spawn  glibc's posix_spawn (clone3 with CLONE_VM|CLONE_VFORK) of
 *                /bin/true with a file action that opens a FIFO for
 *                reading: the child blocks in that open until a second
 *                thread of ours opens the FIFO for writing, SECONDS later.
 *
 * spawnwait exec PATH: glibc's posix_spawn of PATH, a program on a file
 * system that hangs: the child blocks in its execve until the file system
 * answers, and the parent waits as long. The spawn starts once a line
 * comes on stdin, so that a watcher can be ready for it. Exits 0 if the
 * child ran and exited 0, 1 otherwise.
 *
 * Prints "ready pid=N mode=M" (posix_spawn adds " fifo=PATH") right before
 * the vfork or posix_spawn call (exec: before it waits for its line), so a
 * watcher can see the parent enter D.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static unsigned seconds;
static char fifo[64];

static void die(const char *what, int err)
{
	fprintf(stderr, "spawnwait: %s: %s\n", what, strerror(err));
	exit(1);
}

static int child_status(pid_t child)
{
	int st;
	while (waitpid(child, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid", errno);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "spawnwait: child ended with status %#x\n", st);
		return 1;
	}
	return 0;
}

static int run_vfork(void)
{
	pid_t child;

	printf("ready pid=%d mode=vfork\n", (int)getpid());
	fflush(stdout);
	child = vfork();
	if (child < 0)
		die("vfork", errno);
	if (child == 0) {
		/* POSIX allows only _exit and exec here; sleep is a plain
		 * syscall that touches no shared state (errno aside, which
		 * the parent does not read before it checks vfork's result),
		 * so it is fine in practice, and it is what keeps the parent
		 * waiting. */
		sleep(seconds);
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	return child_status(child);
}

/* writer lets the spawned child go: opening the FIFO for writing
 * completes the child's open for reading (and waits for it). */
static void *writer(void *arg)
{
	int fd;
	(void)arg;
	sleep(seconds);
	fd = open(fifo, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		die("opening the FIFO for writing", errno);
	close(fd);
	return NULL;
}

static int run_posix_spawn(void)
{
	char dir[] = "/tmp/spawnwait.XXXXXX";
	char *argv[] = {"true", NULL};
	posix_spawn_file_actions_t fa;
	pthread_t w;
	pid_t child;
	int err, status;

	if (!mkdtemp(dir))
		die("mkdtemp", errno);
	snprintf(fifo, sizeof fifo, "%s/fifo", dir);
	if (mkfifo(fifo, 0600) != 0)
		die("mkfifo", errno);
	if ((err = posix_spawn_file_actions_init(&fa)) != 0)
		die("posix_spawn_file_actions_init", err);
	/* fd 10: out of the way of the child's stdio. */
	if ((err = posix_spawn_file_actions_addopen(&fa, 10, fifo, O_RDONLY, 0)) != 0)
		die("posix_spawn_file_actions_addopen", err);
	if ((err = pthread_create(&w, NULL, writer, NULL)) != 0)
		die("pthread_create", err);

	printf("ready pid=%d mode=posix_spawn fifo=%s\n", (int)getpid(), fifo);
	fflush(stdout);
	err = posix_spawn(&child, "/bin/true", &fa, NULL, argv, environ);
	if (err != 0)
		die("posix_spawn", err);
	status = child_status(child);
	pthread_join(w, NULL);
	posix_spawn_file_actions_destroy(&fa);
	unlink(fifo);
	rmdir(dir);
	return status;
}

static int run_exec(char *path)
{
	char *argv[] = {path, NULL};
	char line[16];
	pid_t child;
	int err;

	printf("ready pid=%d mode=exec\n", (int)getpid());
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		return 1;
	err = posix_spawn(&child, path, NULL, NULL, argv, environ);
	if (err != 0)
		die("posix_spawn", err);
	return child_status(child);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "exec") == 0)
		return run_exec(argv[2]);
	if (argc != 3 || (strcmp(argv[1], "vfork") != 0 && strcmp(argv[1], "posix_spawn") != 0)) {
		fprintf(stderr, "usage: spawnwait vfork|posix_spawn SECONDS, or spawnwait exec PATH\n");
		return 2;
	}
	seconds = (unsigned)strtoul(argv[2], NULL, 10);
	return strcmp(argv[1], "vfork") == 0 ? run_vfork() : run_posix_spawn();
}
