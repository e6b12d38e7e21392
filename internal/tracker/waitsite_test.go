package tracker

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/tracker/gen"
	"github.com/stallmon/stallmon/internal/waitsite"
)

// From <linux/futex.h>: FUTEX_WAIT and FUTEX_WAKE with FUTEX_PRIVATE_FLAG.
const futexWaitPrivate, futexWakePrivate = 0 | 128, 1 | 128

// waiter runs wait on an OS thread of this process (locked, never
// unlocked: the thread ends with it) and returns the thread's tid. wake
// is called at cleanup and must end the wait; the cleanup then waits for
// the thread to finish.
func waiter(t *testing.T, wait func(), wake func()) int {
	t.Helper()
	tids := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		tids <- unix.Gettid()
		wait()
	}()
	t.Cleanup(func() {
		wake()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("a waiting thread did not end within 10s of its wake-up")
		}
	})
	return <-tids
}

// waitClass takes snapshots until thread tid of the tracked process is
// seen waiting in class want, and returns that wait; it fails after 5s
// with the last wait seen.
func waitClass(t *testing.T, m *Tracker, tid int, want waitsite.Class) waitsite.Wait {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var last Thread
	for {
		s, err := m.SnapshotAll()
		if err != nil {
			t.Fatal(err)
		}
		if th, ok := s.Thread(tid); ok {
			last = th
			if th.Wait.Class == want {
				t.Logf("wait: %s (%s); stack: %s", th.Wait, th.State, th.Wait.Stack())
				return th.Wait
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d: wait %q (class %q) in state %s, want class %q; stack: %s",
				tid, last.Wait, last.Wait.Class, last.State, want, last.Wait.Stack())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tcpPair returns a connected loopback TCP pair: the accepted end, the
// connecting end and the listener, with small buffers so that a sender
// fills them with a few hundred kilobytes.
func tcpPair(t *testing.T) (server, client, listener int) {
	t.Helper()
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(ln) })
	if err := unix.Bind(ln, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ln, 8); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(ln)
	if err != nil {
		t.Fatal(err)
	}
	client, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(client) })
	unix.SetsockoptInt(client, unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<10)
	if err := unix.Connect(client, sa); err != nil {
		t.Fatal(err)
	}
	server, _, err = unix.Accept4(ln, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(server) })
	unix.SetsockoptInt(server, unix.SOL_SOCKET, unix.SO_SNDBUF, 16<<10)
	return server, client, ln
}

func socketPair(t *testing.T, typ int) [2]int {
	t.Helper()
	sp, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(sp[0]); unix.Close(sp[1]) })
	return sp
}

func pipe(t *testing.T) [2]int {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	return p
}

