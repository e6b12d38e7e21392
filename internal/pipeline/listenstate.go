package pipeline

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/peer"
)

// lateSource lets the listener be built, and so its state file be read
// and judged, before the socket is opened: a bad file is refused with
// nothing joined. Its Source is set before Run.
type lateSource struct{ peer.Source }

// lockStateFile keeps a second listener off path: two writers would
// each save what they alone heard, and a restart would keep whichever
// wrote last. The lock sits beside the file (the file itself is replaced
// at every save) and the kernel drops it when the process ends.
func lockStateFile(path string) (func(), error) {
	lock := path + ".lock"
	f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--state-file: locking: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("--state-file %s: in use by another listener (lock %s)", path, lock)
		}
		return nil, fmt.Errorf("--state-file: locking %s: %w", lock, err)
	}
	return func() { f.Close() }, nil
}
