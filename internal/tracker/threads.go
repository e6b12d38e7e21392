package tracker

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/bpfiter"
	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// The thread walk: where the kernel has Linux 6.7's open-coded task
// iterator and 6.8's trusted arguments of BPF functions, each process of
// the scope is walked by one visit of its leader (bpf: snapshot_threads)
// that reads the thread list itself, instead of the iterator's walk,
// which looks every thread up by pid and enters the program once per
// thread. At 10,000 threads the per-visit walk costs about 1 us a thread
// with cold caches, mostly misses on each thread's pid; the thread walk,
// with quiet threads that have not run left out on a copy of their
// registers (bpf/regsseen.h), a poll of 3 to 5 ms (docs/benchmarks.md,
// the poll rows since the thread walk).
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

// takeThreadWalk returns the thread walk's program and leaves in spec a
// stub that writes nothing: the object then loads on every kernel, and
// the thread walk is loaded on its own after it (loadThreadWalk), so
// that a kernel that refuses it costs one program's verification, not a
// second load of the object.
func takeThreadWalk(spec *ebpf.CollectionSpec) (*ebpf.ProgramSpec, error) {
	p := spec.Programs[threadsProg]
	if p == nil {
		return nil, fmt.Errorf("the tracker's object has no program %s", threadsProg)
	}
	real := p.Copy()
	p.Instructions = asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	return real, nil
}

// dataMaps are the maps behind the object's global variables, which the
// generated objects do not hold.
type dataMaps struct {
	Bss    *ebpf.Map `ebpf:".bss"`
	Rodata *ebpf.Map `ebpf:".rodata"`
}

func (d dataMaps) close() error {
	var errs []error
	for _, m := range []*ebpf.Map{d.Bss, d.Rodata} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

// loadedObjects is what the object's load assigns.
type loadedObjects struct {
	gen.StallmonObjects
	dataMaps
}

// loadThreadWalk loads the thread walk on the maps of the loaded object
// and puts it in the stub's place. A kernel that refuses it (before 6.8)
// is told in the log, once per attach, and walked per visit.
func (m *Tracker) loadThreadWalk(spec *ebpf.CollectionSpec, threads *ebpf.ProgramSpec) error {
	shared := map[string]*ebpf.Map{".bss": m.data.Bss, ".rodata": m.data.Rodata}
	mv := reflect.ValueOf(m.objs.StallmonMaps)
	for i := range mv.NumField() {
		if name := mv.Type().Field(i).Tag.Get("ebpf"); name != "" {
			shared[name] = mv.Field(i).Interface().(*ebpf.Map)
		}
	}
	for name := range spec.Maps {
		if shared[name] == nil {
			return fmt.Errorf("the thread walk's load: the object's map %s was not loaded", name)
		}
	}
	tspec := &ebpf.CollectionSpec{Maps: spec.Maps, Programs: map[string]*ebpf.ProgramSpec{threadsProg: threads}, Types: spec.Types}
	var loaded struct {
		Prog *ebpf.Program `ebpf:"snapshot_threads"`
	}
	if err := tspec.LoadAndAssign(&loaded, &ebpf.CollectionOptions{MapReplacements: shared}); err != nil {
		m.log.Info(event.ThreadWalkUnavailable, "err", firstLine(err))
		return nil
	}
	if err := m.objs.SnapshotThreads.Close(); err != nil {
		loaded.Prog.Close()
		return fmt.Errorf("closing the thread walk's stub: %w", err)
	}
	m.objs.SnapshotThreads = loaded.Prog
	m.threadLoaded = true
	return nil
}

// firstLine is the head of a load error, whose verifier log runs to
// thousands of lines.
func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// threadLink is the thread walk's iterator of process pid: one visit, of
// its leader.
func (m *Tracker) threadLink(pid int) (*link.Iter, error) {
	it, err := bpfiter.LinkTask(m.objs.SnapshotThreads, pid)
	if err != nil {
		return nil, fmt.Errorf("attaching the thread walk of process %d: %w", pid, err)
	}
	if err := m.guard.watch("task iterator", it, m.objs.SnapshotThreads, "task"); err != nil {
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
