package ctarget

import (
	"errors"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Supervisor answers the syscalls a seccomp user-notification filter of
// another process holds (seccompwait's): the role LXD or Sysbox plays for
// a container. Its listener is a copy, taken with pidfd_getfd(2), of the
// one the target keeps open, so closing it does not release the target:
// a syscall nobody answers waits for as long as the target lives.
type Supervisor struct{ fd int }

// Notif is one held syscall (struct seccomp_notif).
type Notif struct {
	ID    uint64
	PID   uint32 // the calling thread's tid
	Flags uint32
	Nr    int32  // in the table of Arch
	Arch  uint32 // AUDIT_ARCH_*
	IP    uint64
	Args  [6]uint64
}

// notifResp is struct seccomp_notif_resp.
type notifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// TakeListener copies fd, a seccomp listener of process pid, into this
// process; it is closed when the test ends.
func TakeListener(t testing.TB, pid, fd int) *Supervisor {
	t.Helper()
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(pidfd)
	lfd, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		t.Fatalf("pidfd_getfd(%d, %d): %v", pid, fd, err)
	}
	t.Cleanup(func() { unix.Close(lfd) })
	return &Supervisor{fd: lfd}
}

// Recv returns the next held syscall, waiting at most timeout for one.
func (s *Supervisor) Recv(timeout time.Duration) (Notif, error) {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return Notif{}, fmt.Errorf("no held syscall within %v", timeout)
		}
		fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) || n == 0 {
			continue
		}
		if err != nil {
			return Notif{}, fmt.Errorf("polling the seccomp listener: %w", err)
		}
		var nt Notif // RECV wants it zeroed
		if err := ioctl(s.fd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(&nt)); err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENOENT) {
				continue // the caller was gone before we took it
			}
			return Notif{}, fmt.Errorf("SECCOMP_IOCTL_NOTIF_RECV: %w", err)
		}
		return nt, nil
	}
}

// Answer ends the held syscall n with return value val (errno 0) or, for
// errno > 0, with that error.
func (s *Supervisor) Answer(n Notif, val int64, errno unix.Errno) error {
	r := notifResp{ID: n.ID, Val: val, Error: -int32(errno)}
	if err := ioctl(s.fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("SECCOMP_IOCTL_NOTIF_SEND for thread %d: %w", n.PID, err)
	}
	return nil
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}
