package monitor

import (
	"strconv"

	"github.com/stallmon/stallmon/gen"
)

// Arch is the architecture whose syscall numbers the tracker reports.
const Arch = gen.SyscallArch

// SyscallName returns the name of syscall nr on this architecture, or
// "syscall_NR" for a number the table does not know.
func SyscallName(nr int) string {
	if nr >= 0 && nr < len(gen.SyscallNames) && gen.SyscallNames[nr] != "" {
		return gen.SyscallNames[nr]
	}
	return "syscall_" + strconv.Itoa(nr)
}

var syscallNrs = func() map[string]int {
	m := make(map[string]int, len(gen.SyscallNames))
	for nr, name := range gen.SyscallNames {
		if name != "" {
			m[name] = nr
		}
	}
	return m
}()

// SyscallNr returns the number of the named syscall on this architecture.
func SyscallNr(name string) (int, bool) {
	nr, ok := syscallNrs[name]
	return nr, ok
}

// fdSyscalls take a file descriptor as their first argument; for them the
// snapshot reports it, so a stall can be traced to a file or socket.
var fdSyscalls = []string{
	"read", "write", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev",
	"preadv2", "pwritev2", "close", "fstat", "fsync", "fdatasync", "ftruncate",
	"fallocate", "sync_file_range", "syncfs", "flock", "fcntl", "ioctl", "lseek",
	"getdents64", "sendfile", "splice", "tee", "vmsplice", "copy_file_range",
	"fchmod", "fchown", "fstatfs", "fgetxattr", "fsetxattr", "flistxattr",
	"fremovexattr", "fadvise64", "readahead", "dup", "dup3",
	"accept", "accept4", "connect", "bind", "listen", "shutdown",
	"sendto", "sendmsg", "sendmmsg", "recvfrom", "recvmsg", "recvmmsg",
	"getsockopt", "setsockopt", "getsockname", "getpeername",
	"epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl",
	"io_uring_enter", "io_uring_register", "inotify_add_watch",
	"mq_timedsend", "mq_timedreceive", "mq_notify", "fanotify_mark",
	"timerfd_settime", "timerfd_gettime", "signalfd4", "syncfs", "finit_module",
}

var fdSyscallNrs = func() map[int]bool {
	m := map[int]bool{}
	for _, name := range fdSyscalls {
		if nr, ok := SyscallNr(name); ok {
			m[nr] = true
		}
	}
	return m
}()

// TakesFD reports whether syscall nr's first argument is a file descriptor.
func TakesFD(nr int) bool { return fdSyscallNrs[nr] }
