package tracker

import (
	"fmt"

	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// Counters are the tracker's kernel-side counters, summed over CPUs.
type Counters struct {
	Enter           uint64 // syscalls entered by the target
	StorageCreated  uint64 // per-thread entries created
	StorageFailed   uint64 // entries that could not be created
	ExitNoEntry     uint64 // sys_exit without a recorded entry (new threads, pre-attach syscalls)
	StorageReleased uint64 // entries released at thread exit
	NrTooLarge      uint64 // syscall numbers that did not fit the record
	// EntryOverwritten counts sys_enters that found the previous syscall
	// still recorded: its exit was missed.
	EntryOverwritten uint64
	// StaleWords counts in-flight records that a snapshot found belied by
	// the thread's saved registers (a missed exit), and did not judge.
	StaleWords uint64
	// PartialWalks counts passes of the task iterator that stopped before
	// the end of the target's thread list (a thread exited under them):
	// each was taken again, never judged (see ErrPartialWalk).
	PartialWalks uint64
	// TasksVisited counts the tasks the task iterator handed the snapshot
	// program, the scope's or not: per poll, the scope's threads where
	// each of its processes is walked alone (walkers.go), every task of
	// the host where it cannot be.
	TasksVisited uint64
	// ThreadWalk says the scope's processes are each walked in one
	// visit of their leader (threads.go); WalkOverflows counts the
	// walks of one process whose output did not fit the kernel's
	// buffer, taken again per visit.
	ThreadWalk    bool
	WalkOverflows uint64
	// RegsReused counts threads the thread walk left out as quiet on a
	// copy of their saved registers, made while they slept and still
	// theirs: they had not run since (bpf/regsseen.h).
	RegsReused uint64
	// DiedInSyscall counts threads the kernel killed inside a syscall
	// (see Death): any of them means the kernel oopsed on the target.
	DiedInSyscall uint64
	// UnrecordedThreads is how many threads are unknown now (see
	// Unrecorded); UnrecordedUnmarked counts the unrecorded entries that
	// could not be pinned on their thread.
	UnrecordedThreads, UnrecordedUnmarked uint64
}

// Live is the number of per-thread entries that exist now.
func (c Counters) Live() uint64 { return c.StorageCreated - c.StorageReleased }

// Counters reads the kernel counters. It is safe to call concurrently
// with any other method.
func (m *Tracker) Counters() (Counters, error) {
	var c Counters
	unlock, err := m.holdOpen()
	if err != nil {
		return c, err
	}
	defer unlock()
	for key, dst := range map[gen.StallmonCounter]*uint64{
		gen.StallmonCounterCOUNTER_ENTER:             &c.Enter,
		gen.StallmonCounterCOUNTER_STORAGE_CREATED:   &c.StorageCreated,
		gen.StallmonCounterCOUNTER_STORAGE_FAILED:    &c.StorageFailed,
		gen.StallmonCounterCOUNTER_EXIT_NO_ENTRY:     &c.ExitNoEntry,
		gen.StallmonCounterCOUNTER_STORAGE_RELEASED:  &c.StorageReleased,
		gen.StallmonCounterCOUNTER_NR_TOO_LARGE:      &c.NrTooLarge,
		gen.StallmonCounterCOUNTER_ENTRY_OVERWRITTEN: &c.EntryOverwritten,
	} {
		var perCPU []uint64
		if err := m.objs.Counters.Lookup(key, &perCPU); err != nil {
			return Counters{}, fmt.Errorf("reading counter %d: %w", key, err)
		}
		for _, v := range perCPU {
			*dst += v
		}
	}
	c.StaleWords = m.staleWords.Load()
	c.PartialWalks = m.partialWalks.Load()
	c.ThreadWalk = m.threadWalk
	c.WalkOverflows = m.walkOverflows.Load()
	if err := m.objs.WalkVisits.Get(&c.TasksVisited); err != nil {
		return Counters{}, fmt.Errorf("reading the tasks visited: %w", err)
	}
	if err := m.objs.RegsSeenReused.Get(&c.RegsReused); err != nil {
		return Counters{}, fmt.Errorf("reading the registers reused: %w", err)
	}
	if err := m.objs.DeathsTotal.Get(&c.DiedInSyscall); err != nil {
		return Counters{}, fmt.Errorf("reading death count: %w", err)
	}
	if err := m.objs.UnrecordedThreads.Get(&c.UnrecordedThreads); err != nil {
		return Counters{}, fmt.Errorf("reading unrecorded thread count: %w", err)
	}
	if c.UnrecordedUnmarked, err = m.unrecordedUnmarked(); err != nil {
		return Counters{}, err
	}
	return c, nil
}
