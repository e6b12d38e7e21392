package tracker

import (
	"strconv"

	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// ABI is the syscall interface a thread entered the kernel through. A
// 32-bit process makes only 32-bit syscalls, and a 64-bit one may make
// them too (int 0x80); the same number names different syscalls in each
// table (i386's read is 3, amd64's 3 is close), so a number means nothing
// without its ABI.
type ABI uint8

// The values are the kernel side's (enum abi in bpf/word.h), which packs
// them into in-flight words and records.
const (
	ABINative = ABI(gen.StallmonAbiABI_NATIVE)
	ABICompat = ABI(gen.StallmonAbiABI_COMPAT) // i386 on amd64, arm (aarch32) on arm64
	ABIX32    = ABI(gen.StallmonAbiABI_X32)    // amd64's x32: native numbers with bit 30 set, plus x32-only ones from 512
)

func (a ABI) String() string {
	switch a {
	case ABINative:
		return Arch
	case ABICompat:
		if gen.CompatArch == "386" {
			return "ia32"
		}
		return "aarch32"
	case ABIX32:
		return "x32"
	}
	return "abi" + strconv.Itoa(int(a))
}

// name returns the name stallmon judges syscall nr of this ABI by: the
// native name of the same call where the ABI has its own spelling of it
// (i386's _llseek is lseek, its socketcall(SYS_RECV) is recvfrom), so
// that one table judges both. A number no table knows is "ABI_syscall_NR"
// and falls to the default rule. ok is false for such numbers.
func (a ABI) name(nr int, args [6]uint64) (string, bool) {
	switch a {
	case ABINative:
		n := SyscallName(nr)
		_, ok := syscallNrs[n]
		return n, ok
	case ABIX32:
		if nr < x32First {
			return ABINative.name(nr, args)
		}
		if i := nr - x32First; i < len(x32Names) {
			return x32Names[i], true
		}
	case ABICompat:
		if n := compatName(gen.CompatSyscallNames[:], nr, args); n != "" {
			return n, true
		}
	}
	return a.String() + "_syscall_" + strconv.Itoa(nr), false
}

// compatName is ABICompat's name for nr in table, "" for a number it
// does not know.
func compatName(table []string, nr int, args [6]uint64) string {
	n := tableName(table, nr, "")
	switch n {
	case "":
		return ""
	case "socketcall":
		return multiplexed(socketcalls, args[0], n)
	case "ipc":
		return multiplexed(ipcCalls, args[0]&0xffff, n)
	}
	if native, ok := compatAliases[n]; ok {
		return native
	}
	return n
}

// JudgedSyscall reports whether some thread's syscall can be judged by
// name on this architecture: a native call, or a call of another ABI by
// the name it is judged by (aarch32's poll on arm64, which has no native
// poll; ia32's statfs64). A budget table may name these, and only these.
func JudgedSyscall(name string) bool { return judgedNames[name] }

var judgedNames = archTables.judged()

// judged returns every name ABI.name gives a known number of some ABI.
func (st syscallTables) judged() map[string]bool {
	m := map[string]bool{}
	for _, n := range st.native {
		if n != "" {
			m[n] = true
		}
	}
	for nr := range st.compat {
		if n := compatName(st.compat, nr, [6]uint64{}); n != "" {
			m[n] = true
		}
		switch tableName(st.compat, nr, "") {
		case "socketcall":
			for _, n := range socketcalls {
				m[n] = true
			}
		case "ipc":
			for _, n := range ipcCalls {
				m[n] = true
			}
		}
	}
	if st.x32 {
		for _, n := range x32Names {
			m[n] = true
		}
	}
	return m
}

// syscallTables are the numberings of one architecture's ABIs: the
// native table, the compat one, and whether x32 exists (amd64 only). The
// running architecture's are archTables; a test reads the others'.
type syscallTables struct {
	native, compat []string
	x32            bool
}

var archTables = syscallTables{native: gen.SyscallNames[:], compat: gen.CompatSyscallNames[:], x32: gen.CompatArch == "386"}

// abiSlots is how many ABIs an in-flight word can name (enum word's
// ABI_BITS): the kernel side's per-ABI arrays have as many entries.
const abiSlots = 1 << abiBits

// noNr is a number no in-flight word holds (it is above NR_MASK): the
// kernel side's per-ABI numbers hold it for an ABI without the call.
const noNr = nrMask + 1

// nrs returns the number of syscall name in each ABI, as the in-flight
// word holds it (x32's without bit 30), noNr where an ABI lacks it.
func (st syscallTables) nrs(name string) [abiSlots]uint32 {
	var out [abiSlots]uint32
	for i := range out {
		out[i] = noNr
	}
	lookup := func(table []string) (uint32, bool) {
		for nr, n := range table {
			if n == name {
				return uint32(nr), true
			}
		}
		return 0, false
	}
	if nr, ok := lookup(st.native); ok {
		out[ABINative] = nr
	}
	if nr, ok := lookup(st.compat); ok {
		out[ABICompat] = nr
	}
	if st.x32 {
		// x32's own numbers first (from 512, where its call takes other
		// arguments than amd64's), then the calls it shares with amd64.
		if i, ok := lookup(x32Names); ok {
			out[ABIX32] = x32First + i
		} else {
			out[ABIX32] = out[ABINative]
		}
	}
	return out
}

func multiplexed(table map[uint64]string, call uint64, fallback string) string {
	if n, ok := table[call]; ok {
		return n
	}
	return fallback
}

// x32First is the first of the x32-only numbers (arch/x86/entry/syscalls/
// syscall_64.tbl); the x32 ABI is frozen, so the list is too.
const x32First = 512

var x32Names = []string{
	"rt_sigaction", "rt_sigreturn", "ioctl", "readv", "writev", "recvfrom", "sendmsg",
	"recvmsg", "execve", "ptrace", "rt_sigpending", "rt_sigtimedwait", "rt_sigqueueinfo",
	"sigaltstack", "timer_create", "mq_notify", "kexec_load", "waitid", "set_robust_list",
	"get_robust_list", "vmsplice", "move_pages", "preadv", "pwritev", "rt_tgsigqueueinfo",
	"recvmmsg", "sendmmsg", "process_vm_readv", "process_vm_writev", "setsockopt",
	"getsockopt", "io_setup", "io_submit", "execveat", "preadv2", "pwritev2",
}

// compatAliases maps 32-bit spellings to the native call they are, for
// the calls that can wait (the ones a budget table cares about).
var compatAliases = map[string]string{
	"_newselect":                   "select",
	"_llseek":                      "lseek",
	"fcntl64":                      "fcntl",
	"sendfile64":                   "sendfile",
	"waitpid":                      "wait4",
	"sigsuspend":                   "rt_sigsuspend",
	"sigreturn":                    "rt_sigreturn",
	"send":                         "sendto",
	"recv":                         "recvfrom",
	"mmap2":                        "mmap",
	"fstat64":                      "fstat",
	"stat64":                       "stat",
	"lstat64":                      "lstat",
	"fstatat64":                    "newfstatat",
	"ftruncate64":                  "ftruncate",
	"truncate64":                   "truncate",
	"fadvise64_64":                 "fadvise64",
	"arm_fadvise64_64":             "fadvise64",
	"arm_sync_file_range":          "sync_file_range",
	"sync_file_range2":             "sync_file_range",
	"clock_nanosleep_time64":       "clock_nanosleep",
	"futex_time64":                 "futex",
	"ppoll_time64":                 "ppoll",
	"pselect6_time64":              "pselect6",
	"io_pgetevents_time64":         "io_pgetevents",
	"recvmmsg_time64":              "recvmmsg",
	"semtimedop_time64":            "semtimedop",
	"mq_timedsend_time64":          "mq_timedsend",
	"mq_timedreceive_time64":       "mq_timedreceive",
	"rt_sigtimedwait_time64":       "rt_sigtimedwait",
	"io_getevents_time64":          "io_getevents",
	"epoll_pwait2_time64":          "epoll_pwait2",
	"utimensat_time64":             "utimensat",
	"clock_gettime64":              "clock_gettime",
	"timerfd_settime64":            "timerfd_settime",
	"timerfd_gettime64":            "timerfd_gettime",
	"sched_rr_get_interval_time64": "sched_rr_get_interval",
}

// socketcalls are the calls of i386's socketcall(2), by its first
// argument (include/uapi/linux/net.h). Their own arguments sit in user
// memory, so their fd is not known.
var socketcalls = map[uint64]string{
	1: "socket", 2: "bind", 3: "connect", 4: "listen", 5: "accept", 6: "getsockname",
	7: "getpeername", 8: "socketpair", 9: "sendto", 10: "recvfrom", 11: "sendto",
	12: "recvfrom", 13: "shutdown", 14: "setsockopt", 15: "getsockopt", 16: "sendmsg",
	17: "recvmsg", 18: "accept4", 19: "recvmmsg", 20: "sendmmsg",
}

// ipcCalls are the calls of ipc(2), by the low half of its first argument
// (include/uapi/linux/ipc.h).
var ipcCalls = map[uint64]string{
	1: "semop", 2: "semget", 3: "semctl", 4: "semtimedop", 11: "msgsnd", 12: "msgrcv",
	13: "msgget", 14: "msgctl", 21: "shmat", 22: "shmdt", 23: "shmget", 24: "shmctl",
}

// NativeNr is the number of t's syscall in the native table, for readers
// that know no other numbering (the heartbeat's stall record): Nr for a
// native call, the native number of the call it is judged as for another
// ABI's (ia32's read, 3, is 0 on amd64, where 3 is close), -1 when the
// native table has no such call or t is in none.
func (t Thread) NativeNr() int {
	if t.ABI == ABINative || t.Nr < 0 {
		return t.Nr
	}
	if nr, ok := SyscallNr(t.Syscall); ok {
		return nr
	}
	return -1
}
