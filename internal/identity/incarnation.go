package identity

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// NextIncarnation returns the incarnation for a new run of node: greater
// than every one this function returned for node before with the same
// dir, and no less than now in Unix nanoseconds. Peers reject packets of
// an incarnation older than the newest they saw, so the number must grow
// across restarts even when the wall clock steps back (NTP, a VM restored
// from a snapshot); the clock alone does not ensure that, the persisted
// counter does. Agents that share dir serialise on it. dir must be owned
// by root or the running user and writable by nobody else: the files in
// it are created as whoever runs stallmon.
func NextIncarnation(dir, node string, now time.Time) (uint64, error) {
	d, err := os.Open(dir)
	if err != nil {
		return 0, fmt.Errorf("incarnation state: %w", err)
	}
	defer d.Close()
	if err := CheckStateDir(d); err != nil {
		return 0, err
	}
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX); err != nil {
		return 0, fmt.Errorf("incarnation state: locking %s: %w", dir, err)
	}
	defer unix.Flock(int(d.Fd()), unix.LOCK_UN)

	path := filepath.Join(dir, "incarnation-"+url.PathEscape(node))
	next := uint64(max(now.UnixNano(), 1))
	switch data, err := os.ReadFile(path); {
	case err == nil:
		// A file that does not parse (a torn write on a file system
		// that ignores fsync) is overwritten: the clock stands in for it
		// this once, rather than for every restart to come.
		if last, perr := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64); perr == nil {
			next = max(next, last+1)
		}
	case !os.IsNotExist(err):
		return 0, fmt.Errorf("incarnation state: %w", err)
	}

	tmp := path + ".tmp"
	if err := writeSynced(tmp, []byte(strconv.FormatUint(next, 10)+"\n")); err != nil {
		return 0, fmt.Errorf("incarnation state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("incarnation state: %w", err)
	}
	// The rename must reach the disk before the number goes on the wire.
	if err := d.Sync(); err != nil {
		return 0, fmt.Errorf("incarnation state: syncing %s: %w", dir, err)
	}
	return next, nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// CheckStateDir refuses a state directory others could write to (they
// could plant symlinks for root to follow) or that someone else owns.
func CheckStateDir(d *os.File) error {
	st, err := d.Stat()
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("state directory %s is not a directory", d.Name())
	}
	if perm := st.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("state directory %s is writable by group or others (mode %04o)", d.Name(), perm)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("state directory %s: no owner in its stat", d.Name())
	}
	if euid := os.Geteuid(); sys.Uid != 0 && int(sys.Uid) != euid {
		return fmt.Errorf("state directory %s is owned by uid %d, not by root or the running user", d.Name(), sys.Uid)
	}
	return nil
}
