package tracker

import (
	"bytes"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/tracker/gen"
	"github.com/stallmon/stallmon/internal/waitsite"
)

// Snapshot is the state of every thread of the target at one instant.
type Snapshot struct {
	PID     int       // the target process; 0 for a cgroup, see Thread.PID
	Taken   time.Time // wall clock, for reports
	Threads []Thread  // sorted by TID
	// Deaths are the threads that died inside a syscall since attach (the
	// latest DeathRing), oldest first; DeathsTotal counts them all. Either
	// being non-empty means the kernel killed a thread of the target
	// mid-call.
	Deaths      []Death
	DeathsTotal uint64
	// Quiet counts the threads left out as waiting by design (see
	// Options.Quiet); QuietInFlight says in which native syscalls.
	Quiet         int
	QuietInFlight []QuietSyscall
	// UnrecordedUnmarked counts syscall entries the tracker could not
	// record and could not pin on a thread either (see Unrecorded): any
	// means some thread of the target is unknown, and none can say which.
	UnrecordedUnmarked uint64
}

// Seen is how many threads the snapshot saw, left out or not.
func (s Snapshot) Seen() int { return len(s.Threads) + s.Quiet }

// Thread is one thread of the target.
type Thread struct {
	PID   int // its process: the target, or one process of its cgroup
	TID   int
	Comm  string
	State TaskState
	// Switches counts the thread's context switches: unchanged between
	// two snapshots, it has not run in between. Voluntary counts those it
	// made by sleeping: unchanged, it has not slept in between.
	Switches, Voluntary uint64
	// Kernel marks a thread the kernel made inside the process (io_uring's
	// iou-sqp and iou-wrk workers, PF_IO_WORKER or PF_USER_WORKER): it
	// makes no syscalls of its own and its saved registers are a copy of
	// its creator's, so it is never shown in a syscall; only its state
	// says what it does.
	Kernel bool
	// Zombie marks a thread that has exited and waits to be reaped (an
	// exited group leader waits for the other threads).
	Zombie bool
	// Process-wide conditions, seen from this thread.
	Frozen      bool // cgroup freezer (v1 or v2) or system suspend
	Exiting     bool // the process is exiting (group exit)
	DumpingCore bool // a core dump is in progress

	// InSyscall is false when the thread is in user space; Nr is then -1.
	InSyscall bool
	Nr        int
	ABI       ABI
	// Syscall is the name the thread is judged by: the native name, also
	// for a 32-bit call that has its own number or spelling.
	Syscall string
	// Args are the syscall's arguments from the thread's saved registers.
	Args [6]uint64
	// FD is the syscall's first file descriptor argument, else -1; FDs
	// are all of them (at most two), classified by the kernel.
	FD  int
	FDs []FD
	// Elapsed is how long the syscall has run.
	Elapsed time.Duration
	// Entered identifies this syscall instance: the kernel's monotonic
	// entry time in ns (for SinceAttach, when it was first seen).
	Entered uint64
	// SinceAttach marks a syscall the tracker did not see enter (it was in
	// flight when the tracker attached, or its entry was missed): its
	// entry time is unknown and Elapsed counts from the first snapshot
	// that saw it, a lower bound.
	SinceAttach bool
	// HeldBeforeEntry marks a syscall the thread sleeps in without the
	// tracker having seen it enter, although it tracks the thread: its
	// registers show it in flight, held before the sys_enter tracepoint
	// (by a seccomp user-notification supervisor; or the tracepoint
	// missed its entry). Elapsed counts from the first snapshot that saw
	// it, a lower bound.
	HeldBeforeEntry bool
	// Tracked is true once the thread has entered a syscall since attach
	// and so owns a kernel-side entry.
	Tracked bool
	// Unrecorded is set while the thread is unknown to the tracker.
	Unrecorded *Unrecorded
	// VforkChild is the child the thread waits for in vfork, clone or
	// clone3, if any (see VforkChild).
	VforkChild *VforkChild
	// Wait is where the thread sleeps in the kernel, read from its stack
	// when it was asleep off a CPU (Class None otherwise).
	Wait waitsite.Wait
}

// FD is a file descriptor argument, classified in the kernel from its
// inode: nothing looked it up by path or waited on its file system.
type FD struct {
	Num   int
	Kind  fdkind.Kind
	Magic uint64 // super block magic of the file's file system
}

// FS names the file system the fd's file lives on ("nfs", "fuse"...), or
// its magic number in hex.
func (f FD) FS() string { return fdkind.FSName(f.Magic) }

// InFlight returns the threads that are inside a syscall.
func (s Snapshot) InFlight() []Thread {
	var out []Thread
	for _, t := range s.Threads {
		if t.InSyscall {
			out = append(out, t)
		}
	}
	return out
}

