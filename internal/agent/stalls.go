package agent

// stallKey identifies one syscall instance: a thread may stall, return and
// stall again in a new call, which is a new stall.
type stallKey struct {
	tid     int
	entered uint64
}

// stallSet tracks which syscalls are over their budget across polls, so
// each stall is reported once when it starts and once when it clears.
type stallSet struct {
	open map[stallKey]judged // as last seen
}

func newStallSet() *stallSet { return &stallSet{open: map[stallKey]judged{}} }

// update takes the syscalls over budget in this poll and returns the
// stalls that began and those that ended (their syscall returned, or the
// thread is gone).
func (s *stallSet) update(over []judged) (started, cleared []judged) {
	current := make(map[stallKey]bool, len(over))
	for _, j := range over {
		k := j.key()
		current[k] = true
		if _, ok := s.open[k]; !ok {
			started = append(started, j)
		}
		s.open[k] = j
	}
	for k, j := range s.open {
		if !current[k] {
			cleared = append(cleared, j)
			delete(s.open, k)
		}
	}
	return started, cleared
}
