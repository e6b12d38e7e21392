package tracker

import (
	"bytes"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// Death is a thread of the target that exited with a syscall other than
// exit or exit_group in flight. A fatal signal takes effect only after
// sys_exit and seccomp kills before sys_enter, so only the kernel itself
// can end a thread inside a syscall: an oops (BUG, a bad pointer in a
// driver) kills the thread where it is, often holding locks. The syscall
// never returns, the thread is gone, and the process carries on without
// it: the incident stallmon exists for, in its most silent form.
type Death struct {
	PID  int // the thread's process
	TID  int
	Comm string
	// Nr is the syscall's number in the table of ABI, the interface the
	// thread made it through; Syscall its name as the table judges it.
	Nr      int
	ABI     ABI
	Syscall string
	FD      int // -1 if the syscall takes none
	// InSyscall is how long the syscall had run when the thread died.
	InSyscall time.Duration
	// Ago is how long before the snapshot the thread died.
	Ago time.Duration
	// Signal is what the kernel killed the thread with (SIGSEGV for an
	// oops on Linux 6.1), 0 if unknown.
	Signal unix.Signal
	// Seq numbers deaths from 1 in the order the kernel saw them.
	Seq uint64
}

// setExitNrs tells the kernel side which syscalls a thread may end
// inside, in each ABI, and which one is close(2).
func setExitNrs(spec *ebpf.CollectionSpec) error {
	for name, sc := range map[string]string{gen.StallmonVarNrExit: "exit", gen.StallmonVarNrExitGroup: "exit_group"} {
		nrs := archTables.nrs(sc)
		for _, abi := range []ABI{ABINative, ABICompat} {
			if nrs[abi] == noNr {
				// Without it every thread of that ABI would die in it.
				return fmt.Errorf("no %s syscall in the %s table", sc, abi)
			}
		}
		if err := spec.Variables[name].Set(nrs); err != nil {
			return fmt.Errorf("setting %s numbers: %w", sc, err)
		}
	}
	closeNrs := archTables.nrs("close")
	for name, abi := range map[string]ABI{gen.StallmonVarNrClose: ABINative, gen.StallmonVarNrCloseCompat: ABICompat} {
		if closeNrs[abi] == noNr {
			return fmt.Errorf("no close syscall in the %s table", abi)
		}
		if err := spec.Variables[name].Set(closeNrs[abi]); err != nil {
			return fmt.Errorf("setting %s close number: %w", abi, err)
		}
	}
	return nil
}

// DeathRing is how many deaths the kernel keeps (DEATHS in bpf/deaths.h,
// the size of the deaths map): a snapshot lists at most that many.
const DeathRing = int(gen.StallmonDeathRingDEATHS)

// deaths returns the threads that died inside a syscall since attach, the
// oldest first, as of the kernel clock now. The kernel keeps the latest
// DeathRing; when more died between two reads, the count still says so:
// total is exact even when the list is not.
func (m *Tracker) deaths(now uint64) (list []Death, total uint64, err error) {
	if err := m.objs.DeathsTotal.Get(&total); err != nil {
		return nil, 0, fmt.Errorf("reading death count: %w", err)
	}
	if total == 0 {
		return nil, 0, nil
	}
	ring := uint64(m.objs.Deaths.MaxEntries())
	first := uint64(1)
	if total > ring {
		first = total - ring + 1
	}
	for seq := first; seq <= total; seq++ {
		var d gen.StallmonDeath
		slot := uint32((seq - 1) % ring)
		if err := m.objs.Deaths.Lookup(slot, &d); err != nil {
			return nil, 0, fmt.Errorf("reading death record %d: %w", seq, err)
		}
		if d.Seq != seq {
			// Counted but not yet written (a thread dying right now), or
			// overwritten by a newer one: the count already tells.
			continue
		}
		list = append(list, decodeDeath(d, now))
	}
	return list, total, nil
}

func decodeDeath(d gen.StallmonDeath, now uint64) Death {
	nr, abi, start := unpackWord(d.Word)
	name, _ := abi.name(nr, [6]uint64{d.Arg0})
	out := Death{
		PID: int(d.Tgid), TID: int(d.Tid), Nr: nr, ABI: abi, Syscall: name, FD: -1,
		Signal: unix.Signal(d.ExitCode & 0x7f), Seq: d.Seq,
	}
	out.Comm = string(d.Comm[:])
	if i := bytes.IndexByte(d.Comm[:], 0); i >= 0 {
		out.Comm = string(d.Comm[:i])
	}
	// i386's socketcall and ipc are named by their first argument, and
	// the fd of the call they make sits in user memory.
	if FDArgs(name)&1 != 0 && (abi != ABICompat || !argDependentName(nr)) {
		out.FD = int(int32(d.Arg0))
	}
	if d.At > start {
		out.InSyscall = time.Duration(d.At - start)
	}
	if now > d.At {
		out.Ago = time.Duration(now - d.At)
	}
	return out
}
