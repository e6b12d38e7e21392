package tracker

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf/link"

	"github.com/stallmon/stallmon/internal/bpfiter"
	"github.com/stallmon/stallmon/internal/event"
)

// errHostWalk is a scope that cannot list its processes now: the poll
// walks every task of the host instead.
var errHostWalk = errors.New("the scope cannot list its processes")

// How a poll reaches the scope's threads. Where the kernel filters task
// iterators by pid (6.1+), each process of the scope has its own
// iterator, and a pass walks those processes' thread lists alone: its
// cost is the scope's threads, whatever else runs on the host. A tree
// lists its processes from its bitmap, a cgroup from the cgroup.procs
// files of its subtree (see processes). Without the filter, or for a
// scope that cannot list its processes (a threaded cgroup), one iterator
// walks every task of the host and the program keeps the scope's.
//
// A listing can miss a process that still has threads in the scope:
// cgroup.procs leaves out a process whose leader is past cgroup_exit once
// none of its threads is live, though its last thread may still hang in
// exit_files (a FUSE or NFS flush), and a process moved between two
// cgroups of the subtree while they are read is in neither. So a process
// once walked is walked until a walk finds no thread of the scope in it
// (walk_last stays WALK_NONE), listed or not; and a cgroup's first pass
// walks the host once to find the processes no listing names.
type walkers struct {
	filter bool              // the kernel filters task iterators by pid
	byPID  map[int]*memberIt // the scope's processes' iterators
	host   *memberIt         // over every task, made on first need
	warned bool              // the host walk was reported
	pids   []int             // the latest listing, reused
	pass   []*memberIt       // the latest pass's iterators, reused
	gen    uint64
}

type memberIt struct {
	// it walks the process per visit: made on first need where the
	// thread walk serves it (threads.go).
	it *link.Iter
	// threads is its thread walk; nil where the kernel has none.
	threads *link.Iter
	// overflowLeft counts the passes left that walk it per visit
	// since its thread walk overflowed.
	overflowLeft int
	pid          int    // the process it walks; 0 for every task of the host
	listed       uint64 // the listing that last named the process
	// held: the process's latest walk visited a thread of the scope, so
	// it is walked again whether or not a listing names it.
	held bool
}

// passIters returns the iterators the coming pass runs, and whether they
// are filtered (each walks one process's thread list, which can stop
// early, and tells whether it held a thread of the scope: see walk.go).
func (m *Tracker) passIters() ([]*memberIt, bool, error) {
	w := &m.walkers
	if !w.filter {
		it, err := m.hostIter("task iterator without a per-process filter (Linux < 6.1): every poll walks every task of the host")
		return []*memberIt{it}, false, err
	}
	pids, err := m.scope.processes(w.pids[:0])
	if err == nil && slices.Contains(pids, 0) {
		// A process of another pid namespace shows as 0; a filter on
		// pid 0 walks every task. stallmon refuses to run outside the
		// host's namespace, but the listing is the kernel's word.
		err = fmt.Errorf("%w: a process of the scope has no pid in stallmon's namespace", errHostWalk)
	}
	if errors.Is(err, errHostWalk) {
		if cerr := w.closeMembers(&m.guard); cerr != nil {
			return nil, false, cerr
		}
		it, herr := m.hostIter(err.Error())
		return []*memberIt{it}, false, herr
	}
	if err != nil {
		return nil, false, err
	}
	w.pids = pids
	w.gen++
	for _, pid := range pids {
		mi, err := m.member(pid)
		if err != nil {
			return nil, false, err
		}
		mi.listed = w.gen
	}
	m.scope.admitted()
	w.pass = w.pass[:0]
	for pid, mi := range w.byPID {
		if mi.listed == w.gen || mi.held {
			w.pass = append(w.pass, mi)
			continue
		}
		delete(w.byPID, pid)
		if err := mi.close(&m.guard); err != nil {
			return nil, false, fmt.Errorf("closing the task iterators of process %d: %w", pid, err)
		}
	}
	slices.SortFunc(w.pass, func(a, b *memberIt) int { return a.pid - b.pid })
	return w.pass, true, nil
}

// member returns the iterator of process pid, made if it has none.
func (m *Tracker) member(pid int) (*memberIt, error) {
	w := &m.walkers
	if mi := w.byPID[pid]; mi != nil {
		return mi, nil
	}
	mi := &memberIt{pid: pid}
	var err error
	if m.threadWalk {
		mi.threads, err = m.threadLink(pid)
	} else {
		mi.it, err = m.visitLink(pid)
	}
	if err != nil {
		return nil, err
	}
	w.byPID[pid] = mi
	return mi, nil
}

// close lets mi's iterators go.
func (mi *memberIt) close(g *linkGuard) error {
	var errs []error
	for _, it := range []*link.Iter{mi.it, mi.threads} {
		if it != nil {
			g.forget(it)
			errs = append(errs, it.Close())
		}
	}
	return errors.Join(errs...)
}

// seedFromHost walks every task once and enters each process with a
// thread in the scope: those a cgroup's listing leaves out (see walkers)
// are found at attach too. The pass is judged by nobody; its iterator is
// checked like the others before it is let go.
func (m *Tracker) seedFromHost() error {
	it, err := bpfiter.Link(m.objs.Snapshot, 0, false)
	if err != nil {
		return fmt.Errorf("attaching the task iterator: %w", err)
	}
	defer it.Close()
	if err := m.guard.watch("task iterator", it, m.objs.Snapshot, "task"); err != nil {
		return err
	}
	defer m.guard.forget(it)
	if err := m.startPass(true); err != nil {
		return err
	}
	raw, err := readIter(it, nil)
	if err != nil {
		return err
	}
	if err := m.guard.verify(it); err != nil {
		return err
	}
	for _, rec := range records(raw[:len(raw)/recSize*recSize]) {
		mi, err := m.member(int(rec.Tgid))
		if err != nil {
			return err
		}
		mi.held = true
	}
	return nil
}

// hostIter is the iterator over every task of the host, made and
// reported on first need.
func (m *Tracker) hostIter(why string) (*memberIt, error) {
	w := &m.walkers
	if w.host == nil {
		it, err := bpfiter.Link(m.objs.Snapshot, 0, false)
		if err != nil {
			return nil, fmt.Errorf("attaching the task iterator: %w", err)
		}
		if err := m.guard.watch("task iterator", it, m.objs.Snapshot, "task"); err != nil {
			it.Close()
			return nil, err
		}
		w.host = &memberIt{it: it}
	}
	if !w.warned {
		w.warned = true
		m.log.Warn(event.IteratorUnfiltered, "detail", why)
	}
	return w.host, nil
}

// closeMembers lets every process's iterator go.
func (w *walkers) closeMembers(g *linkGuard) error {
	var errs []error
	for pid, mi := range w.byPID {
		errs = append(errs, mi.close(g))
		delete(w.byPID, pid)
	}
	return errors.Join(errs...)
}

// close lets every iterator go.
func (w *walkers) close() error {
	errs := []error{w.closeMembers(&linkGuard{})}
	if w.host != nil {
		errs = append(errs, w.host.it.Close())
		w.host = nil
	}
	return errors.Join(errs...)
}
