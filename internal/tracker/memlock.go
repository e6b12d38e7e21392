package tracker

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// memlockMu keeps the probe's lowered limit from meeting a raise.
var memlockMu sync.Mutex

// memcgFound is set once the kernel was found to charge BPF memory to
// the memory cgroup, which it then does for good: later attaches neither
// probe nor lower the limit again.
var memcgFound atomic.Bool

// probeMemcgAccounting tells whether the kernel charges BPF memory to the
// memory cgroup (5.11) rather than to RLIMIT_MEMLOCK, as cilium/ebpf's
// rlimit package does: with the soft limit at zero, a one-entry array
// can only be created where the limit does not apply. The limit is
// per process: the window is a map creation long. cilium/ebpf's rlimit
// package is not imported for it: its init runs this probe in every
// process, so even a refused command line would call bpf().
func probeMemcgAccounting() error {
	memlockMu.Lock()
	defer memlockMu.Unlock()
	// A child forked while the limit is at zero would keep it for good
	// (a hook, a sink's command, the service under run): every fork of
	// os/exec takes ForkLock for writing, so holding it for reading
	// keeps them out of the window.
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	var old unix.Rlimit
	if err := unix.Prlimit(0, unix.RLIMIT_MEMLOCK, nil, &old); err != nil {
		return fmt.Errorf("reading RLIMIT_MEMLOCK: %w", err)
	}
	// The hard limit stays: lowering it cannot be undone unprivileged.
	if err := unix.Prlimit(0, unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: 0, Max: old.Max}, nil); err != nil {
		return fmt.Errorf("lowering RLIMIT_MEMLOCK: %w", err)
	}
	m, mapErr := ebpf.NewMap(&ebpf.MapSpec{Name: "stallmon_memcg", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err := unix.Prlimit(0, unix.RLIMIT_MEMLOCK, &old, nil); err != nil {
		return fmt.Errorf("restoring RLIMIT_MEMLOCK: %w", err)
	}
	switch {
	case mapErr == nil:
		return m.Close()
	case errors.Is(mapErr, unix.EPERM):
		return notSupported("a map cannot be created with RLIMIT_MEMLOCK at 0")
	}
	return fmt.Errorf("creating a map with RLIMIT_MEMLOCK at 0: %w", mapErr)
}

// LiftMemlock raises RLIMIT_MEMLOCK to unlimited where the kernel still
// charges BPF memory to it, and reports whether it did. Elsewhere the
// limit is left as the operator set it. It needs CAP_SYS_RESOURCE where
// it raises.
func LiftMemlock() (bool, error) {
	var cur unix.Rlimit
	if err := unix.Prlimit(0, unix.RLIMIT_MEMLOCK, nil, &cur); err != nil {
		return false, fmt.Errorf("reading RLIMIT_MEMLOCK: %w", err)
	}
	if cur.Cur == unix.RLIM_INFINITY {
		// Nothing to raise; and no probe lowering a limit that
		// mlockall(MCL_FUTURE) may be relying on.
		return false, nil
	}
	if memcgFound.Load() {
		return false, nil
	}
	err := probeMemcgAccounting()
	if err == nil {
		memcgFound.Store(true)
		return false, nil
	}
	if !errors.Is(err, ebpf.ErrNotSupported) {
		return false, err
	}
	memlockMu.Lock()
	defer memlockMu.Unlock()
	inf := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	if err := unix.Prlimit(0, unix.RLIMIT_MEMLOCK, &inf, nil); err != nil {
		return false, fmt.Errorf("raising RLIMIT_MEMLOCK, which this kernel charges BPF memory to (needs CAP_SYS_RESOURCE): %w", err)
	}
	return true, nil
}
