// Package workload is the process stallmon watches in tests and in the demo:
// a parent starts it (see Start) and, over a line protocol on stdin/stdout,
// makes its threads enter real syscalls that hang, wait or spin.
//
// The child prints "ready pid=N" once, then answers each command line with
// exactly one "ok key=value ..." or "err MESSAGE" line; churn also prints
// "round ..." progress lines before its ok. Values never contain spaces;
// lists are comma-separated. EOF on stdin exits with status 0.
//
//	uffd-hang            ok tid= fd= nr= syscall=read   read(2) of /dev/zero into a never-resolved userfaultfd page
//	uffd-release         ok tid= ret=                   after UFFDIO_COPY, once that read returned
//	pipe-wait            ok tid= fd= nr= syscall=read   read(2) of an empty pipe: legitimately waiting
//	pipe-release         ok tid= ret=                   after one byte was written and the read returned
//	spawn-wait           ok tid= fd= nr= syscall=read   pipe-wait on a thread cloned for this command
//	spawn-release        ok tid= ret=
//	busy                 ok tid=                        getppid(2) in a loop
//	busy-stop            ok tid= count=
//	churn ROUNDS THREADS round n= tids=  (per round) then ok rounds= threads=
//	fsync-loop [DIR]     ok tid= fd= path=              pwrite 4 KiB + fsync every 50ms (first pass done)
//	fsync-stop           ok tid= count=
//	read-file PATH       ok tid= fd= nr= syscall=read   open(2) + read(2) of PATH whose reads block (a FUSE file whose
//	                                                    server withholds the reply); released by that server only
//	tids                 ok tids=                       /proc/self/task
//	exit CODE            (no reply) exits with CODE
//
// Replies to the waiting commands come once the thread is asleep inside
// the syscall, as /proc/self/task/TID/syscall shows, so a parent may inspect
// /proc right away. Each thread does one job and then exits: workers are
// goroutines locked to their OS thread, which the runtime ends when they
// return still locked; spawn-wait's thread is made by a clone(2) of its own
// right when the command runs, so it takes the tid a parent steered with
// /proc/sys/kernel/ns_last_pid (unless another process forks first). Each
// kind of waiter exists at most once at a time.
package workload
