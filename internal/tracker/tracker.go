// Package tracker loads stallmon's BPF tracker for one process and answers,
// on demand, which of its threads are inside which syscall and since when.
// It is the only package that touches the generated code in gen/.
package tracker

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/stallmon/stallmon/internal/tracker/gen"
	"github.com/stallmon/stallmon/internal/waitsite"
)

// Tracker is an attached tracker for one process. Its methods may be
// called from one goroutine at a time, except Done and Close.
type Tracker struct {
	log   *slog.Logger
	scope scope
	objs  gen.StallmonObjects
	// regsOffset is the minimal object's measure of where saved
	// registers lie (bpf/regs.h); nil for the full object.
	regsOffset *ebpf.Variable
	links      []link.Link
	// walkers are the task iterators a poll runs (walkers.go); iterBuf
	// is their reads' buffer.
	walkers      walkers
	guard        linkGuard // what links and iterators must still run
	iterBuf      []byte
	partialWalks atomic.Uint64
	// threadWalk: each process is walked by its thread walk where it
	// fits (threads.go); walkOverflows counts those that did not.
	threadWalk    bool
	threadLoaded  bool
	walkOverflows atomic.Uint64
	// data are the object's global variables' maps, which the thread
	// walk's own load shares (threads.go).
	data dataMaps

	preAttach map[int]preAttach // tid -> syscall already in flight at attach
	stale     map[int]staleWord // tid -> in-flight word the registers belie
	// workerFlags are the task flags that mark a thread the kernel made.
	workerFlags uint32
	staleWords  atomic.Uint64
	opts        Options
	// quietPass tags the kernel side's counts of the latest pass.
	quietPass uint64
	quietBuf  [quietNR]gen.StallmonQuietCount
	// syms reads the wait sites; nil when the kernel's symbols could
	// not be read, which makes every wait unknown.
	syms *waitsite.Symbols
	// waits caches what each stack read as: its Frames are shared by
	// every thread it was read for, and never changed.
	waits map[[len(gen.StallmonWaitSite{}.Ips)]uint64]waitsite.Wait

	done chan struct{}
	// waitErr is why the wait for the target's exit ended without one,
	// set once by watchExit: from then on an exit would go unseen.
	waitErr  atomic.Pointer[error]
	closeMu  sync.Mutex
	isClosed bool
}

// Attach loads the BPF programs filtered on s and attaches them. On any
// error nothing stays loaded or attached.
func Attach(s Scope, log *slog.Logger, opts Options) (*Tracker, error) {
	if s.open == nil {
		return nil, errors.New("attaching: no scope (make one with Process, Tree, Cgroup or EmptyCgroup)")
	}
	sc, err := s.open()
	if err != nil {
		return nil, err
	}
	return attachScope(sc, log, opts)
}

// Started tells a tracker of an EmptyCgroup that the service was
// started (or failed to start): from now on an empty cgroup means it is
// gone. It does nothing for other trackers.
func (m *Tracker) Started() {
	if cg, ok := m.scope.(*cgroupScope); ok {
		cg.arm()
	}
}

func attachScope(sc scope, log *slog.Logger, opts Options) (_ *Tracker, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Tracker{log: log, scope: sc, preAttach: map[int]preAttach{}, stale: map[int]staleWord{}, opts: opts, done: make(chan struct{})}
	m.waits = map[[len(gen.StallmonWaitSite{}.Ips)]uint64]waitsite.Wait{}
	defer func() {
		if err != nil {
			m.closeObjects()
			sc.close()
		}
	}()

	if err := CheckAccess(); err != nil {
		return nil, err
	}
	// Before loading and probing: where the kernel charges BPF memory
	// to RLIMIT_MEMLOCK, loads would fail on the operator's limit and
	// read as features missing.
	if _, err := LiftMemlock(); err != nil {
		return nil, err
	}
	m.workerFlags = pfIOWorker
	if hasUserWorker() {
		m.workerFlags |= pfUserWorker
	}
	m.loadSymbols()
	// load probes only when the full object fails (objects.go).
	if err := m.load(); err != nil {
		return nil, err
	}
	if err := m.attach(); err != nil {
		return nil, explainLoadFailure(err)
	}
	go m.watchExit()
	return m, nil
}

