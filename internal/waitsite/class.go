// Package waitsite tells what a sleeping thread waits for, from the return
// addresses of its kernel stack (captured by the tracker's iterator) and
// the kernel's symbols, read once from /proc/kallsyms: a socket's peer, a
// pipe, a file system, a FUSE or NFS server, a lock, a timer...
//
// The answer is a heuristic over kernel function names, which change from
// one kernel to the next. So a class is only ever trusted one way: Unknown
// (nothing to read the stack with, or an address no symbol covers) and
// Other (a function the table does not know) say nothing, and no rule may
// read them as "waiting by design".
package waitsite

import "strings"

// Class is what a thread waits for.
type Class uint8

const (
	// None: no stack was taken (the thread was on a CPU, runnable, or
	// not listed). It says nothing about the thread.
	None Class = iota
	// Unknown: a stack was taken but could not be read: no symbols
	// (kptr_restrict, /proc/kallsyms unreadable), an address no symbol
	// covers (a module loaded after attach), or the kernel refused it.
	Unknown
	// Other: a function the table does not know.
	Other
	SocketSend    // waiting for room in a socket's send buffer, or a peer to connect
	SocketRecv    // waiting for data or a connection on a socket
	Pipe          // a pipe or FIFO: data, room, or (FIFO open) the other end
	Futex         // a futex: a user-space lock or condition
	Poll          // poll, select, epoll: readiness of any of several fds
	Storage       // the page cache, the block layer, a journal, write-back
	NFS           // an NFS or SUNRPC server
	FUSE          // a FUSE server's answer
	Userfaultfd   // a page fault a userfaultfd handler must resolve
	SeccompNotify // a seccomp user-notification supervisor's answer
	Lock          // a kernel lock (mutex, rwsem, rt_mutex) another task holds
	Sleep         // a timed sleep the thread asked for
	IOUring       // io_uring: completions, or an idle worker or SQ thread
	numClasses
)

var classNames = [numClasses]string{
	None:          "",
	Unknown:       "unknown",
	Other:         "other",
	SocketSend:    "socket_send",
	SocketRecv:    "socket_recv",
	Pipe:          "pipe",
	Futex:         "futex",
	Poll:          "poll",
	Storage:       "storage",
	NFS:           "nfs",
	FUSE:          "fuse",
	Userfaultfd:   "userfaultfd",
	SeccompNotify: "seccomp_notify",
	Lock:          "lock",
	Sleep:         "sleep",
	IOUring:       "io_uring",
}

// String is the class's name in events and /readyz ("" for None).
func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return "unknown"
}

// Peer reports a wait on the other end of a socket or a pipe: as long as
// that end takes, by design. Never a page fault's.
func (c Class) Peer() bool { return c == SocketSend || c == SocketRecv || c == Pipe }

// Filesystem reports a wait on a file's data or metadata: the page cache
// or block layer, an NFS server, a FUSE server.
func (c Class) Filesystem() bool { return c == Storage || c == NFS || c == FUSE }

// Wait is where one thread sleeps.
type Wait struct {
	Class Class
	// Site is the frame that decided the class: the innermost one that is
	// not the scheduler's or a generic wait helper's. Empty when none did.
	Site string
	// Frames are the stack's functions, innermost first, as far as it was
	// captured; an address no symbol covers is shown in hex.
	Frames []string
}

// Captured reports whether a stack was taken at all.
func (w Wait) Captured() bool { return w.Class != None }

// String names the wait for events: "fuse request_wait_answer".
func (w Wait) String() string {
	if w.Site == "" {
		return w.Class.String()
	}
	return w.Class.String() + " " + w.Site
}

// Stack joins the frames for events: "request_wait_answer | ...".
func (w Wait) Stack() string { return strings.Join(w.Frames, " | ") }
