package keepalived

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// mark is the file as the sink last wrote it. One stat tells whether it
// is still so: a removal, a replacement (new inode) or an edit in place
// (new mtime or size) all show.
type mark struct {
	value      int // -1: unknown, the next Apply writes whatever it wants
	dev, ino   uint64
	size       int64
	mtimeNanos int64
}

var unknown = mark{value: -1}

func markOf(value int, st *unix.Stat_t) mark {
	return mark{value: value, dev: st.Dev, ino: st.Ino, size: st.Size, mtimeNanos: st.Mtim.Nano()}
}

// holds reports whether path still is the file m describes. Any failure
// to stat it counts as no: the caller then writes it again.
func (m mark) holds(path string) bool {
	if m.value < 0 {
		return false
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false
	}
	return markOf(m.value, &st) == m
}

// writeValue replaces path with a file holding value, atomically: a
// reader (keepalived, on the rename's inotify event) sees the old file or
// the new one, never an empty or half-written one, which it would read as
// 0, healthy.
func writeValue(path string, value int) (mark, error) {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+".")
	if err != nil {
		return unknown, fmt.Errorf("creating temporary file: %w", err)
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := fmt.Fprintf(f, "%d\n", value); err != nil {
		return unknown, fmt.Errorf("writing %s: %w", tmp, err)
	}
	// CreateTemp makes it 0600; operators read it with cat.
	if err := f.Chmod(0o644); err != nil {
		return unknown, fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return unknown, fmt.Errorf("fsync %s: %w", tmp, err)
	}
	// The rename keeps inode and mtime: what fstat says now is what a
	// stat of path says until someone else touches it.
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return unknown, fmt.Errorf("fstat %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return unknown, fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return unknown, fmt.Errorf("renaming %s to %s: %w", tmp, path, err)
	}
	done = true
	// The rename is visible already; syncing the directory only makes it
	// survive a crash of the node, so a failure is not the verdict's.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return markOf(value, &st), nil
}

// checkDir is the build-time check: the file's directory exists and
// stallmon may create files in it.
func checkDir(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case os.IsNotExist(err):
		return fmt.Errorf("directory %s does not exist", dir)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Errorf("directory %s is not writable: %w", dir, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	return nil
}