// bigFile is a regular file larger than any socket buffer here.
func bigFile(t *testing.T) int {
	t.Helper()
	path := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(path, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// fill writes to fd until a write would block: a non-blocking copy of fd
// is used, so that the blocking waiter finds the buffer full at once.
func fill(t *testing.T, fd int) {
	t.Helper()
	nb, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nb)
	// O_NONBLOCK is on the open file, which the copy shares: set it only
	// while filling.
	if err := unix.SetNonblock(nb, true); err != nil {
		t.Fatal(err)
	}
	defer unix.SetNonblock(nb, false)
	buf := make([]byte, 64<<10)
	for {
		if _, err := unix.Write(nb, buf); err == unix.EAGAIN {
			return
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

// Each wait is made for real in this process, and the tracker must name
// its class from the sleeping thread's kernel stack. This is what pins the
// kernel function names of internal/waitsite to the kernels stallmon runs
// on: the VM tests run it on Debian's 6.1 and 6.12, the host on its own.
func TestWaitSites(t *testing.T) {
	privtest.Require(t)
	m := attach(t, os.Getpid())
	if m.syms == nil {
		t.Fatalf("no kernel symbols: every wait would be unknown")
	}
	shut := func(fd int) func() { return func() { unix.Shutdown(fd, unix.SHUT_RDWR) } }
	one := []byte{1}
	cases := []struct {
		name string
		want waitsite.Class
		// start makes the wait and returns the waiting thread.
		start func(t *testing.T) int
	}{
		{"sendfile to a TCP peer that does not read", waitsite.SocketSend, func(t *testing.T) int {
			s, _, _ := tcpPair(t)
			file := bigFile(t)
			return waiter(t, func() { unix.Sendfile(s, file, nil, 8<<20) }, shut(s))
		}},
		{"sendfile to a unix stream peer that does not read", waitsite.SocketSend, func(t *testing.T) int {
			sp := socketPair(t, unix.SOCK_STREAM)
			file := bigFile(t)
			return waiter(t, func() { unix.Sendfile(sp[0], file, nil, 8<<20) }, shut(sp[0]))
		}},
		{"write to a full TCP socket", waitsite.SocketSend, func(t *testing.T) int {
			s, _, _ := tcpPair(t)
			fill(t, s)
			return waiter(t, func() { unix.Write(s, make([]byte, 64<<10)) }, shut(s))
		}},
		{"recv on a TCP socket", waitsite.SocketRecv, func(t *testing.T) int {
			s, _, _ := tcpPair(t)
			return waiter(t, func() { unix.Read(s, make([]byte, 1)) }, shut(s))
		}},
		{"accept on a TCP listener", waitsite.SocketRecv, func(t *testing.T) int {
			_, _, ln := tcpPair(t)
			return waiter(t, func() { unix.Accept4(ln, unix.SOCK_CLOEXEC) }, shut(ln))
		}},
		{"recv on a unix stream socket", waitsite.SocketRecv, func(t *testing.T) int {
			sp := socketPair(t, unix.SOCK_STREAM)
			return waiter(t, func() { unix.Read(sp[0], make([]byte, 1)) }, shut(sp[0]))
		}},
		{"recv on a UDP socket", waitsite.SocketRecv, func(t *testing.T) int {
			c, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			raw, err := c.(*net.UDPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var fd int
			raw.Control(func(f uintptr) { fd = int(f) })
			unix.SetNonblock(fd, false)
			return waiter(t, func() { unix.Read(fd, make([]byte, 1)) }, shut(fd))
		}},
		{"read of an empty pipe", waitsite.Pipe, func(t *testing.T) int {
			p := pipe(t)
			return waiter(t, func() { unix.Read(p[0], make([]byte, 1)) }, func() { unix.Write(p[1], one) })
		}},
		{"write to a full pipe", waitsite.Pipe, func(t *testing.T) int {
			p := pipe(t)
			fill(t, p[1])
			return waiter(t, func() { unix.Write(p[1], one) }, func() { unix.Read(p[0], make([]byte, 1<<20)) })
		}},
		{"open of a FIFO without a writer", waitsite.Pipe, func(t *testing.T) int {
			path := filepath.Join(t.TempDir(), "fifo")
			if err := unix.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
			return waiter(t, func() {
				if fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
					unix.Close(fd)
				}
			}, func() {
				if fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0); err == nil {
					unix.Close(fd)
				}
			})
		}},
		{"futex wait", waitsite.Futex, func(t *testing.T) int {
			word := new(uint32)
			return waiter(t, func() {
				unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word)), futexWaitPrivate, 0, 0, 0, 0)
				runtime.KeepAlive(word)
			}, func() {
				*word = 1
				unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word)), futexWakePrivate, 1, 0, 0, 0)
			})
		}},
		{"poll", waitsite.Poll, func(t *testing.T) int {
			p := pipe(t)
			return waiter(t, func() { unix.Poll([]unix.PollFd{{Fd: int32(p[0]), Events: unix.POLLIN}}, -1) }, func() { unix.Write(p[1], one) })
		}},
		{"select", waitsite.Poll, func(t *testing.T) int {
			p := pipe(t)
			return waiter(t, func() {
				var set unix.FdSet
				set.Set(p[0])
				unix.Select(p[0]+1, &set, nil, nil, nil)
			}, func() { unix.Write(p[1], one) })
		}},
		{"epoll_wait", waitsite.Poll, func(t *testing.T) int {
			p := pipe(t)
			ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Close(ep) })
			if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, p[0], &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(p[0])}); err != nil {
				t.Fatal(err)
			}
			return waiter(t, func() { unix.EpollWait(ep, make([]unix.EpollEvent, 1), -1) }, func() { unix.Write(p[1], one) })
		}},
		{"nanosleep", waitsite.Sleep, func(t *testing.T) int {
			var tid int
			var once sync.Once
			tid = waiter(t, func() {
				ts := unix.NsecToTimespec(int64(time.Hour))
				unix.Nanosleep(&ts, nil)
			}, func() {
				// nanosleep is never restarted after a handler: the
				// runtime's preemption signal ends it with EINTR.
				once.Do(func() { unix.Tgkill(os.Getpid(), tid, unix.SIGURG) })
			})
			return tid
		}},
		{"a syscall held for a seccomp supervisor", waitsite.SeccompNotify, seccompHeld},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			waitClass(t, m, c.start(t), c.want)
		})
	}
}

