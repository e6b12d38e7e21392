// Package fdkind classifies the object behind a file descriptor, so that a
// syscall can be judged by what it waits on: a read from a disk file that
// takes a minute is a stall, a read from a socket that takes a minute is a
// quiet peer.
package fdkind

import "fmt"

// Kind is the class of object a file descriptor refers to.
type Kind uint8

// The zero value is None so that an unresolved or fd-less syscall never
// picks up a kind-specific rule by accident.
const (
	None    Kind = iota // syscall takes no fd, or the fd could not be resolved
	Regular             // regular file
	Socket              // socket of any family
	Pipe                // pipe or FIFO
	TTY                 // terminal: console, virtual console, serial line, pty
	Device              // character or block device that is not a terminal
	Other               // eventfd, epoll, signalfd, timerfd, inotify, directory, ...
)

var names = [...]string{
	None:    "none",
	Regular: "regular",
	Socket:  "socket",
	Pipe:    "pipe",
	TTY:     "tty",
	Device:  "device",
	Other:   "other",
}

// String returns the name that ParseKind accepts.
func (k Kind) String() string {
	if int(k) < len(names) {
		return names[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// ParseKind returns the Kind named s, as written by String.
func ParseKind(s string) (Kind, error) {
	for k, n := range names {
		if n == s {
			return Kind(k), nil
		}
	}
	return None, fmt.Errorf("unknown fd kind %q (want one of none, regular, socket, pipe, tty, device, other)", s)
}

// Kinds returns every Kind in declaration order, for callers that must
// cover them all (tables, round-trip tests).
func Kinds() []Kind {
	ks := make([]Kind, len(names))
	for i := range ks {
		ks[i] = Kind(i)
	}
	return ks
}
