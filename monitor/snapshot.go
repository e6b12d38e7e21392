package monitor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/gen"
)

// Snapshot is the state of every thread of the target at one instant.
type Snapshot struct {
	PID     int
	Taken   time.Time // wall clock, for reports
	Threads []Thread  // sorted by TID
	// Deaths are the threads that died inside a syscall since attach (the
	// latest 16), oldest first; DeathsTotal counts them all. Either being
	// non-empty means the kernel killed a thread of the target mid-call.
	Deaths      []Death
	DeathsTotal uint64
}

// Thread is one thread of the target.
type Thread struct {
	TID   int
	Comm  string
	State TaskState
	// InSyscall is false when the thread is in user space.
	InSyscall bool
	Nr        int
	Syscall   string
	// FD is the syscall's first argument when it is a file descriptor, else -1.
	FD      int
	Arg0    uint64
	Elapsed time.Duration
	// Entered identifies this syscall instance: the kernel's monotonic
	// entry time in ns (for SinceAttach, when it was first seen).
	Entered uint64
	// SinceAttach marks a syscall that was already in flight when the
	// tracker attached: its entry time is unknown and Elapsed counts from
	// the first snapshot that saw it, a lower bound.
	SinceAttach bool
	// Tracked is true once the thread has entered a syscall since attach
	// and so owns a kernel-side entry.
	Tracked bool
}

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

// Word layout, shared with bpf/stallmon.c.
const (
	nrBits  = 12
	nrMask  = 1<<nrBits - 1
	tsShift = 10
)

var recSize = binary.Size(gen.StallmonThreadRec{})

// Snapshot runs the task iterator once and decodes what it wrote.
func (m *Monitor) Snapshot() (Snapshot, error) {
	taken := time.Now()
	r, err := m.iter.Open()
	if err != nil {
		return Snapshot{}, fmt.Errorf("opening task iterator: %w", err)
	}
	raw, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		return Snapshot{}, fmt.Errorf("reading task iterator: %w", err)
	}
	if len(raw)%recSize != 0 {
		return Snapshot{}, fmt.Errorf("task iterator wrote %d bytes, not a multiple of %d", len(raw), recSize)
	}
	snap := Snapshot{PID: m.target.pid, Taken: taken, Threads: make([]Thread, 0, len(raw)/recSize)}
	seen := make(map[int]bool, len(raw)/recSize)
	for off := 0; off < len(raw); off += recSize {
		var rec gen.StallmonThreadRec
		if _, err := binary.Decode(raw[off:off+recSize], binary.NativeEndian, &rec); err != nil {
			return Snapshot{}, fmt.Errorf("decoding thread record: %w", err)
		}
		t := m.decode(rec, taken)
		seen[t.TID] = true
		snap.Threads = append(snap.Threads, t)
	}
	for tid := range m.preAttach {
		if !seen[tid] {
			delete(m.preAttach, tid)
		}
	}
	slices.SortFunc(snap.Threads, func(a, b Thread) int { return a.TID - b.TID })
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
	return snap, nil
}

func (m *Monitor) decode(rec gen.StallmonThreadRec, taken time.Time) Thread {
	t := Thread{
		TID:     int(rec.Tid),
		Comm:    string(rec.Comm[:]),
		State:   decodeState(rec.State, rec.OnCpu != 0),
		FD:      -1,
		Tracked: rec.HasStorage != 0,
	}
	if i := bytes.IndexByte(rec.Comm[:], 0); i >= 0 {
		t.Comm = string(rec.Comm[:i])
	}
	switch {
	case rec.Word != 0:
		delete(m.preAttach, t.TID)
		t.InSyscall = true
		t.Nr = int(rec.Word & nrMask)
		t.Arg0 = rec.Arg0
		start := (rec.Word >> nrBits) << tsShift
		t.Entered = start
		if rec.Now > start {
			t.Elapsed = time.Duration(rec.Now - start)
		}
	case rec.HasStorage == 0 && t.State != StateRunning && t.State != StateRunnable:
		// No syscall recorded since attach, yet asleep: it may have been
		// in this syscall from before we attached.
		m.fillPreAttach(&t, taken)
	default:
		delete(m.preAttach, t.TID)
	}
	if t.InSyscall {
		t.Syscall = SyscallName(t.Nr)
		if TakesFD(t.Nr) {
			t.FD = int(int32(t.Arg0))
		}
	}
	return t
}
