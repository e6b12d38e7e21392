package identity

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/stallmon/stallmon/internal/event"
)

// DefaultStateDir holds incarnations and node locks when neither
// --state-dir nor $STATE_DIRECTORY says where.
const DefaultStateDir = "/var/lib/stallmon"

// Node is a node id claimed by this process: no other agent on the host
// speaks for it until Release (or this process's end).
type Node struct {
	ID  string
	dir string // "" when there is no usable state directory
	log *slog.Logger
	// release drops the lock.
	release func()
}

// Claim takes id's lock in stateDir ("" for $STATE_DIRECTORY's first
// entry, else DefaultStateDir). Without a usable state directory the
// agent still runs, numbering incarnations by the clock and unlocked: a
// peer that rejects a stale incarnation takes the node for silent, the
// safe side. Another agent holding id is an error.
func Claim(id, stateDir string, log *slog.Logger) (*Node, error) {
	dir := stateDir
	if dir == "" {
		// systemd's StateDirectory= may list several; the first is ours.
		dir, _, _ = strings.Cut(os.Getenv("STATE_DIRECTORY"), ":")
	}
	if dir == "" {
		dir = DefaultStateDir
	}
	n := &Node{ID: id, log: log, release: func() {}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Warn(event.StateDirUnusable, "dir", dir, "err", err,
			"detail", "incarnations follow the clock and node ids are not locked")
		return n, nil
	}
	n.dir = dir
	l, err := LockNode(dir, id)
	switch {
	case errors.Is(err, ErrNodeInUse):
		return nil, fmt.Errorf("%w; give each agent on this host its own --node-id", err)
	case err != nil:
		log.Warn(event.NodeNotLocked, "node", id, "err", err)
		return n, nil
	}
	n.release = func() { l.Unlock() }
	return n, nil
}

// Incarnation numbers a new run of the node (see NextIncarnation), from
// the clock when it cannot be persisted.
func (n *Node) Incarnation() uint64 {
	now := time.Now()
	if n.dir != "" {
		inc, err := NextIncarnation(n.dir, n.ID, now)
		if err == nil {
			return inc
		}
		n.log.Warn(event.IncarnationNotPersisted, "node", n.ID, "err", err,
			"detail", "a clock stepped back across a restart makes peers ignore this node until it catches up")
	}
	return uint64(now.UnixNano())
}

// Release drops the node's lock.
func (n *Node) Release() { n.release() }
