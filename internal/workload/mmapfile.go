package workload

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// fileMapper is a thread asleep in mmap(2) with MAP_POPULATE of a file:
// the kernel reads the file in before mmap returns, so on a file whose
// server holds the READ the thread waits for a locked folio, in D. The
// file's server releases it; then the thread unmaps, closes and exits.
type fileMapper struct {
	wk   *worker
	fd   int
	path string
}

func (w *workload) mmapFile(args []string) ([]any, error) {
	if m := w.mapper; m != nil {
		if _, _, done := m.wk.finished(); !done {
			return nil, fmt.Errorf("thread %d still maps %s", m.wk.tid, m.path)
		}
		w.mapper = nil
	}
	path := args[0]
	// Opened on the worker with signals blocked, as read-file does: a
	// signal during a FUSE open would become an interrupt request.
	opened := make(chan int, 1)
	wk, err := startWorker(threadOpts{blockSignals: true}, func() (int, error) {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			opened <- -1
			return 0, fmt.Errorf("opening %s: %w", path, err)
		}
		opened <- fd
		defer unix.Close(fd)
		mem, err := unix.Mmap(fd, 0, unix.Getpagesize(), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return 0, fmt.Errorf("mmap of %s: %w", path, err)
		}
		return len(mem), unix.Munmap(mem)
	})
	if err != nil {
		return nil, err
	}
	m := &fileMapper{wk: wk, fd: <-opened, path: path}
	if m.fd < 0 {
		_, err := wk.await()
		return nil, err
	}
	w.mapper = m
	// mmap's first argument is the address asked for: none.
	if err := waitAsleepIn(wk, unix.SYS_MMAP, 0); err != nil {
		return nil, err
	}
	return []any{"tid", wk.tid, "fd", m.fd, "nr", unix.SYS_MMAP, "syscall", "mmap"}, nil
}
