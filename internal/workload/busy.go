package workload

import (
	"errors"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// busyLoop is a thread making a cheap syscall as fast as it can: always
// inside or near the kernel, never stuck there.
type busyLoop struct {
	wk   *worker
	stop atomic.Bool
}

func (w *workload) busyStart([]string) ([]any, error) {
	if w.busy != nil {
		return nil, errors.New("already busy: send busy-stop first")
	}
	b := &busyLoop{}
	// Signals stay unblocked so the runtime can preempt this loop.
	wk, err := startWorker(threadOpts{}, func() (int, error) {
		n := 0
		for !b.stop.Load() {
			// Not unix.Getppid: its raw syscall skips the runtime's
			// syscall bookkeeping, and a preemption signal then always
			// lands in assembly, where it is refused. The loop held its
			// P for good, and with GOMAXPROCS=1 the workload stopped
			// answering. unix.Syscall lets the scheduler in.
			unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
			n++
		}
		return n, nil
	})
	if err != nil {
		return nil, err
	}
	b.wk = wk
	w.busy = b
	return []any{"tid", wk.tid}, nil
}

func (w *workload) busyStop([]string) ([]any, error) {
	b := w.busy
	if b == nil {
		return nil, errors.New("not busy: send busy first")
	}
	w.busy = nil
	b.stop.Store(true)
	n, err := b.wk.await()
	if err != nil {
		return nil, err
	}
	return []any{"tid", b.wk.tid, "count", n}, nil
}
