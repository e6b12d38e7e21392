package monitor

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// preAttach remembers a syscall that was in flight before the tracker
// attached, so that a process already stuck when stallmon starts is
// still caught, with an elapsed time counted from when it was first seen.
type preAttach struct {
	nr    int
	arg0  uint64
	first time.Time
}

func (m *Monitor) fillPreAttach(t *Thread, now time.Time) {
	nr, arg0, ok := readProcSyscall(m.target.pid, t.TID)
	if !ok {
		delete(m.preAttach, t.TID)
		return
	}
	p, known := m.preAttach[t.TID]
	if !known || p.nr != nr || p.arg0 != arg0 {
		p = preAttach{nr: nr, arg0: arg0, first: now}
		m.preAttach[t.TID] = p
	}
	t.InSyscall = true
	t.SinceAttach = true
	t.Nr = nr
	t.Arg0 = arg0
	t.Elapsed = now.Sub(p.first)
	t.Entered = uint64(p.first.UnixNano())
}

// readProcSyscall parses /proc/PID/task/TID/syscall: "NR ARG0 ... SP PC"
// while blocked in a syscall, "-1 SP PC" or "running" otherwise.
func readProcSyscall(pid, tid int) (nr int, arg0 uint64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/syscall", pid, tid))
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, 0, false
	}
	nr, err = strconv.Atoi(f[0])
	if err != nil || nr < 0 {
		return 0, 0, false
	}
	arg0, err = strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 64)
	if err != nil {
		return 0, 0, false
	}
	return nr, arg0, true
}