// Thread returns the thread with the given tid.
func (s Snapshot) Thread(tid int) (Thread, bool) {
	i, ok := slices.BinarySearchFunc(s.Threads, tid, func(t Thread, tid int) int { return t.TID - tid })
	if !ok {
		return Thread{}, false
	}
	return s.Threads[i], true
}

// Word layout, generated from enum word in bpf/word.h. Used as shift
// counts, so their type does not spread: nrMask stays untyped.
const (
	nrBits    = gen.StallmonWordNR_BITS
	nrMask    = 1<<nrBits - 1
	abiBits   = gen.StallmonWordABI_BITS
	abiShift  = gen.StallmonWordABI_SHIFT
	tsBitsOff = gen.StallmonWordTS_BITS_SHIFT
	tsShift   = gen.StallmonWordTS_SHIFT
)

// unpackWord splits an in-flight word into syscall number, ABI and entry
// time (kernel monotonic ns).
func unpackWord(w uint64) (nr int, abi ABI, entered uint64) {
	return int(w & nrMask), ABI(w >> abiShift & (1<<abiBits - 1)), (w >> tsBitsOff) << tsShift
}

// recSize is the record's size in the iterator's output. bpf2go's mirror
// has the C layout (structs.HostLayout, explicit padding), so the bytes
// are copied into records as they are: reflection (binary.Decode) cost
// more than the kernel's whole pass.
const recSize = int(unsafe.Sizeof(gen.StallmonThreadRec{}))

// records copies raw, a whole number of records, into aligned records.
func records(raw []byte) []gen.StallmonThreadRec {
	recs := make([]gen.StallmonThreadRec, len(raw)/recSize)
	if len(recs) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&recs[0])), len(raw)), raw)
	}
	return recs
}

// Snapshot runs the task iterator once and decodes what it wrote. With
// Options.Quiet, the threads it calls quiet are only counted.
func (m *Tracker) Snapshot() (Snapshot, error) { return m.snapshot(false) }

// SnapshotAll is Snapshot with every thread listed, quiet or not.
func (m *Tracker) SnapshotAll() (Snapshot, error) { return m.snapshot(true) }

func (m *Tracker) snapshot(all bool) (Snapshot, error) {
	// Close may come from another goroutine: without the hold, the pass
	// could read an fd that Close released and the kernel gave to
	// something else.
	unlock, err := m.holdOpen()
	if err != nil {
		return Snapshot{}, err
	}
	defer unlock()
	// A snapshot vouches for a target whose exit would be seen: once the
	// wait for it failed, none does (the agent goes blind, not alive).
	if werr := m.waitErr.Load(); werr != nil {
		return Snapshot{}, fmt.Errorf("watching the target's exit: %w", *werr)
	}
	m.scope.refresh()
	raw, taken, err := m.walk(all)
	if err != nil {
		return Snapshot{}, err
	}
	if len(raw)%recSize != 0 {
		return Snapshot{}, fmt.Errorf("task iterator wrote %d bytes, not a multiple of %d", len(raw), recSize)
	}
	snap := Snapshot{PID: m.scope.leader(), Taken: taken, Threads: make([]Thread, 0, len(raw)/recSize)}
	seen := make(map[int]bool, len(raw)/recSize)
	for _, rec := range records(raw) {
		t := m.decode(rec, taken)
		seen[t.TID] = true
		snap.Threads = append(snap.Threads, t)
	}
	for tid := range m.preAttach {
		if !seen[tid] {
			delete(m.preAttach, tid)
		}
	}
	for tid, s := range m.stale {
		if !s.seen {
			delete(m.stale, tid)
			continue
		}
		s.seen = false
		m.stale[tid] = s
	}
	slices.SortFunc(snap.Threads, func(a, b Thread) int { return a.TID - b.TID })
	if err := m.vforkChildren(&snap); err != nil {
		return Snapshot{}, err
	}
	// Read after the iterator: a thread that died since it ran is seen
	// here, and one that died before is absent from Threads, so no dying
	// thread slips between the two reads.
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return Snapshot{}, fmt.Errorf("reading monotonic clock: %w", err)
	}
	if snap.Deaths, snap.DeathsTotal, err = m.deaths(uint64(ts.Nano())); err != nil {
		return Snapshot{}, err
	}
	if err := m.quietCounts(&snap, uint64(ts.Nano())); err != nil {
		return Snapshot{}, err
	}
	if snap.UnrecordedUnmarked, err = m.unrecordedUnmarked(); err != nil {
		return Snapshot{}, err
	}
	return snap, nil
}

