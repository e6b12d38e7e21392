package tracker

import (
	"fmt"
	"strconv"

	"github.com/cilium/ebpf"

	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// Arch is the architecture whose syscall numbers the tracker reports.
const Arch = gen.SyscallArch

// SyscallName returns the name of native syscall nr on this architecture,
// or "syscall_NR" for a number the table does not know.
func SyscallName(nr int) string { return tableName(gen.SyscallNames[:], nr, "syscall_") }

func tableName(table []string, nr int, unknown string) string {
	if nr >= 0 && nr < len(table) && table[nr] != "" {
		return table[nr]
	}
	return unknown + strconv.Itoa(nr)
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

// fdArgs says which arguments of a syscall are file descriptors, a bit
// per argument; the kernel side classifies the first two. Syscalls with
// two fds are judged by both, so that a file on a hung file system bounds
// a sendfile to a socket.
var fdArgs = func() map[string]uint8 {
	m := map[string]uint8{
		"sendfile":        1<<0 | 1<<1, // out, in
		"splice":          1<<0 | 1<<2, // in, off_in, out
		"tee":             1<<0 | 1<<1, // in, out
		"copy_file_range": 1<<0 | 1<<2, // in, off_in, out
	}
	for _, name := range []string{
		"read", "write", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev",
		"preadv2", "pwritev2", "close", "fstat", "fsync", "fdatasync", "ftruncate",
		"fallocate", "sync_file_range", "syncfs", "flock", "fcntl", "ioctl", "lseek",
		"getdents64", "vmsplice", "fchmod", "fchown", "fstatfs", "fgetxattr", "fsetxattr",
		"flistxattr", "fremovexattr", "fadvise64", "readahead", "dup", "dup3",
		"accept", "accept4", "connect", "bind", "listen", "shutdown",
		"sendto", "sendmsg", "sendmmsg", "recvfrom", "recvmsg", "recvmmsg",
		"getsockopt", "setsockopt", "getsockname", "getpeername",
		"epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl",
		"io_uring_enter", "io_uring_register", "inotify_add_watch",
		"mq_timedsend", "mq_timedreceive", "mq_notify", "fanotify_mark",
		"timerfd_settime", "timerfd_gettime", "signalfd4", "finit_module",
	} {
		m[name] = 1 << 0
	}
	return m
}()

// FDArgs returns the bit set of syscall name's arguments that are fds.
func FDArgs(name string) uint8 { return fdArgs[name] }

// fdArgTable lays fdArgs out as the kernel side's fd_args: ABI * 1024 +
// number, in the numbering of each ABI.
func fdArgTable() []uint8 {
	return syscallTable(func(_ ABI, _ int, name string, _ bool) uint8 { return fdArgs[name] })
}

// nativeNrTable lays out the kernel side's native_nrs (bpf/native.h),
// indexed like fd_args: the native number of the call each number of
// each ABI is judged as, nativeNone where the native table has none.
func nativeNrTable() []uint16 {
	t := syscallTable(func(_ ABI, _ int, name string, known bool) uint16 {
		if nr, ok := SyscallNr(name); ok && known {
			return uint16(nr)
		}
		return nativeNone
	})
	// No word holds ABI 3: its entries must not read as native call 0.
	for i := 3 * int(gen.StallmonFdArgsTableFD_ARGS_NR); i < len(t); i++ {
		t[i] = nativeNone
	}
	return t
}

// nativeNone is native_nrs' "no native call", from bpf/native.h.
const nativeNone = uint16(gen.StallmonNativeNrTableNATIVE_NONE)

// syscallTable lays a value per syscall out as the kernel side's tables
// (fd_args, quiet, native_nrs) index them: ABI * 1024 + number, in the
// numbering of each ABI, ABI 3 empty. value gets each number's name and
// whether a table knows it. The geometry is enum fd_args_table's, in
// bpf/fdclass.h.
func syscallTable[T any](value func(abi ABI, nr int, name string, known bool) T) []T {
	const perABI = int(gen.StallmonFdArgsTableFD_ARGS_NR)
	out := make([]T, gen.StallmonFdArgsTableFD_ARGS_LEN)
	for _, abi := range []ABI{ABINative, ABICompat, ABIX32} {
		for nr := 0; nr < perABI; nr++ {
			name, known := abi.name(nr, [6]uint64{})
			out[int(abi)*perABI+nr] = value(abi, nr, name, known)
		}
	}
	return out
}

// setSyscallTables gives the kernel side what it reads of each ABI's
// syscall table: the fd arguments of every syscall and its native number.
func setSyscallTables(spec *ebpf.CollectionSpec) error {
	if err := spec.Variables[gen.StallmonVarFdArgs].Set(fdArgTable()); err != nil {
		return fmt.Errorf("setting fd argument table: %w", err)
	}
	if err := spec.Variables[gen.StallmonVarNativeNrs].Set(nativeNrTable()); err != nil {
		return fmt.Errorf("setting native syscall number table: %w", err)
	}
	return nil
}
