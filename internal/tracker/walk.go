package tracker

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/cilium/ebpf/link"

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

// walk runs a pass of the scope's task iterators until one walks the
// whole of each process, at most walkAttempts times, and returns what
// that pass wrote and when it started. A pass cut short in any process
// is taken again whole: its quiet counts (quiet.go) sum over the
// processes of one pass. Passes cut short are counted
// (Counters.PartialWalks).
func (m *Tracker) walk(all bool) ([]byte, time.Time, error) {
	for attempt := 1; ; attempt++ {
		if err := m.startPass(all); err != nil {
			return nil, time.Time{}, err
		}
		iters, filtered, err := m.passIters()
		if err != nil {
			return nil, time.Time{}, err
		}
		taken := time.Now()
		buf := m.iterBuf[:0]
		whole, overflow := true, false
		for _, mi := range iters {
			if err := m.objs.WalkLast.Set(uint32(gen.StallmonWalkEndWALK_NONE)); err != nil {
				return nil, time.Time{}, fmt.Errorf("resetting the walk's end: %w", err)
			}
			it, threaded, err := m.passIter(mi, all)
			if err != nil {
				return nil, time.Time{}, err
			}
			if buf, err = readIter(it, buf); err != nil {
				if threaded && overflowed(err) {
					mi.overflowLeft = overflowHold
					m.walkOverflows.Add(1)
					overflow = true
					break
				}
				return nil, time.Time{}, err
			}
			if !filtered {
				continue
			}
			end, err := m.walkEnd()
			if err != nil {
				return nil, time.Time{}, err
			}
			mi.held = end != gen.StallmonWalkEndWALK_NONE
			// A walk that visited no thread of the scope has no end to
			// check: the process has exited, or left the scope.
			if whole = end != gen.StallmonWalkEndWALK_MID; !whole {
				break
			}
		}
		m.iterBuf = buf
		if overflow {
			// The pass is taken again whole (its quiet counts sum
			// over it), that process walked per visit: a retry each
			// process can cost once, not a cut-short walk.
			attempt--
			continue
		}
		if whole {
			return buf, taken, nil
		}
		m.partialWalks.Add(1)
		if attempt == walkAttempts {
			return nil, time.Time{}, fmt.Errorf("%d passes in a row: %w", walkAttempts, ErrPartialWalk)
		}
	}
}

// walkEnd reads where the latest process's walk ended (bpf/walk.h).
func (m *Tracker) walkEnd() (gen.StallmonWalkEnd, error) {
	var end uint32
	if err := m.objs.WalkLast.Get(&end); err != nil {
		return 0, fmt.Errorf("reading the walk's end: %w", err)
	}
	return gen.StallmonWalkEnd(end), nil
}

// readIter runs one pass of it and appends what it wrote to buf (records
// copies out of it).
func readIter(it *link.Iter, buf []byte) ([]byte, error) {
	r, err := it.Open()
	if err != nil {
		return buf, fmt.Errorf("opening task iterator: %w", err)
	}
	defer r.Close()
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
			return buf, fmt.Errorf("reading task iterator: %w", err)
		}
	}
	return buf, nil
}
