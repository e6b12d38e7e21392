package tracker

import (
	"fmt"
	"math/bits"
	"time"

	"github.com/cilium/ebpf"

	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// QuietFunc says whether a thread asleep interruptibly in syscall, on fds
// of these kinds (none for a syscall without fd arguments), waits by design:
// no rule would ever judge it, however long it sleeps.
type QuietFunc func(syscall string, kinds ...fdkind.Kind) bool

// QuietSyscall counts the threads a snapshot left out while they slept in
// one syscall.
type QuietSyscall struct {
	Syscall string
	Threads int
	// Oldest is the longest such sleep the tracker saw enter; 0 when it
	// saw none enter (they were in flight before attach).
	Oldest time.Duration
}

// The quiet table's geometry, generated from enum quiet_set in
// bpf/quiet.h.
const (
	// quietNoFD is the kernel side's bit for "quiet with no fd argument",
	// beyond one bit per fd kind.
	quietNoFD = uint8(gen.StallmonQuietSetQUIET_NO_FD)
	// quietAnyFD, every bit, is quiet whatever the fds: the kernel side
	// need not classify them first.
	quietAnyFD = uint8(gen.StallmonQuietSetQUIET_ANY_FD)
	// quietEveryKind is a bit for each fd kind.
	quietEveryKind = 1<<gen.StallmonFdKindKIND_MAX - 1
	// quietNR is QUIET_NR: the native syscall numbers counted.
	quietNR = gen.StallmonQuietSetQUIET_NR
)

// quietTable lays quiet out as the kernel side's quiet array, indexed like
// fd_args. Only answers that hold whatever the iterator may see are
// written: a syscall whose name depends on its arguments (i386's
// socketcall and ipc) is never quiet, nor is one with two fd arguments
// unless every pair of kinds is.
func quietTable(quiet QuietFunc) []uint8 {
	kinds := fdkind.Kinds()
	cache := map[string]uint8{}
	mask := func(name string) uint8 {
		if m, ok := cache[name]; ok {
			return m
		}
		var m uint8
		if quiet(name) {
			m |= quietNoFD
		}
		switch fdArgCount(name) {
		case 0:
			// No fd to classify: the answer holds whatever the kinds.
			if m != 0 {
				m = quietAnyFD
			}
		case 1:
			for _, k := range kinds {
				if quiet(name, k) {
					m |= 1 << k
				}
			}
		default:
			all := true
			for _, a := range kinds {
				for _, b := range kinds {
					all = all && quiet(name, a) && quiet(name, a, b)
				}
			}
			if all {
				m |= quietEveryKind
			}
		}
		cache[name] = m
		return m
	}
	return syscallTable(func(abi ABI, nr int, name string, known bool) uint8 {
		if !known || (abi == ABICompat && argDependentName(nr)) {
			return 0
		}
		return mask(name)
	})
}

func fdArgCount(name string) int { return bits.OnesCount8(fdArgs[name]) }

// argDependentName reports a compat syscall whose name depends on its
// arguments (the multiplexers socketcall and ipc).
func argDependentName(nr int) bool {
	switch tableName(gen.CompatSyscallNames[:], nr, "") {
	case "socketcall", "ipc":
		return true
	}
	return false
}

// setQuiet gives the kernel side the quiet table and the worker flags it
// needs to apply it.
func (m *Tracker) setQuiet(spec *ebpf.CollectionSpec) error {
	if err := spec.Variables[gen.StallmonVarWorkerFlags].Set(m.workerFlags); err != nil {
		return fmt.Errorf("setting worker flags: %w", err)
	}
	if m.opts.Quiet == nil {
		return nil
	}
	if err := spec.Variables[gen.StallmonVarQuiet].Set(quietTable(m.opts.Quiet)); err != nil {
		return fmt.Errorf("setting quiet table: %w", err)
	}
	return nil
}

// startPass tells the kernel side whether the coming pass leaves quiet
// threads out, and tags what it will count.
func (m *Tracker) startPass(all bool) error {
	on := uint32(0)
	if m.opts.Quiet != nil && !all {
		on = 1
	}
	m.quietPass++
	if err := m.objs.QuietOn.Set(on); err != nil {
		return fmt.Errorf("setting quiet switch: %w", err)
	}
	if err := m.objs.QuietPass.Set(m.quietPass); err != nil {
		return fmt.Errorf("setting quiet pass: %w", err)
	}
	return nil
}

// quietCounts reads what the latest pass left out.
func (m *Tracker) quietCounts(snap *Snapshot, nowNS uint64) error {
	var pass uint64
	if err := m.objs.QuietThreadsPass.Get(&pass); err != nil {
		return fmt.Errorf("reading quiet pass: %w", err)
	}
	if pass != m.quietPass {
		return nil // nothing was left out
	}
	var n uint64
	if err := m.objs.QuietThreads.Get(&n); err != nil {
		return fmt.Errorf("reading quiet count: %w", err)
	}
	snap.Quiet = int(n)
	if err := m.objs.QuietInflight.Get(&m.quietBuf); err != nil {
		return fmt.Errorf("reading quiet syscalls: %w", err)
	}
	for nr, q := range m.quietBuf {
		if q.Pass != m.quietPass || q.Threads == 0 {
			continue
		}
		s := QuietSyscall{Syscall: SyscallName(nr), Threads: int(q.Threads)}
		if q.Oldest != 0 && nowNS > q.Oldest {
			s.Oldest = time.Duration(nowNS - q.Oldest)
		}
		snap.QuietInFlight = append(snap.QuietInFlight, s)
	}
	return nil
}
