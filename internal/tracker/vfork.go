package tracker

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// VforkChild is the child a thread waits for in vfork, or in clone or
// clone3 with CLONE_VFORK (glibc's posix_spawn, Go's os/exec): a process
// of its own, sharing the parent's memory until it execs or exits, while
// the parent sleeps in killable D. The kernel side finds it from its
// parent (bpf/vfork.h), so it is seen also when it is no target itself.
type VforkChild struct {
	TID   int // its pid: a vfork child has one thread
	Comm  string
	State TaskState
	// Switches and Voluntary, as for a Thread: unchanged between two
	// snapshots, the child has not run, or not slept, in between.
	Switches, Voluntary uint64
	// InSyscall is false when its registers hold no syscall (a page
	// fault, user space); Nr is then -1 and Syscall "".
	InSyscall bool
	Nr        int
	ABI       ABI
	Syscall   string
}

// waitsForVfork reports a thread that may be waiting for a vfork child:
// asleep in D inside one of the calls that wait for one.
func waitsForVfork(t *Thread) bool {
	if !t.InSyscall || (t.State != StateKillable && t.State != StateUninterruptible) {
		return false
	}
	switch t.Syscall {
	case "vfork", "clone", "clone3":
		return true
	}
	return false
}

// vforkChildren gives each thread of snap that waits for a vfork child
// the child the latest pass found: one map lookup per such thread, none
// for the others.
func (m *Tracker) vforkChildren(snap *Snapshot) error {
	for i := range snap.Threads {
		t := &snap.Threads[i]
		if !waitsForVfork(t) {
			continue
		}
		var v gen.StallmonVforkChild
		err := m.objs.VforkChildren.Lookup(uint32(t.TID), &v)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading the vfork child of thread %d: %w", t.TID, err)
		}
		if v.Pass != m.quietPass {
			continue // found by an earlier pass: the child has gone since
		}
		c := &VforkChild{
			TID:       int(v.Tid),
			Comm:      cString(v.Comm[:]),
			State:     decodeState(v.State, v.OnCpu != 0),
			Switches:  v.Switches,
			Voluntary: v.Voluntary,
			Nr:        -1,
		}
		if v.RegsNr >= 0 {
			c.InSyscall, c.Nr, c.ABI = true, int(v.RegsNr)&nrMask, ABI(v.RegsAbi)
			c.Syscall, _ = c.ABI.name(c.Nr, [6]uint64{})
		}
		t.VforkChild = c
	}
	return nil
}
