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
//	touch-uffd [PAGES]   ok tid=                        a raw clone(2) thread loads a byte (no syscall) from each of
//	                                                    PAGES (1) userfaultfd pages nobody resolves: asleep in a page
//	                                                    fault on the first
//	touch-uffd-next      ok tid= page= left= [value=]   after UFFDIO_COPY of the page it waits on, once it faults on the
//	                                                    next one (left>0) or loaded the last and exited (left=0)
//	touch-uffd-release   ok tid= value=                 after UFFDIO_COPY of every page left, once that thread exited
//	touch-file PATH      ok tid=                        a raw clone(2) thread loads the first byte of PATH mapped with
//	                                                    mmap(2) (MAP_PRIVATE, MADV_RANDOM): asleep in the page fault
//	                                                    while PATH's file system withholds the read; released by it
//	pipe-wait            ok tid= fd= nr= syscall=read   read(2) of an empty pipe: legitimately waiting
//	pipe-release         ok tid= ret=                   after one byte was written and the read returned
//	spawn-wait           ok tid= fd= nr= syscall=read   pipe-wait on a thread cloned for this command
//	spawn-release        ok tid= ret=
//	busy                 ok tid=                        getppid(2) in a loop
//	busy-stop            ok tid= count=
//	churn ROUNDS THREADS round n= tids=  (per round) then ok rounds= threads=
//	fsync-loop [DIR]     ok tid= fd= path=              pwrite 4 KiB + fsync every 50ms (first pass done)
//	fsync-stop           ok tid= count=
//	close-linger ADDR SECONDS [dup2]                   close(2) of a TCP socket connected to ADDR (IPv4:port) and
//	                     ok tid= fd= nr= syscall=close  filled with data its peer does not read, with SO_LINGER set to
//	                                                    SECONDS: close waits until the linger time runs out; with
//	                                                    dup2, dup2(2) of /dev/null over it: the final close lingers
//	                                                    as task work after dup2 returned, outside any syscall
//	close-file PATH      ok tid= fd= nr= syscall=close  open(2) + close(2) of PATH, whose FLUSH the file system holds
//	close-wait           ok tid= ret= seconds=          once the close returned; seconds: its duration
//	read-file PATH       ok tid= fd= nr= syscall=read   open(2) + read(2) of PATH whose reads block (a FUSE file whose
//	                                                    server withholds the reply); released by that server only
//	sendfile PATH        ok tid= fd= in_fd= nr= syscall=sendfile
//	                                                    sendfile(2) of PATH (in_fd) into a socketpair end (fd), through
//	                                                    the page cache: D on a held FUSE file; released by its server
//	mmap-file PATH       ok tid= fd= nr= syscall=mmap   mmap(2) with MAP_POPULATE of a page of PATH: the kernel reads it in
//	                                                    before mmap returns, D on a held FUSE file; released by its server
//	sendfile-stalled tcp|unix PATH
//	                     ok tid= fd= in_fd= nr= syscall=sendfile
//	                                                    sendfile(2) of PATH, a regular file of over 64 KiB, into a
//	                                                    loopback TCP connection or a unix socketpair whose peer reads
//	                                                    nothing (16 KiB buffers): asleep for room to send, in S
//	sendfile-drain       ok tid= ret=                   after the peer read everything and the sendfile returned
//	uring-idle           ok tid= fd= sqpoll_tid= worker_tid=
//	                                                    io_uring with SQPOLL (kernel thread iou-sqp-N, sqpoll_tid) and an
//	                                                    io-wq worker (iou-wrk-N, worker_tid) idle after a NOP; thread
//	                                                    tid waits in io_uring_enter(fd, GETEVENTS) for a completion
//	uring-stop           ok tid= res=                   after a NOP completed the wait, the ring closed, iou-sqp and
//	                                                    iou-wrk left
//	uring-read PATH [STATE]  ok worker_tid= fd= tid=    IORING_OP_READ of PATH on ring fd, punted to io-wq: worker_tid
//	                                                    (iou-wrk-N) is in STATE, D by default (a page-cache FUSE file
//	                                                    whose server holds the READ; S for a direct-IO one); thread tid
//	                                                    waits in io_uring_enter for the completion, then closes the
//	                                                    ring and exits. Released by the file's server
//	compute              ok tid=                        a raw clone(2) thread spinning in user space: no syscall at all
//	compute-stop         ok tid= spins=                 once it stopped spinning and exited
//	heartbeat ADDR INTERVAL  ok tid= fd=                a thread of its own sends "hb PID SEQ MONO" (SEQ from 1, MONO:
//	                                                    CLOCK_MONOTONIC in ns) to ADDR (IPv4:port; a multicast group on
//	                                                    loopback) every INTERVAL (a Go duration) by sendto(2), whatever
//	                                                    the other threads do: the seed's heartbeat thread. Replies once
//	                                                    the first datagram was sent
//	heartbeat-stop       ok tid= count= errors=         once that thread sent its last; errors: sends that failed
//	tids                 ok tids=                       /proc/self/task
//	exit CODE            (no reply) exits with CODE
//
// Replies to the waiting commands come once the thread is asleep inside
// the syscall, as /proc/self/task/TID/syscall shows, so a parent may inspect
// /proc right away. Each thread does one job and then exits: workers are
// goroutines locked to their OS thread, which the runtime ends when they
// return still locked; spawn-wait's thread is made by a clone(2) of its own
// right when the command runs, so it takes the tid a parent steered with
// /proc/sys/kernel/ns_last_pid (unless another process forks first), and
// compute's thread is such a raw clone too, since a Go thread gets signals
// that enter the kernel, and so are touch-uffd's and touch-file's, which
// must fault with no syscall around them (a Go thread would also hold up
// the runtime's stop-the-world). Those two reply once their thread sleeps
// outside any syscall (the syscall file shows -1). Each kind of waiter
// exists at most once at a time.
//
// uring-read replies once an iou-wrk thread of the process is in STATE and the
// submitting thread sleeps in io_uring_enter; uring-idle once its waiter
// sleeps in io_uring_enter. Kernel-made io_uring threads never pass
// sys_enter: /proc/TID/syscall shows what their creator's registers held.
package workload
