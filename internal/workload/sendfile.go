package workload

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// fileSender is a thread asleep in sendfile(2) from a file into a socket:
// like fileReader, but the data comes through the page cache (splice), so
// on a FUSE file whose server holds the READ the thread waits for a locked
// folio, in D, whatever the file's open flags. The file's server releases
// it; then the thread closes its descriptors and exits.
type fileSender struct {
	wk           *worker
	sock, fileFD int
	path         string
}

func (w *workload) sendfile(args []string) ([]any, error) {
	if s := w.sender; s != nil {
		if _, _, done := s.wk.finished(); !done {
			return nil, fmt.Errorf("thread %d still sends %s", s.wk.tid, s.path)
		}
		w.sender = nil
	}
	path := args[0]
	// Opened on the worker, with signals blocked, as read-file does: a
	// signal during a FUSE open would become an interrupt request.
	type fds struct {
		sock, file int
		err        error
	}
	opened := make(chan fds, 1)
	wk, err := startWorker(threadOpts{blockSignals: true}, func() (int, error) {
		file, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			err = fmt.Errorf("opening %s: %w", path, err)
			opened <- fds{err: err}
			return 0, err
		}
		defer unix.Close(file)
		// A stream socket takes the few bytes without blocking, so the
		// only wait is for the file's data.
		sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			err = fmt.Errorf("socketpair: %w", err)
			opened <- fds{err: err}
			return 0, err
		}
		defer unix.Close(sp[0])
		defer unix.Close(sp[1])
		opened <- fds{sock: sp[0], file: file}
		return unix.Sendfile(sp[0], file, nil, 4096)
	})
	if err != nil {
		return nil, err
	}
	o := <-opened
	if o.err != nil {
		wk.await()
		return nil, o.err
	}
	s := &fileSender{wk: wk, sock: o.sock, fileFD: o.file, path: path}
	w.sender = s
	if err := waitAsleepIn(wk, unix.SYS_SENDFILE, s.sock); err != nil {
		return nil, err
	}
	return []any{"tid", wk.tid, "fd", s.sock, "in_fd", s.fileFD, "nr", unix.SYS_SENDFILE, "syscall", "sendfile"}, nil
}
