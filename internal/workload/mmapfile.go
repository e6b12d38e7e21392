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
	wk, fd, err := openOnWorker(path, func(fd int) (int, error) {
		mem, err := unix.Mmap(fd, 0, unix.Getpagesize(), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return 0, fmt.Errorf("mmap of %s: %w", path, err)
		}
		return len(mem), unix.Munmap(mem)
	})
	if err != nil {
		return nil, err
	}
	m := &fileMapper{wk: wk, fd: fd, path: path}
	w.mapper = m
	// mmap's first argument is the address asked for: none.
	if err := waitAsleepIn(wk, unix.SYS_MMAP, 0); err != nil {
		return nil, err
	}
	return []any{"tid", wk.tid, "fd", m.fd, "nr", unix.SYS_MMAP, "syscall", "mmap"}, nil
}
