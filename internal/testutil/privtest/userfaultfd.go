package privtest

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// These mirror <linux/userfaultfd.h>; they are repeated here rather than
// imported so that privtest stays free of dependencies on the code it guards.
const (
	uffdAPI   = 0xAA
	uffdioAPI = 0xc018aa3f // _IOWR(0xAA, 0x3F, struct uffdio_api)
)

type uffdioAPIArg struct {
	API      uint64
	Features uint64
	Ioctls   uint64
}

// probeUserfaultfd creates and handshakes a userfaultfd without
// UFFD_USER_MODE_ONLY: that is the mode that needs privilege (or
// vm.unprivileged_userfaultfd=1), and the one the hang tests use.
func probeUserfaultfd() error {
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC, 0, 0)
	if errno == unix.EPERM {
		return fmt.Errorf("userfaultfd(O_CLOEXEC): %w (faults taken in the kernel need root, CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1)", errno)
	}
	if errno != 0 {
		return fmt.Errorf("userfaultfd(O_CLOEXEC): %w", errno)
	}
	defer unix.Close(int(fd))
	arg := uffdioAPIArg{API: uffdAPI}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, uffdioAPI, uintptr(unsafe.Pointer(&arg))); errno != 0 {
		return fmt.Errorf("ioctl(UFFDIO_API): %w", errno)
	}
	return nil
}