// seccompHeld starts a thread whose getppid(2) its own seccomp filter
// hands to a supervisor that never answers (SECCOMP_RET_USER_NOTIF): it
// sleeps until the listener is closed, when the call fails with ENOSYS.
// The filter and no_new_privs are the thread's own: no other thread of
// the test process is filtered.
func seccompHeld(t *testing.T) int {
	t.Helper()
	listener := make(chan int, 1)
	tid := waiter(t, func() {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			listener <- -1
			return
		}
		filter := []unix.SockFilter{
			{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
			{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_GETPPID, Jt: 0, Jf: 1},
			{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_USER_NOTIF},
			{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		}
		prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		fd, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER,
			uintptr(unsafe.Pointer(&prog)))
		runtime.KeepAlive(filter)
		if errno != 0 {
			listener <- -1
			return
		}
		listener <- int(fd)
		unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
	}, func() {})
	fd := <-listener
	if fd < 0 {
		t.Fatal("installing the seccomp filter failed")
	}
	// Registered after waiter's: cleanups run last first, so the
	// listener closes, and the call returns, before the wait for it.
	t.Cleanup(func() { unix.Close(fd) })
	return tid
}

// The waits that need another process: FUSE (whose reader must block
// signals, see fusehang), userfaultfd and io_uring, made by the workload.
func TestWaitSitesOfWorkload(t *testing.T) {
	fusehang.Require(t)
	p := startWorkload(t)
	m := attach(t, p.PID)

	t.Run("direct read of a FUSE file", func(t *testing.T) {
		fs := fusehang.Mount(t, fusehang.Options{})
		tid := fieldInt(t, do(t, p, "read-file "+fs.File), "tid")
		w := waitClass(t, m, tid, waitsite.FUSE)
		if w.Site != "request_wait_answer" {
			t.Errorf("site %q, want request_wait_answer", w.Site)
		}
		fs.Release()
	})
	t.Run("sendfile from a FUSE file through the page cache", func(t *testing.T) {
		fs := fusehang.Mount(t, fusehang.Options{PageCache: true})
		tid := fieldInt(t, do(t, p, "sendfile "+fs.File), "tid")
		waitClass(t, m, tid, waitsite.Storage)
		fs.Release()
	})
	t.Run("read into a userfaultfd page", func(t *testing.T) {
		tid := fieldInt(t, do(t, p, "uffd-hang"), "tid")
		waitClass(t, m, tid, waitsite.Userfaultfd)
		do(t, p, "uffd-release")
	})
	t.Run("io_uring idle", func(t *testing.T) {
		r := do(t, p, "uring-idle")
		for _, who := range []string{"tid", "sqpoll_tid", "worker_tid"} {
			t.Run(who, func(t *testing.T) { waitClass(t, m, fieldInt(t, r, who), waitsite.IOUring) })
		}
		do(t, p, "uring-stop")
	})
	t.Run("io-wq worker reading a FUSE file", func(t *testing.T) {
		fs := fusehang.Mount(t, fusehang.Options{})
		do(t, p, "uring-read "+fs.File+" S")
		// Whichever io-wq worker took the read (an idle one may be
		// there too).
		deadline := time.Now().Add(5 * time.Second)
		for {
			s, err := m.SnapshotAll()
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(s.Threads, func(th Thread) bool { return th.Kernel && th.Wait.Class == waitsite.FUSE })
			if i >= 0 {
				t.Logf("worker %d: wait %s; stack: %s", s.Threads[i].TID, s.Threads[i].Wait, s.Threads[i].Wait.Stack())
				break
			}
			if time.Now().After(deadline) {
				var all []string
				for _, th := range s.Threads {
					all = append(all, fmt.Sprintf("%d %s %s: %s", th.TID, th.Comm, th.State, th.Wait.Stack()))
				}
				t.Fatalf("no kernel-made thread waits on the FUSE server; the threads:\n%s", strings.Join(all, "\n"))
			}
			time.Sleep(10 * time.Millisecond)
		}
		fs.Release()
	})
}

