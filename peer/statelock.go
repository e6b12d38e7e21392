package peer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrStateFileLocked: another listener holds the state file. Two writers
// would each save what they alone heard, and a restart would keep
// whichever wrote last.
var ErrStateFileLocked = errors.New("peer: state file in use by another listener")

// lockStateFile takes the lock of the state file at path, PATH.lock
// beside it (the file itself is replaced at every save), before the file
// is read, so that what is read is not what another listener is about to
// replace. The kernel drops the lock when the file is closed or the
// process ends.
func lockStateFile(path string) (*os.File, error) {
	lock := path + ".lock"
	f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking listener state file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s (lock %s): %w", path, lock, ErrStateFileLocked)
		}
		return nil, fmt.Errorf("locking listener state file: %s: %w", lock, err)
	}
	return f, nil
}

// removeTempStates removes the temporary files saveState leaves when the
// process dies between creating one and renaming it: each crash mid-save
// would otherwise leave one more. Called with the lock held, so no save
// of a live listener is among them. Only names saveState makes are
// touched (".BASE." and the digits os.CreateTemp adds).
func removeTempStates(path string) error {
	dir, prefix := filepath.Dir(path), "."+filepath.Base(path)+"."
	es, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("listener state file: looking for saves a crash cut short: %w", err)
	}
	for _, e := range es {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" || !e.Type().IsRegular() {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("listener state file: removing a save a crash cut short: %w", err)
		}
	}
	return nil
}
