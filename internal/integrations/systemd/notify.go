package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultSocket is the system manager's notify socket, used when
// $NOTIFY_SOCKET is unset.
const DefaultSocket = "/run/systemd/notify"

// maxMessage is systemd's receive buffer (NOTIFY_BUFFER_MAX, PIPE_BUF):
// a longer datagram is dropped whole.
const maxMessage = 4096

// CheckSocket validates a notify socket address: an absolute path, or
// "@name" for the abstract namespace, as $NOTIFY_SOCKET gives it.
func CheckSocket(addr string) error {
	// sun_path holds 108 bytes; a path needs its terminating NUL, an
	// abstract name takes the place of the '@'.
	const sunPath = len(unix.RawSockaddrUnix{}.Path)
	switch {
	case addr == "" || addr == "@":
		return errors.New("empty notify socket address")
	case strings.HasPrefix(addr, "@"):
		if len(addr) > sunPath {
			return fmt.Errorf("abstract socket name %q is longer than %d bytes", addr, sunPath)
		}
	case !strings.HasPrefix(addr, "/"):
		return fmt.Errorf("notify socket %q: want an absolute path or @abstract-name", addr)
	case len(addr) >= sunPath:
		return fmt.Errorf("notify socket path %q is longer than %d bytes", addr, sunPath-1)
	}
	return nil
}

// Send sends msg as one datagram to the notify socket at addr, with
// SCM_CREDENTIALS naming pid and this process's uid and gid. The kernel
// refuses a pid other than our own without CAP_SYS_ADMIN (EPERM) and a
// pid that no longer exists (ESRCH). A full socket queue blocks the send
// until ctx ends.
func Send(ctx context.Context, addr string, pid int, msg string) error {
	if len(msg) > maxMessage {
		return fmt.Errorf("notify message of %d bytes exceeds systemd's %d", len(msg), maxMessage)
	}
	// Not connected: Go refuses ancillary data on a connected datagram
	// socket. Non-blocking, so the runtime's poller waits for room in
	// the queue and a deadline can end the wait.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("notify socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "notify")
	defer f.Close()
	if dl, ok := ctx.Deadline(); ok {
		f.SetWriteDeadline(dl)
	}
	// A deadline in the past wakes a send waiting on a full queue.
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("notify socket: %w", err)
	}
	oob := unix.UnixCredentials(&unix.Ucred{Pid: int32(pid), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())})
	to := &unix.SockaddrUnix{Name: addr}
	var serr error
	werr := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), []byte(msg), oob, to, unix.MSG_NOSIGNAL)
		return !errors.Is(serr, unix.EAGAIN)
	})
	switch {
	case werr != nil && ctx.Err() != nil:
		return fmt.Errorf("sending as pid %d: %w", pid, ctx.Err())
	case werr != nil:
		return fmt.Errorf("sending as pid %d: %w", pid, werr)
	case errors.Is(serr, unix.EPERM) && pid != os.Getpid():
		return fmt.Errorf("sending as pid %d (another process's credentials need CAP_SYS_ADMIN): %w", pid, serr)
	case errors.Is(serr, unix.ESRCH):
		return fmt.Errorf("sending as pid %d (no such process): %w", pid, serr)
	case serr != nil:
		return fmt.Errorf("sending as pid %d: %w", pid, serr)
	}
	return nil
}
