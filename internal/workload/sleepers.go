package workload

import (
	"fmt"
	"runtime/debug"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxSleepers bounds sleepers: a large service's thread count, below
// what the Go runtime is told it may have.
const maxSleepers = 20000

// sleepers parks N threads in read(2) on a pipe nobody writes to: the
// idle thread pool of a large service, each waiting by design. They stay
// until the workload exits. The reply comes once every one is asleep.
func (w *workload) sleepers(args []string) ([]any, error) {
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 || n > maxSleepers {
		return nil, fmt.Errorf("N %q is not in 1..%d", args[0], maxSleepers)
	}
	// Each sleeper is an OS thread of its own; the runtime's default
	// limit is 10,000.
	debug.SetMaxThreads(maxSleepers + 1000)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("creating pipe: %w", err)
	}
	w.sleeperPipes = append(w.sleeperPipes, p)
	if _, err := parkReaders(n, p[0]); err != nil {
		return nil, err
	}
	return []any{"threads", n, "fd", p[0]}, nil
}

// parkReaders starts n threads reading one byte each from fd and returns
// once every one is asleep in read(2).
func parkReaders(n, fd int) ([]*worker, error) {
	workers := make([]*worker, 0, n)
	for len(workers) < n {
		wk, err := startWorker(threadOpts{blockSignals: true}, func() (int, error) {
			var b [1]byte
			return unix.Read(fd, b[:])
		})
		if err != nil {
			return nil, err
		}
		workers = append(workers, wk)
	}
	for _, wk := range workers {
		if err := waitAsleepIn(wk, unix.SYS_READ, fd); err != nil {
			return nil, err
		}
	}
	return workers, nil
}
