package tracker

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf/link"

	"github.com/stallmon/stallmon/internal/event"
)

// errHostWalk is a scope that cannot list its processes now: the poll
// walks every task of the host instead.
var errHostWalk = errors.New("the scope cannot list its processes")

// How a poll reaches the scope's threads. Where the kernel filters task
// iterators by pid (6.1+), each process of the scope has its own
// iterator, made when the process is first listed and let go when it is
// listed no more, and a pass walks those processes' thread lists alone:
// its cost is the scope's threads, whatever else runs on the host. A tree
// lists its processes from its bitmap, a cgroup from the cgroup.procs
// files of its subtree (see processes). Without the filter, or for a
// scope that cannot list its processes (a threaded cgroup), one iterator
// walks every task of the host and the program keeps the scope's.
type walkers struct {
	filter bool              // the kernel filters task iterators by pid
	byPID  map[int]*memberIt // the scope's processes' iterators
	host   *link.Iter        // over every task, made on first need
	warned bool              // the host walk was reported
	pids   []int             // the latest listing, reused
	pass   []*link.Iter      // the latest pass's iterators, reused
	gen    uint64
}

type memberIt struct {
	it   *link.Iter
	seen uint64 // the listing that last named the process
}

// passIters returns the iterators the coming pass runs, and whether they
// are filtered (each walks one process's thread list, which can stop
// early: see walk.go).
func (m *Tracker) passIters() ([]*link.Iter, bool, error) {
	w := &m.walkers
	if !w.filter {
		it, err := m.hostIter("task iterator without a per-process filter (Linux < 6.1): every poll walks every task of the host")
		return []*link.Iter{it}, false, err
	}
	pids, err := m.scope.processes(w.pids[:0])
	if errors.Is(err, errHostWalk) {
		it, herr := m.hostIter(err.Error())
		return []*link.Iter{it}, false, herr
	}
	if err != nil {
		return nil, false, err
	}
	slices.Sort(pids)
	pids = slices.Compact(pids)
	w.pids = pids
	w.gen++
	w.pass = w.pass[:0]
	for _, pid := range pids {
		mi := w.byPID[pid]
		if mi == nil {
			it, err := linkTaskIter(m.objs.Snapshot, pid, true)
			if err != nil {
				return nil, false, fmt.Errorf("attaching the task iterator of process %d: %w", pid, err)
			}
			if err := m.guard.watch("task iterator", it, m.objs.Snapshot, "task"); err != nil {
				it.Close()
				return nil, false, err
			}
			mi = &memberIt{it: it}
			w.byPID[pid] = mi
		}
		mi.seen = w.gen
		w.pass = append(w.pass, mi.it)
	}
	for pid, mi := range w.byPID {
		if mi.seen != w.gen {
			m.guard.forget(mi.it)
			delete(w.byPID, pid)
			if err := mi.it.Close(); err != nil {
				return nil, false, fmt.Errorf("closing the task iterator of process %d: %w", pid, err)
			}
		}
	}
	return w.pass, true, nil
}

// hostIter is the iterator over every task of the host, made and
// reported on first need.
func (m *Tracker) hostIter(why string) (*link.Iter, error) {
	w := &m.walkers
	if w.host == nil {
		it, err := linkTaskIter(m.objs.Snapshot, 0, false)
		if err != nil {
			return nil, fmt.Errorf("attaching the task iterator: %w", err)
		}
		if err := m.guard.watch("task iterator", it, m.objs.Snapshot, "task"); err != nil {
			it.Close()
			return nil, err
		}
		w.host = it
	}
	if !w.warned {
		w.warned = true
		m.log.Warn(event.IteratorUnfiltered, "detail", why)
	}
	return w.host, nil
}

// close lets every iterator go.
func (w *walkers) close() error {
	var errs []error
	for pid, mi := range w.byPID {
		errs = append(errs, mi.it.Close())
		delete(w.byPID, pid)
	}
	if w.host != nil {
		errs = append(errs, w.host.Close())
		w.host = nil
	}
	return errors.Join(errs...)
}
