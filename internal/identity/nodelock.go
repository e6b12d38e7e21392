package identity

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrNodeInUse means another agent on this host already sends as the node.
var ErrNodeInUse = errors.New("node id in use by another stallmon on this host")

// NodeLock is held while an agent sends as a node id, so that two agents on
// one host never speak for the same node: peers would take one's ALIVE
// for the other's target.
type NodeLock struct{ f *os.File }

// LockNode takes node's lock in dir without waiting. The kernel releases
// it when the process ends, however it ends.
func LockNode(dir, node string) (*NodeLock, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("node lock: %w", err)
	}
	err = CheckStateDir(d)
	d.Close()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "node-"+url.PathEscape(node)+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("node lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("node id %q: %w (lock %s)", node, ErrNodeInUse, path)
		}
		return nil, fmt.Errorf("node lock %s: %w", path, err)
	}
	return &NodeLock{f: f}, nil
}

// Unlock releases the lock; the file stays for the next agent.
func (l *NodeLock) Unlock() error { return l.f.Close() }
