package tracker

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/bpfiter"
)

// The thread walk: where the kernel has Linux 6.7's open-coded task
// iterator and 6.8's trusted arguments of BPF functions, each process of
// the scope is walked by one visit of its leader (bpf: snapshot_threads)
// that reads the thread list itself, instead of the iterator's walk,
// which looks every thread up by pid and enters the program once per
// thread. At 10,000 threads the per-visit walk costs about 1 us a thread
// with cold caches, mostly misses on each thread's pid; the thread walk a
// third of that (make bench's poll rows).
//
// Its output must fit the kernel's seq buffer (PAGE_SIZE << 3), about 97
// records with 4 KiB pages, since it writes them all in one visit: a
// process with more threads that are not quiet fails the read (E2BIG)
// and is walked per visit, the pass taken again whole, and stays so for
// overflowHold passes before the thread walk is tried again.

// overflowHold is how many passes a process whose thread walk overflowed
// is walked per visit.
const overflowHold = 50

// threadsProg is the thread walk's program in the object's spec.
const threadsProg = "snapshot_threads"

// stubThreadWalk makes the thread walk a program that writes nothing,
// for a kernel that cannot load it: the object keeps its shape, and the
// tracker walks per visit.
func stubThreadWalk(spec *ebpf.CollectionSpec) error {
	p := spec.Programs[threadsProg]
	if p == nil {
		return fmt.Errorf("the tracker's object has no program %s", threadsProg)
	}
	p.Instructions = asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	return nil
}

// threadLink is the thread walk's iterator of process pid: one visit, of
// its leader.
func (m *Tracker) threadLink(pid int) (*link.Iter, error) {
	it, err := bpfiter.LinkTask(m.objs.SnapshotThreads, pid)
	if err != nil {
		return nil, fmt.Errorf("attaching the thread walk of process %d: %w", pid, err)
	}
	if err := m.guard.watch("thread walk", it, m.objs.SnapshotThreads, "task"); err != nil {
		it.Close()
		return nil, err
	}
	return it, nil
}

// visitLink is the per-visit iterator of process pid.
func (m *Tracker) visitLink(pid int) (*link.Iter, error) {
	it, err := bpfiter.Link(m.objs.Snapshot, pid, true)
	if err != nil {
		return nil, fmt.Errorf("attaching the task iterator of process %d: %w", pid, err)
	}
	if err := m.guard.watch("task iterator", it, m.objs.Snapshot, "task"); err != nil {
		it.Close()
		return nil, err
	}
	return it, nil
}

// passIter is the iterator mi's process is walked with this pass: its
// thread walk, or per visit while a walk of it overflowed lately, and for
// a pass that lists every thread (all), which a large process's would.
func (m *Tracker) passIter(mi *memberIt, all bool) (*link.Iter, bool, error) {
	if mi.threads == nil || mi.overflowLeft > 0 || all {
		if mi.overflowLeft > 0 && !all {
			mi.overflowLeft--
		}
		if mi.it == nil {
			it, err := m.visitLink(mi.pid)
			if err != nil {
				return nil, false, err
			}
			mi.it = it
		}
		return mi.it, false, nil
	}
	return mi.threads, true, nil
}

// walkLink is the iterator mi's process was last walked with.
func (mi *memberIt) walkLink() *link.Iter {
	if mi.threads != nil && mi.overflowLeft == 0 {
		return mi.threads
	}
	return mi.it
}

// overflowed reports whether err is a thread walk's read that did not fit
// the kernel's buffer.
func overflowed(err error) bool { return errors.Is(err, unix.E2BIG) }
