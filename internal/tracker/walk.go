package tracker

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// ErrPartialWalk is a snapshot whose every pass of the task iterator
// stopped before the end of the target's thread list (see bpf/walk.h):
// threads of the target exited under each. Such a pass says nothing of
// the threads it did not reach, so no snapshot is made of it.
var ErrPartialWalk = errors.New("the task iterator stopped before the end of the thread list")

// walkAttempts bounds the passes one snapshot takes. A pass is cut short
// only when the very thread it stands on exits in the microseconds it
// stands there: under the fastest churn measured here, one pass in twenty
// when every thread is listed (TestChurnNeverHidesStuckThread), one in a
// hundred with the agent's quiet set. Four in a row leave the poll
// failed, and the agent blind if the next fails too.
const walkAttempts = 4

// iterRead is the room each read(2) of the iterator's file is given. The
// kernel stops filling a read at the size asked for or at its own seq
// buffer (PAGE_SIZE << 3, 32 KiB with 4 KiB pages), and between two reads
// the walk is parked on a tid that may exit: reads as large as the
// kernel's buffer make the fewest stops. io.ReadAll's first reads are
// 512 bytes, two records each.
const iterRead = 64 << 10

// walk runs the task iterator until one pass walks the whole target, at
// most walkAttempts times, and returns what that pass wrote and when it
// started. Passes cut short are counted (Counters.PartialWalks).
func (m *Tracker) walk(all bool) ([]byte, time.Time, error) {
	for attempt := 1; ; attempt++ {
		if err := m.startPass(all); err != nil {
			return nil, time.Time{}, err
		}
		if err := m.objs.WalkLast.Set(uint32(gen.StallmonWalkEndWALK_NONE)); err != nil {
			return nil, time.Time{}, fmt.Errorf("resetting the walk's end: %w", err)
		}
		taken := time.Now()
		raw, err := m.readIter()
		if err != nil {
			return nil, time.Time{}, err
		}
		whole, err := m.walkedWhole()
		if err != nil {
			return nil, time.Time{}, err
		}
		if whole {
			return raw, taken, nil
		}
		m.partialWalks.Add(1)
		if attempt == walkAttempts {
			return nil, time.Time{}, fmt.Errorf("%d passes in a row: %w", walkAttempts, ErrPartialWalk)
		}
	}
}

// walkedWhole reports whether the latest pass reached the end of the
// target's thread list. Only a pid-filtered link can stop early; a pass
// that visited no thread of the target (it has exited) has no end to
// check, and the agent judges an empty snapshot by itself.
func (m *Tracker) walkedWhole() (bool, error) {
	if !m.iterFiltered {
		return true, nil
	}
	var end uint32
	if err := m.objs.WalkLast.Get(&end); err != nil {
		return false, fmt.Errorf("reading the walk's end: %w", err)
	}
	return gen.StallmonWalkEnd(end) != gen.StallmonWalkEndWALK_MID, nil
}

// readIter runs one pass of the task iterator and returns what it wrote,
// in a buffer reused from pass to pass (records copies out of it).
func (m *Tracker) readIter() ([]byte, error) {
	r, err := m.iter.Open()
	if err != nil {
		return nil, fmt.Errorf("opening task iterator: %w", err)
	}
	defer r.Close()
	buf := m.iterBuf[:0]
	for {
		if cap(buf)-len(buf) < iterRead {
			buf = slices.Grow(buf, iterRead)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading task iterator: %w", err)
		}
	}
	m.iterBuf = buf
	return buf, nil
}
