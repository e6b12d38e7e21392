package peer

import (
	"errors"
	"fmt"
	"os"

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
