package workload

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// pipeWaiter is a thread blocked in read(2) on an empty pipe. The pipe is
// made with unix.Pipe2, not os.Pipe: os.File would park the goroutine in
// the netpoller instead of blocking the thread inside read.
type pipeWaiter struct {
	th   thread
	r, w int
}

// pipeWait parks a thread in read(2) on a new empty pipe under slot: a
// locked goroutine's thread for pipe-wait, a thread cloned on the spot for
// spawn-wait (see rawReader for why).
func (w *workload) pipeWait(slot string, raw bool) ([]any, error) {
	if pw := w.waiters[slot]; pw != nil {
		return nil, fmt.Errorf("thread %d is already waiting: send %s-release first", pw.th.id(), slot)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("creating pipe: %w", err)
	}
	pw := &pipeWaiter{r: p[0], w: p[1]}
	var err error
	if raw {
		pw.th, err = startRawReader(pw.r)
	} else {
		pw.th, err = startWorker(threadOpts{blockSignals: true}, func() (int, error) {
			var b [1]byte
			return unix.Read(pw.r, b[:])
		})
	}
	if err != nil {
		pw.close()
		return nil, err
	}
	if err := waitAsleepIn(pw.th, unix.SYS_READ, pw.r); err != nil {
		pw.release()
		return nil, err
	}
	w.waiters[slot] = pw
	return []any{"tid", pw.th.id(), "fd", pw.r, "nr", unix.SYS_READ, "syscall", "read"}, nil
}

func (w *workload) pipeRelease(slot string) ([]any, error) {
	pw := w.waiters[slot]
	if pw == nil {
		return nil, fmt.Errorf("no thread waits: send %s-wait first", slot)
	}
	delete(w.waiters, slot)
	ret, err := pw.release()
	if err != nil {
		return nil, err
	}
	return []any{"tid", pw.th.id(), "ret", ret}, nil
}

// release writes the byte the thread waits for, then waits for its read to
// return.
func (pw *pipeWaiter) release() (int, error) {
	defer pw.close()
	if _, err := unix.Write(pw.w, []byte{1}); err != nil {
		return 0, fmt.Errorf("waking thread %d: %w", pw.th.id(), err)
	}
	ret, err := pw.th.await()
	if err != nil {
		return ret, fmt.Errorf("read on thread %d: %w", pw.th.id(), err)
	}
	return ret, nil
}

func (pw *pipeWaiter) close() {
	unix.Close(pw.r)
	unix.Close(pw.w)
}
