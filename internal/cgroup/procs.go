package cgroup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// ErrThreaded is a cgroup whose processes cgroup.procs does not list: a
// threaded cgroup, whose processes belong to the domain above it.
var ErrThreaded = errors.New("a threaded cgroup: its processes are listed by its threaded domain")

// SubtreeProcs appends to dst every process of the cgroup and of its
// descendants, as the kernel lists them in each cgroup.procs, and returns
// the result and the buffer grown to read them (pass it back next time).
// A threaded descendant lists nothing of its own: its processes are those
// of the threaded domain at or below d, listed there. d itself threaded
// is ErrThreaded.
//
// It reads cgroupfs alone (kernfs, never a file system a process of the
// cgroup serves), and the kernel answers from its own lists under a spin
// lock: nothing in it waits on the processes it lists.
func (d Dir) SubtreeProcs(dst []int, buf []byte) ([]int, []byte, error) {
	var err error
	dst, buf, err = readProcs(d.Path, dst, buf)
	if err != nil {
		return dst, buf, err
	}
	return d.descendantProcs(d.Path, dst, buf)
}

func (d Dir) descendantProcs(dir string, dst []int, buf []byte) ([]int, []byte, error) {
	f, err := os.Open(dir)
	if err != nil {
		if removed(err) && dir != d.Path {
			return dst, buf, nil
		}
		return dst, buf, fmt.Errorf("listing cgroup %s: %w", dir, err)
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if removed(err) && dir != d.Path {
		return dst, buf, nil
	}
	if err != nil {
		return dst, buf, fmt.Errorf("listing cgroup %s: %w", dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		child := filepath.Join(dir, e.Name())
		dst, buf, err = readProcs(child, dst, buf)
		switch {
		case errors.Is(err, ErrThreaded), removed(err):
		case err != nil:
			return dst, buf, err
		}
		if dst, buf, err = d.descendantProcs(child, dst, buf); err != nil {
			return dst, buf, err
		}
	}
	return dst, buf, nil
}

// removed is the error of a descendant removed since its parent was
// listed: ENOENT at an open or a directory read, ENODEV at a read of a
// file opened before the rmdir. It was empty, as a cgroup must be to be
// removed.
func removed(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENODEV)
}

// readProcs appends the pids of dir's cgroup.procs to dst.
func readProcs(dir string, dst []int, buf []byte) ([]int, []byte, error) {
	f, err := os.Open(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return dst, buf, fmt.Errorf("reading the processes of cgroup %s: %w", dir, err)
	}
	defer f.Close()
	buf = buf[:0]
	for {
		if cap(buf)-len(buf) < 512 {
			buf = slices.Grow(buf, 4096)
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if errors.Is(err, unix.EOPNOTSUPP) {
			return dst, buf, fmt.Errorf("cgroup %s: %w", dir, ErrThreaded)
		}
		if err != nil {
			return dst, buf, fmt.Errorf("reading the processes of cgroup %s: %w", dir, err)
		}
	}
	pid := -1
	for _, c := range buf {
		switch {
		case c >= '0' && c <= '9':
			if pid < 0 {
				pid = 0
			}
			pid = pid*10 + int(c-'0')
		case c == '\n' && pid >= 0:
			dst = append(dst, pid)
			pid = -1
		default:
			return dst, buf, fmt.Errorf("reading the processes of cgroup %s: unexpected byte %q", dir, c)
		}
	}
	if pid >= 0 {
		dst = append(dst, pid)
	}
	return dst, buf, nil
}
