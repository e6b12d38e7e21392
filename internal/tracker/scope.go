package tracker

import (
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// scope is what a Monitor watches: one process (target) or every process
// of a cgroup subtree (cgroupScope).
type scope interface {
	// configure sets the kernel side's filter before load.
	configure(spec *ebpf.CollectionSpec) error
	// leader is the watched process (a tree's root), 0 for a cgroup.
	leader() int
	// single reports a scope of one process, whose exit status is the
	// target's and which the iterator can be filtered on.
	single() bool
	// seed runs once the programs are attached, with the kernel side's
	// objects: a tree enters its members.
	seed(objs *gen.StallmonObjects) error
	// refresh runs at each snapshot: a tree lets go of members that
	// exited.
	refresh()
	// wait blocks until everything watched is gone (nil), or until close
	// ends it (an error).
	wait() error
	// signal sends sig to everything watched, never to a bare PID.
	signal(sig unix.Signal) error
	close() error
}

func (t *target) configure(spec *ebpf.CollectionSpec) error {
	if err := spec.Variables[gen.StallmonVarTargetTgid].Set(uint32(t.pid)); err != nil {
		return fmt.Errorf("setting target pid: %w", err)
	}
	return nil
}

func (t *target) leader() int                     { return t.pid }
func (t *target) single() bool                    { return true }
func (t *target) seed(*gen.StallmonObjects) error { return nil }
func (t *target) refresh()                        {}
func (t *target) wait() error                     { return t.waitExit() }
func (t *target) close() error                    { return t.pidfd.Close() }
