package workload

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// From <linux/userfaultfd.h>; golang.org/x/sys/unix does not carry them.
const (
	uffdAPI                   = 0xAA
	uffdioAPI                 = 0xc018aa3f // _IOWR(0xAA, 0x3F, struct uffdio_api)
	uffdioRegister            = 0xc020aa00 // _IOWR(0xAA, 0x00, struct uffdio_register)
	uffdioCopy                = 0xc028aa03 // _IOWR(0xAA, 0x03, struct uffdio_copy)
	uffdioRegisterModeMissing = 1
)

type uffdioAPIArg struct{ API, Features, Ioctls uint64 }

type uffdioRange struct{ Start, Len uint64 }

type uffdioRegisterArg struct {
	Range  uffdioRange
	Mode   uint64
	Ioctls uint64
}

type uffdioCopyArg struct {
	Dst, Src, Len, Mode uint64
	Copy                int64
}

// uffdHang is a thread that faults on a page that a userfaultfd claims and
// nobody resolves: uffd-hang's read(2) from /dev/zero into it, or
// touch-uffd's plain load. The kernel parks it in handle_userfault until
// UFFDIO_COPY fills the page or a fatal signal comes.
type uffdHang struct {
	th   thread // a worker in read(2), or touch-uffd's raw thread
	uffd int
	zero int    // /dev/zero, the fd the read is stuck on
	page []byte // registered, one page or touch-uffd's PAGES
	next int    // the first page not filled yet
}

func (w *workload) uffdHang([]string) ([]any, error) {
	if w.uffd != nil {
		return nil, fmt.Errorf("thread %d already hangs: send uffd-release first", w.uffd.th.id())
	}
	h, err := newUffdHang(1)
	if err != nil {
		return nil, err
	}
	wk, err := startWorker(threadOpts{blockSignals: true}, func() (int, error) {
		return unix.Read(h.zero, h.page)
	})
	if err != nil {
		h.close()
		return nil, err
	}
	h.th = wk
	if err := waitAsleepIn(wk, unix.SYS_READ, h.zero); err != nil {
		h.release()
		return nil, err
	}
	w.uffd = h
	return []any{"tid", wk.tid, "fd", h.zero, "nr", unix.SYS_READ, "syscall", "read"}, nil
}

func (w *workload) uffdRelease([]string) ([]any, error) {
	h := w.uffd
	if h == nil {
		return nil, errors.New("no thread hangs: send uffd-hang first")
	}
	w.uffd = nil
	ret, err := h.release()
	if err != nil {
		return nil, err
	}
	return []any{"tid", h.th.id(), "ret", ret}, nil
}

// newUffdHang sets up the trap, pages long, but starts no thread. The
// userfaultfd is made without UFFD_USER_MODE_ONLY because the fault to
// catch happens inside the kernel (copy to user in read), which needs root
// or vm.unprivileged_userfaultfd=1.
func newUffdHang(pages int) (h *uffdHang, err error) {
	h = &uffdHang{uffd: -1, zero: -1}
	defer func() {
		if err != nil {
			h.close()
		}
	}()
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC, 0, 0)
	if errno != 0 {
		return nil, fmt.Errorf("userfaultfd(O_CLOEXEC): %w", errno)
	}
	h.uffd = int(fd)
	api := uffdioAPIArg{API: uffdAPI}
	if err := uffdIoctl(h.uffd, uffdioAPI, unsafe.Pointer(&api)); err != nil {
		return nil, fmt.Errorf("UFFDIO_API: %w", err)
	}
	h.page, err = unix.Mmap(-1, 0, pages*unix.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("mapping the page to trap: %w", err)
	}
	reg := uffdioRegisterArg{
		Range: uffdioRange{Start: uint64(uintptr(unsafe.Pointer(&h.page[0]))), Len: uint64(len(h.page))},
		Mode:  uffdioRegisterModeMissing,
	}
	if err := uffdIoctl(h.uffd, uffdioRegister, unsafe.Pointer(&reg)); err != nil {
		return nil, fmt.Errorf("UFFDIO_REGISTER: %w", err)
	}
	h.zero, err = unix.Open("/dev/zero", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /dev/zero: %w", err)
	}
	return h, nil
}

// release fills every missing page, which wakes the faulting thread, and
// waits for it to finish: its read to return, or its loads.
func (h *uffdHang) release() (int, error) {
	defer h.close()
	for h.next*unix.Getpagesize() < len(h.page) {
		if err := h.fill(); err != nil {
			return 0, err
		}
	}
	ret, err := h.th.await()
	if err != nil {
		return ret, fmt.Errorf("thread %d: %w", h.th.id(), err)
	}
	return ret, nil
}

// fill fills page next with zeroes, which wakes a thread faulting on it.
func (h *uffdHang) fill() error {
	ps := unix.Getpagesize()
	src, err := unix.Mmap(-1, 0, ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mapping the source page: %w", err)
	}
	defer unix.Munmap(src)
	cp := uffdioCopyArg{
		Dst: uint64(uintptr(unsafe.Pointer(&h.page[h.next*ps]))),
		Src: uint64(uintptr(unsafe.Pointer(&src[0]))),
		Len: uint64(ps),
	}
	// EEXIST means the page is already there, which wakes nobody: only
	// possible if something else touched it, and then await reports it.
	if err := uffdIoctl(h.uffd, uffdioCopy, unsafe.Pointer(&cp)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("UFFDIO_COPY of page %d for thread %d: %w", h.next, h.th.id(), err)
	}
	h.next++
	return nil
}

// close runs after the worker's read returned, except when it would not
// return: then closing the userfaultfd makes the fault fail with EFAULT,
// which at least ends the read.
func (h *uffdHang) close() {
	if h.zero >= 0 {
		unix.Close(h.zero)
	}
	if h.page != nil {
		unix.Munmap(h.page)
	}
	if h.uffd >= 0 {
		unix.Close(h.uffd)
	}
}

func uffdIoctl(fd int, req uintptr, arg unsafe.Pointer) error {
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}
