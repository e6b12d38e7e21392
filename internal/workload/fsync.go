package workload

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

const fsyncPeriod = 50_000_000 // ns between passes

// fsyncLoop is a thread that rewrites and fsyncs one 4 KiB block over and
// over: slow syscalls that keep finishing, which stallmon must not mistake
// for a stall. Rewriting in place keeps a long demo from filling the disk.
type fsyncLoop struct {
	wk   *worker
	stop atomic.Bool
	fd   int
	path string
}

func (w *workload) fsyncStart(args []string) ([]any, error) {
	if w.fsync != nil {
		return nil, errors.New("already looping: send fsync-stop first")
	}
	dir := os.TempDir()
	if len(args) == 1 {
		dir = args[0]
	}
	f, err := os.CreateTemp(dir, "stallmon-fsync-*")
	if err != nil {
		return nil, fmt.Errorf("creating the file to fsync: %w", err)
	}
	path := f.Name()
	f.Close()
	// A raw fd keeps every write and fsync on the worker's own thread.
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	l := &fsyncLoop{fd: fd, path: path}
	firstPass := make(chan struct{})
	l.wk, err = startWorker(threadOpts{blockSignals: true}, func() (int, error) {
		return l.run(firstPass)
	})
	if err != nil {
		l.close()
		return nil, err
	}
	select {
	case <-firstPass:
	case r := <-l.wk.done:
		l.close()
		return nil, fmt.Errorf("fsync loop on thread %d ended at once: %v", l.wk.tid, r.err)
	}
	w.fsync = l
	return []any{"tid", l.wk.tid, "fd", fd, "path", path}, nil
}

// run returns the number of passes; it always makes at least one so that a
// reply to fsync-loop means the file really went to disk once.
func (l *fsyncLoop) run(firstPass chan<- struct{}) (int, error) {
	block := make([]byte, 4096)
	for i := range block {
		block[i] = 'x'
	}
	pause := unix.NsecToTimespec(fsyncPeriod)
	for n := 1; ; n++ {
		if _, err := unix.Pwrite(l.fd, block, 0); err != nil {
			return n - 1, fmt.Errorf("writing %s: %w", l.path, err)
		}
		if err := unix.Fsync(l.fd); err != nil {
			return n - 1, fmt.Errorf("fsync %s: %w", l.path, err)
		}
		if n == 1 {
			close(firstPass)
		}
		if l.stop.Load() {
			return n, nil
		}
		// nanosleep rather than time.Sleep keeps the pause on this
		// thread as one plain syscall instead of a runtime park.
		if err := unix.Nanosleep(&pause, nil); err != nil {
			return n, fmt.Errorf("pausing: %w", err)
		}
	}
}

func (w *workload) fsyncStop([]string) ([]any, error) {
	l := w.fsync
	if l == nil {
		return nil, errors.New("not looping: send fsync-loop first")
	}
	w.fsync = nil
	l.stop.Store(true)
	n, err := l.wk.await()
	l.close()
	if err != nil {
		return nil, err
	}
	return []any{"tid", l.wk.tid, "count", n}, nil
}

func (l *fsyncLoop) close() {
	unix.Close(l.fd)
	os.Remove(l.path)
}
