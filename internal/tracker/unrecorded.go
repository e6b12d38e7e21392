package tracker

import (
	"fmt"
	"time"

	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// Unrecorded describes a thread that entered a syscall the tracker could
// not record: the kernel refused its per-thread storage (an allocation
// that failed, or the kernel's per-CPU task storage lock held on that
// CPU), or, in the minimal object, its preallocated record map was full. Until the thread's next recorded syscall entry, nothing the
// tracker keeps says what it is doing: its in-flight record is absent or
// older than the syscall it is in, and its saved registers give only a
// lower bound. It must not be called healthy.
type Unrecorded struct {
	// Nr, ABI and Syscall name the latest syscall it entered unrecorded.
	Nr      int
	ABI     ABI
	Syscall string
	// For is how long ago its first unrecorded entry was.
	For time.Duration
}

// Reason is the one-line explanation logged and shown by health checks.
func (u Unrecorded) Reason() string {
	return fmt.Sprintf("its entry into %s could not be recorded (kernel task storage unavailable, or the minimal object's record map full)", u.Syscall)
}

// markUnrecorded sets t.Unrecorded from the iterator's record, and drops
// the record's in-flight word, which belongs to an earlier syscall: the
// registers alone then say what the thread is in, as for a syscall begun
// before attach.
func markUnrecorded(t *Thread, rec *gen.StallmonThreadRec) {
	if rec.UnrecordedWord == 0 {
		return
	}
	nr, abi, _ := unpackWord(rec.UnrecordedWord)
	u := &Unrecorded{Nr: nr, ABI: abi}
	u.Syscall, _ = abi.name(nr, rec.Args)
	if rec.Now > rec.UnrecordedSince {
		u.For = time.Duration(rec.Now - rec.UnrecordedSince)
	}
	t.Unrecorded = u
	rec.Word = 0
	t.Tracked = false
}

// unrecordedUnmarked reads how many unrecorded entries named no thread
// because the kernel's table of unrecorded threads was full.
func (m *Tracker) unrecordedUnmarked() (uint64, error) {
	var n uint64
	if err := m.objs.UnrecordedUnmarked.Get(&n); err != nil {
		return 0, fmt.Errorf("reading unmarked unrecorded entries: %w", err)
	}
	return n, nil
}