// Without the kernel's symbols every wait is unknown, never a class a rule
// could read as waiting by design.
func TestWaitSiteWithoutSymbols(t *testing.T) {
	privtest.Require(t)
	m := attach(t, os.Getpid())
	m.syms = nil
	p := pipe(t)
	tid := waiter(t, func() { unix.Read(p[0], make([]byte, 1)) }, func() { unix.Write(p[1], []byte{1}) })
	w := waitClass(t, m, tid, waitsite.Unknown)
	if len(w.Frames) == 0 || w.Frames[0][:2] != "0x" {
		t.Errorf("frames %q, want the bare addresses", w.Frames)
	}
}

// NoWaitSites takes no stacks: a sleeping thread's wait is None.
func TestNoWaitSites(t *testing.T) {
	privtest.Require(t)
	m, err := Attach(Process(os.Getpid()), nil, Options{NoWaitSites: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	p := pipe(t)
	tid := waiter(t, func() { unix.Read(p[0], make([]byte, 1)) }, func() { unix.Write(p[1], []byte{1}) })
	deadline := time.Now().Add(5 * time.Second)
	for {
		th := mustThread(t, snapshot(t, m), tid)
		if th.State == StateInterruptible && th.InSyscall {
			if th.Wait.Captured() {
				t.Fatalf("wait %s taken with NoWaitSites", th.Wait)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d never seen asleep in its read: %+v", tid, th)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The kernel side keeps each sleeper's stack for as long as the thread
// has not been switched since: a thread that wakes and sleeps elsewhere
// is walked anew, and a thread's entry goes when it exits.
func TestWaitSiteFollowsTheThread(t *testing.T) {
	privtest.Require(t)
	m := attach(t, os.Getpid())
	a, b := pipe(t), pipe(t)
	tid := waiter(t, func() {
		unix.Read(a[0], make([]byte, 1))
		unix.Poll([]unix.PollFd{{Fd: int32(b[0]), Events: unix.POLLIN}}, -1)
	}, func() { unix.Write(b[1], []byte{1}) })
	waitClass(t, m, tid, waitsite.Pipe)
	// Seen twice from the cache, then woken and asleep elsewhere.
	waitClass(t, m, tid, waitsite.Pipe)
	unix.Write(a[1], []byte{1})
	waitClass(t, m, tid, waitsite.Poll)

	// Ten threads asleep, walked once, then woken: those that exit keep
	// no entry. (The Go runtime may keep a woken thread for other work.)
	var tids []int
	p := pipe(t)
	for range 10 {
		tid := waiter(t, func() { unix.Read(p[0], make([]byte, 1)) }, func() {})
		tids = append(tids, tid)
		waitClass(t, m, tid, waitsite.Pipe)
	}
	if n := cachedWaits(t, m, tids); n != len(tids) {
		t.Fatalf("%d of the %d sleepers' stacks kept, want all", n, len(tids))
	}
	unix.Write(p[1], make([]byte, len(tids)))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var gone []int
		for _, tid := range tids {
			if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid)); err != nil {
				gone = append(gone, tid)
			}
		}
		kept := cachedWaits(t, m, gone)
		if len(gone) >= len(tids)/2 && kept == 0 {
			t.Logf("%d of the %d threads exited, none keeps an entry", len(gone), len(tids))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d threads exited, %d of them still have a stack kept", len(gone), len(tids), kept)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cachedWaits counts the kernel side's kept stacks of the threads tids.
func cachedWaits(t *testing.T, m *Tracker, tids []int) int {
	t.Helper()
	var k gen.StallmonWaitKey
	var v gen.StallmonWaitSite
	n := 0
	it := m.objs.WaitCache.Iterate()
	for it.Next(&k, &v) {
		if slices.Contains(tids, int(k.Tid)) {
			n++
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