// Task flags and signal flags the snapshot reads (include/linux/sched.h,
// include/linux/sched/signal.h), generated from bpf/taskstate.h, which
// keeps stallmon's one copy of the kernel's bits.
const (
	pfIOWorker      = uint32(gen.StallmonTaskFlagBitsPF_IO_WORKER)
	pfUserWorker    = uint32(gen.StallmonTaskFlagBitsPF_USER_WORKER) // 6.4+, see hasUserWorker
	pfFrozen        = uint32(gen.StallmonTaskFlagBitsPF_FROZEN_OLD)  // before 6.1; later kernels set TASK_FROZEN
	signalGroupExit = uint32(gen.StallmonSignalFlagBitsSIGNAL_GROUP_EXIT)
)

func (m *Tracker) decode(rec gen.StallmonThreadRec, taken time.Time) Thread {
	t := Thread{
		PID:         int(rec.Tgid),
		TID:         int(rec.Tid),
		Comm:        cString(rec.Comm[:]),
		State:       decodeState(rec.State, rec.OnCpu != 0),
		Switches:    rec.Switches,
		Voluntary:   rec.Voluntary,
		Kernel:      rec.Flags&m.workerFlags != 0,
		Zombie:      rec.ExitState != 0,
		Exiting:     rec.SignalFlags&signalGroupExit != 0,
		DumpingCore: rec.CoreDump != 0,
		Nr:          -1,
		FD:          -1,
		Tracked:     rec.HasStorage != 0,
		Wait:        m.decodeWait(rec.Wait),
	}
	// cgroup v2 marks a task frozen also while it waits for a vfork child
	// or sits in a job-control or ptrace stop, for its own accounting:
	// only the freezer's trap, an interruptible sleep, is a freeze.
	t.Frozen = t.State == StateFrozen || rec.Flags&pfFrozen != 0 ||
		(rec.CgroupFrozen != 0 && t.State == StateInterruptible)
	markUnrecorded(&t, &rec)
	regsIn := rec.RegsNr >= 0
	regsNr, regsABI := int(rec.RegsNr), ABI(rec.RegsAbi)
	switch {
	case t.Kernel || t.Zombie:
		delete(m.preAttach, t.TID)
	case rec.Word != 0:
		nr, abi, start := unpackWord(rec.Word)
		if !regsIn || nr != regsNr&nrMask || abi != regsABI {
			// The registers say the thread is not in that syscall: its
			// exit was missed (a syscall that returned while the
			// tracker attached, a recursion miss). Never judge it.
			m.noteStale(t.TID, rec.Word)
			// A thread asleep is in the kernel, in the syscall its
			// registers name (its entry was missed too).
			if regsIn && t.State.Asleep() {
				m.fillUntracked(&t, rec, taken, false)
			}
			break
		}
		delete(m.preAttach, t.TID)
		t.InSyscall, t.Nr, t.ABI, t.Entered = true, nr, abi, start
		if rec.Now > start {
			t.Elapsed = time.Duration(rec.Now - start)
		}
	case regsIn && !t.Tracked:
		// No syscall entered since attach, yet the registers hold one:
		// it was in flight before. A tracked thread's word is the truth,
		// sys_enter being attached, but for the case below: its
		// registers may hold one a tracer stopped at the entry of.
		m.fillUntracked(&t, rec, taken, false)
	case regsIn && t.State.Asleep() && !t.Frozen:
		// Tracked, no word, asleep in a syscall the registers say has
		// not returned (the kernel side drops those that did): it waits
		// before sys_enter, where seccomp's user notification holds it.
		m.fillUntracked(&t, rec, taken, true)
		t.SinceAttach, t.HeldBeforeEntry = false, true
	default:
		delete(m.preAttach, t.TID)
	}
	if t.InSyscall {
		t.Args = rec.Args
		t.Syscall, _ = t.ABI.name(t.Nr, t.Args)
		for _, c := range rec.Fds {
			if c.Fd < 0 {
				continue
			}
			fd := FD{Num: int(c.Fd), Kind: fdkind.Kind(c.Kind), Magic: c.Magic}
			if t.Syscall == "close" && fd.Kind == fdkind.None && rec.Closing.Fd == c.Fd {
				fd.Kind, fd.Magic = fdkind.Kind(rec.Closing.Kind), rec.Closing.Magic
			}
			t.FDs = append(t.FDs, fd)
		}
		if len(t.FDs) > 0 {
			t.FD = t.FDs[0].Num
		}
	}
	return t
}

// staleWord is an in-flight word its thread's registers belied.
type staleWord struct {
	word    uint64
	counted bool
	seen    bool // in the latest snapshot
}

// noteStale counts an in-flight word that the thread's registers belie,
// once per word, when two snapshots in a row saw it: a thread caught
// between its return value and sys_exit shows one such mismatch, and is
// not a missed exit.
func (m *Tracker) noteStale(tid int, word uint64) {
	s, ok := m.stale[tid]
	if ok && s.word == word {
		if !s.counted {
			m.staleWords.Add(1)
			s.counted = true
		}
	} else {
		s = staleWord{word: word}
	}
	s.seen = true
	m.stale[tid] = s
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}
