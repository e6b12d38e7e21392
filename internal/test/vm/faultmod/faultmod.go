// Package faultmod drives /dev/faultmod, the test kernel module built from
// faultmod.c in this directory, from a test binary running inside a VM of
// internal/test/vm. Each call reproduces one kernel bug on the calling
// thread: callers that mean to observe the hang from outside make it in a
// child process.
package faultmod

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DevicePath is where devtmpfs creates the module's misc device.
const DevicePath = "/dev/faultmod"

// The ioctl numbers of faultmod.h, in the generic Linux encoding (x86 and
// arm64): dir<<30 | size<<16 | magic<<8 | nr. faultmod_test.go checks them
// against the header.
const (
	IocMagic = 0xfa

	IoctlSleepD    = IocMagic<<8 | 1
	IoctlOopsMutex = IocMagic<<8 | 2
	IoctlLock      = IocMagic<<8 | 3
	IoctlSpin      = iocWrite<<30 | 4<<16 | IocMagic<<8 | 4 // _IOW(.., 4, __u32)
	IoctlRelease   = IocMagic<<8 | 5
	IoctlOops      = IocMagic<<8 | 8
	// IoctlSleepKillable is _IO(.., 9): FAULTMOD_SLEEP_KILLABLE.
	IoctlSleepKillable = IocMagic<<8 | 9

	IoctlHoldTaskStorage    = iocWrite<<30 | storageHoldSize<<16 | IocMagic<<8 | 6 // _IOW(.., 6, struct faultmod_storage_hold)
	IoctlReleaseTaskStorage = IocMagic<<8 | 7

	// StorageDepthMax is the deepest bpf_task_storage_busy a hold accepts.
	StorageDepthMax = 8

	// OopsConfirm is the argument IoctlOopsMutex and IoctlOops insist
	// on; any other value fails with EINVAL, which is how a test probes
	// for the ioctl.
	OopsConfirm = 0x0badc0de

	// SpinMaxSeconds is the longest Spin the module accepts.
	SpinMaxSeconds = 86400

	iocWrite = 1
)

// Device is an open /dev/faultmod.
type Device struct {
	f *os.File
}

// Open opens DevicePath; the module must be loaded.
//
// It opens with open(2) and os.NewFile rather than os.OpenFile: OpenFile
// registers a descriptor with the runtime's epoll, and epoll_ctl calls the
// device's poll hook, which takes the module's mutex. After an OopsMutex
// that would hang Open itself in D, inside epoll_ctl, instead of the
// poll(2) a test means to hang. A blocking descriptor given to NewFile is
// never registered.
func Open() (*Device, error) {
	fd, err := unix.Open(DevicePath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening faultmod device (is faultmod.ko loaded?): %w", err)
	}
	return &Device{f: os.NewFile(uintptr(fd), DevicePath)}, nil
}

// Close closes the device. A thread still inside one of its ioctls keeps
// the file open in the kernel until that ioctl returns.
func (d *Device) Close() error { return d.f.Close() }

// Fd returns the descriptor, which a test matches against the second
// field of /proc/PID/syscall.
func (d *Device) Fd() uintptr { return d.f.Fd() }

// SleepD sleeps in TASK_UNINTERRUPTIBLE until some caller's Release: the
// thread shows state D and SIGKILL does not end it.
func (d *Device) SleepD() error {
	_, err := d.Ioctl(IoctlSleepD, 0)
	return err
}

// SleepKillable sleeps in TASK_KILLABLE until some caller's Release: the
// thread shows state D, and SIGKILL ends it (the call then never returns
// to the caller, which dies).
func (d *Device) SleepKillable() error {
	_, err := d.Ioctl(IoctlSleepKillable, 0)
	return err
}

// Spin keeps the calling thread on the CPU inside the ioctl for seconds
// (at most SpinMaxSeconds), or until Release.
func (d *Device) Spin(seconds uint32) error {
	_, err := d.ioctl(IoctlSpin, 0, unsafe.Pointer(&seconds))
	return err
}

// OopsMutex takes the module's global mutex and oopses: the calling thread
// dies inside the ioctl, the mutex stays held, and every later Lock hangs
// in D. It taints the kernel; it returns only with an error.
func (d *Device) OopsMutex() error {
	_, err := d.Ioctl(IoctlOopsMutex, OopsConfirm)
	if err == nil {
		err = errors.New("FAULTMOD_OOPS_MUTEX returned: the module did not oops")
	}
	return err
}

// Lock takes and releases the module's global mutex: it returns at once,
// unless an OopsMutex left the mutex held.
func (d *Device) Lock() error {
	_, err := d.Ioctl(IoctlLock, 0)
	return err
}

// Poll makes one poll(2) (ppoll, as x/sys/unix does on every
// architecture) for POLLIN on the device, with a timeout in milliseconds,
// -1 for none. The device never reports an event: Poll returns 0 after
// the timeout, unless an OopsMutex left the module's mutex held, and then
// it never returns, in D. It retries on EINTR, as an event loop does.
func (d *Device) Poll(timeoutMs int) (n int, err error) {
	rc, err := d.f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("faultmod poll: %w", err)
	}
	if cerr := rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			// unix.Poll is a plain Syscall6: the runtime hands this
			// thread's P on while it blocks.
			n, err = unix.Poll(fds, timeoutMs)
			if !errors.Is(err, unix.EINTR) {
				return
			}
		}
	}); cerr != nil {
		return 0, fmt.Errorf("faultmod poll: %w", cerr)
	}
	if err != nil {
		return 0, fmt.Errorf("faultmod poll: %w", err)
	}
	return n, nil
}

// Release ends every SleepD, SleepKillable and Spin in progress and returns how many
// threads were in SleepD.
func (d *Device) Release() (sleepers int, err error) {
	n, err := d.Ioctl(IoctlRelease, 0)
	return int(n), err
}

// Ioctl issues cmd with an integer argument. It is exported for tests that
// probe the module with numbers or arguments it must refuse.
func (d *Device) Ioctl(cmd, arg uintptr) (uintptr, error) {
	return d.ioctl(cmd, arg, nil)
}

// ioctl passes ptr, when not nil, instead of arg: it stays an
// unsafe.Pointer until the syscall itself so the GC keeps it valid.
func (d *Device) ioctl(cmd, arg uintptr, ptr unsafe.Pointer) (uintptr, error) {
	rc, err := d.f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("faultmod ioctl %#x: %w", cmd, err)
	}
	var (
		ret   uintptr
		errno unix.Errno
	)
	// unix.Syscall, not RawSyscall: these ioctls block for good, and the
	// runtime must hand this thread's P to other goroutines meanwhile.
	if err := rc.Control(func(fd uintptr) {
		if ptr != nil {
			ret, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, cmd, uintptr(ptr))
		} else {
			ret, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, cmd, arg)
		}
	}); err != nil {
		return 0, fmt.Errorf("faultmod ioctl %#x: %w", cmd, err)
	}
	if errno != 0 {
		return 0, fmt.Errorf("faultmod ioctl %#x: %w", cmd, errno)
	}
	return ret, nil
}
