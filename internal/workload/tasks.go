package workload

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// listTasks returns the tids of this process, sorted.
func listTasks() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("listing threads: %w", err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	slices.Sort(tids)
	return tids, nil
}

// thread is a worker or a rawReader, seen from the command loop.
type thread interface {
	id() int
	// finished tells, without blocking, whether the thread is done with
	// its syscall, and what the syscall returned.
	finished() (ret int, err error, ok bool)
	await() (int, error)
}

// waitAsleepIn returns once th sleeps inside syscall nr with first argument
// arg0, or fails if it finished instead. The kernel sends no
// notification when a thread goes to sleep, so this polls
// /proc/self/task/TID/syscall, which names the syscall only while the thread
// is not running; short interval, bounded wait.
func waitAsleepIn(th thread, nr, arg0 int) error {
	path := fmt.Sprintf("/proc/self/task/%d/syscall", th.id())
	deadline := time.Now().Add(settleTimeout)
	for {
		b, err := os.ReadFile(path)
		if err == nil && SleepsIn(string(b), nr, arg0) {
			return nil
		}
		// Checked before the read error: a thread that returned at once
		// may be gone from /proc already.
		if ret, err, ok := th.finished(); ok {
			return fmt.Errorf("thread %d returned instead of blocking in syscall %d: ret=%d err=%v", th.id(), nr, ret, err)
		}
		if err != nil {
			return fmt.Errorf("reading thread state: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("thread %d not asleep in syscall %d after %v: %s is %q", th.id(), nr, settleTimeout, path, strings.TrimSpace(string(b)))
		}
		time.Sleep(pollInterval)
	}
}

// SleepsIn reports whether the text of a /proc/PID/task/TID/syscall file
// shows a thread asleep in syscall nr with first argument arg0.
func SleepsIn(procSyscall string, nr, arg0 int) bool {
	f := strings.Fields(procSyscall)
	if len(f) < 2 || f[0] != strconv.Itoa(nr) {
		return false
	}
	a, err := strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 64)
	return err == nil && a == uint64(arg0)
}

// task names one thread for good: a tid alone may be handed to a new thread
// once the old one exits (the tests steer ns_last_pid to make that happen),
// so the thread's start time goes with it. start 0 means whichever thread
// holds the tid when the wait begins.
type task struct {
	tid   int
	start uint64
}

// waitGone returns once none of tasks is a thread of this process any more.
// A thread's exit has no notification a sibling can wait on (the runtime
// ends it after our goroutine is gone), so this polls /proc, bounded.
func waitGone(tasks []task) error {
	deadline := time.Now().Add(settleTimeout)
	for _, tk := range tasks {
		for {
			start, err := taskStart(tk.tid)
			// ESRCH: the thread died between opening its stat and reading it.
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
				break
			}
			if err != nil {
				return fmt.Errorf("checking thread %d: %w", tk.tid, err)
			}
			if tk.start == 0 {
				tk.start = start
			}
			if start != tk.start {
				break // the tid went to a newer thread: ours is gone
			}
			if time.Now().After(deadline) {
				stat, _ := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tk.tid))
				return fmt.Errorf("thread %d still exists %v after its goroutine returned: %s", tk.tid, settleTimeout, bytes.TrimSpace(stat))
			}
			time.Sleep(pollInterval)
		}
	}
	return nil
}

// taskStart reads when thread tid of this process started, in clock ticks
// since boot (field 22 of its stat file).
func taskStart(tid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses; fields are counted
	// from the last ')', which ends it (field 2).
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	const startField = 22 - 3 // f[0] is field 3
	if i < 0 || len(f) <= startField {
		return 0, fmt.Errorf("thread %d: stat %q has no start time", tid, b)
	}
	start, err := strconv.ParseUint(f[startField], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("thread %d: start time: %w", tid, err)
	}
	return start, nil
}
