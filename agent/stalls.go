package agent

import (
	"time"

	"github.com/stallmon/stallmon/monitor"
)

// stallKey identifies one syscall instance: a thread may stall, return and
// stall again in a new call, which is a new stall.
type stallKey struct {
	tid     int
	entered uint64
}

type stall struct {
	thread monitor.Thread // as last seen
	since  time.Time      // when first judged over budget
}

// stallSet tracks which syscalls are over their budget across polls, so
// each stall is reported once when it starts and once when it clears.
type stallSet struct {
	open map[stallKey]*stall
}

func newStallSet() *stallSet { return &stallSet{open: map[stallKey]*stall{}} }

// update takes the threads over budget in this poll and returns the stalls
// that began and those that ended (their syscall returned, or the thread
// is gone).
func (s *stallSet) update(over []monitor.Thread, now time.Time) (started, cleared []stall) {
	current := make(map[stallKey]bool, len(over))
	for _, t := range over {
		k := stallKey{t.TID, t.Entered}
		current[k] = true
		if st, ok := s.open[k]; ok {
			st.thread = t
			continue
		}
		st := &stall{thread: t, since: now}
		s.open[k] = st
		started = append(started, *st)
	}
	for k, st := range s.open {
		if !current[k] {
			cleared = append(cleared, *st)
			delete(s.open, k)
		}
	}
	return started, cleared
}

func (s *stallSet) len() int { return len(s.open) }
