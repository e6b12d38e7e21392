package workload

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// fileReader is a thread that opened a file and sleeps in read(2) on it:
// meant for a file whose reads block in the kernel, such as a FUSE file
// whose server does not answer (see internal/testutil/fusehang). Nothing in the
// workload can release it; the file's server does, and then the thread
// closes the file and exits.
type fileReader struct {
	wk   *worker
	fd   int
	path string
}

func (w *workload) readFile(args []string) ([]any, error) {
	if r := w.reader; r != nil {
		if _, _, done := r.wk.finished(); !done {
			return nil, fmt.Errorf("thread %d still reads %s", r.wk.tid, r.path)
		}
		w.reader = nil
	}
	path := args[0]
	wk, fd, err := openOnWorker(path, func(fd int) (int, error) {
		buf := make([]byte, unix.Getpagesize())
		return unix.Read(fd, buf)
	})
	if err != nil {
		return nil, err
	}
	r := &fileReader{wk: wk, fd: fd, path: path}
	w.reader = r
	if err := waitAsleepIn(wk, unix.SYS_READ, r.fd); err != nil {
		return nil, err
	}
	return []any{"tid", wk.tid, "fd", r.fd, "nr", unix.SYS_READ, "syscall", "read"}, nil
}

// openOnWorker opens path read-only on a new worker and runs use on the
// fd there, then closes it. The open happens on the worker with signals
// blocked: on a FUSE file, a signal during the open would become an
// interrupt request. It returns once the open is done; an open that
// failed is the error, with the worker ended.
func openOnWorker(path string, use func(fd int) (int, error)) (*worker, int, error) {
	opened := make(chan int, 1)
	wk, err := startWorker(threadOpts{blockSignals: true}, func() (int, error) {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			opened <- -1
			return 0, fmt.Errorf("opening %s: %w", path, err)
		}
		opened <- fd
		defer unix.Close(fd)
		return use(fd)
	})
	if err != nil {
		return nil, -1, err
	}
	fd := <-opened
	if fd < 0 {
		_, err := wk.await()
		return nil, -1, err
	}
	return wk, fd, nil
}