func (m *Tracker) attach() error {
	// Raw tracepoint links cannot be detached through BPF_LINK_DETACH
	// (EOPNOTSUPP): while these fds are open, no one can silently unhook
	// the tracker and leave snapshots that look idle.
	//
	// The exit side goes first: were sys_enter attached first, a syscall
	// entered in between and returned before sys_exit was attached would
	// leave its word set for good, and its thread, computing in user
	// space, would look stuck in it.
	type tracepoint struct {
		name string
		prog *ebpf.Program
	}
	var tps []tracepoint
	switch m.scope.(type) {
	case *treeScope:
		// Before anything else, and before seed walks /proc for the
		// descendants: a fork in between is seen by one or the other.
		tps = append(tps, tracepoint{"sched_process_fork", m.objs.MemberFork})
	case *cgroupScope:
		// Before the walk of the host that finds the processes there
		// at attach: one that joins in between is seen by one or the
		// other.
		tps = append(tps, tracepoint{"sched_process_fork", m.objs.MemberFork},
			tracepoint{"cgroup_attach_task", m.objs.MemberMove})
	}
	if m.opts.Kind.sampled() {
		// Thread exits only: exit statuses and deaths inside a syscall.
		tps = append(tps, tracepoint{"sched_process_exit", m.objs.ThreadExit})
	} else {
		tps = append(tps, tracepoint{"sys_exit", m.objs.SysExit}, tracepoint{"sched_process_exit", m.objs.ThreadExit},
			tracepoint{"sys_enter", m.objs.SysEnter})
		if m.Object() == ObjectMinimal {
			// Its records are keyed by tid: see thread_exec.
			tps = append(tps, tracepoint{"sched_process_exec", m.objs.ThreadExec})
		}
	}
	for _, tp := range tps {
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp.name, Program: tp.prog})
		if err != nil {
			return fmt.Errorf("attaching raw tracepoint %s: %w", tp.name, err)
		}
		m.links = append(m.links, l)
		if err := m.guard.watch("raw tracepoint "+tp.name, l, tp.prog, tp.name); err != nil {
			return err
		}
	}
	if err := m.regsCalibrated(); err != nil {
		return err
	}
	filter, err := probeIterFilter(m.objs.Snapshot)
	if err != nil {
		return fmt.Errorf("probing the task iterator's filter: %w", err)
	}
	m.walkers = walkers{filter: filter, byPID: map[int]*memberIt{}}
	m.threadWalk = filter && m.threadLoaded && !m.opts.NoThreadWalk
	if err := m.scope.seed(&m.objs); err != nil {
		return err
	}
	if _, cg := m.scope.(*cgroupScope); cg && filter {
		if err := m.seedFromHost(); err != nil {
			return err
		}
	}
	// The first pass's iterators now, so that one that cannot be made
	// fails the attach rather than the first poll.
	if _, _, err := m.passIters(); err != nil {
		return err
	}
	return nil
}

// PID returns the monitored process id.
// It is 0 when the tracker watches a cgroup.
func (m *Tracker) PID() int { return m.scope.leader() }

// Done is closed when the target process has exited.
func (m *Tracker) Done() <-chan struct{} { return m.done }

// watchExit closes done only when the target really exited: Close ends
// the wait with an error, and that must not look like an exit.
func (m *Tracker) watchExit() {
	if err := m.scope.wait(); err != nil {
		m.waitErr.Store(&err)
		return
	}
	close(m.done)
}

// Close detaches and unloads everything. It is safe to call more than once.
func (m *Tracker) Close() error {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.isClosed {
		return nil
	}
	m.isClosed = true
	err := m.closeObjects()
	// Closing the pidfd ends watchExit's wait.
	if cerr := m.scope.close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing the target: %w", cerr)
	}
	return err
}

func (m *Tracker) closeObjects() error {
	var errs []error
	errs = append(errs, m.walkers.close())
	for _, l := range m.links {
		errs = append(errs, l.Close())
	}
	errs = append(errs, m.objs.Close(), m.data.close())
	return errors.Join(errs...)
}
