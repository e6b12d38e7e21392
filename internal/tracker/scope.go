package tracker

import (
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// Scope says what a Tracker watches: one process, a process tree or a
// cgroup subtree. Make one with Process, Tree, Cgroup or EmptyCgroup.
type Scope struct {
	open func() (scope, error)
}

// Process is one process: pid, validated at Attach (it exists, is no
// zombie, no kernel thread, and is a process, not a thread).
func Process(pid int) Scope {
	return Scope{func() (scope, error) { return openTarget(pid) }}
}

// Tree is pid and all its descendants, present and future.
func Tree(pid int) Scope {
	return Scope{func() (scope, error) { return openTree(pid) }}
}

// Cgroup is every process of a cgroup v2 directory and of its
// descendants, as they come and go. path is absolute or relative to the
// cgroup v2 root (system.slice/nginx.service).
func Cgroup(path string) Scope {
	return Scope{func() (scope, error) { return openCgroupScope(path, false) }}
}

// EmptyCgroup is a cgroup that has no process yet, for a service about to
// be started straight into it (clone3 with CLONE_INTO_CGROUP): every
// syscall of the service is watched, its first included. Done waits for
// Started before it can close.
func EmptyCgroup(path string) Scope {
	return Scope{func() (scope, error) { return openCgroupScope(path, true) }}
}

// scope is what a Tracker watches, once opened: one process (target) or every process
// of a cgroup subtree (cgroupScope).
type scope interface {
	// configure sets the kernel side's filter before load, for an
	// object whose tree and joined maps are laid out as layout says.
	configure(spec *ebpf.CollectionSpec, layout memberLayout) error
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
	// processes appends to dst the processes a pass walks one by one
	// (walkers.go), or returns errHostWalk if it cannot list them.
	processes(dst []int) ([]int, error)
	// admitted says that every process of the latest processes has its
	// iterator: a cgroup may forget those it was told had joined.
	admitted()
	// wait blocks until everything watched is gone (nil), or until close
	// ends it (an error).
	wait() error
	// signal sends sig to everything watched, never to a bare PID.
	signal(sig unix.Signal) error
	close() error
}

func (t *target) configure(spec *ebpf.CollectionSpec, _ memberLayout) error {
	if err := spec.Variables[gen.StallmonVarTargetTgid].Set(uint32(t.pid)); err != nil {
		return fmt.Errorf("setting target pid: %w", err)
	}
	return nil
}

func (t *target) leader() int                        { return t.pid }
func (t *target) single() bool                       { return true }
func (t *target) seed(*gen.StallmonObjects) error    { return nil }
func (t *target) refresh()                           {}
func (t *target) processes(dst []int) ([]int, error) { return append(dst, t.pid), nil }
func (t *target) admitted()                          {}
func (t *target) wait() error                        { return t.waitExit() }
func (t *target) close() error                       { return t.pidfd.Close() }
