package tracker

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// attachTaskIter links the snapshot program as a task iterator limited to
// the threads of pid. cilium/ebpf has no option for the task filter
// (union bpf_iter_link_info.task, Linux 6.1), so the link is created by
// hand; without the filter every snapshot would walk every task on the
// host. Kernels before 6.1 reject the larger link info (E2BIG, or EINVAL);
// there the link is made without it, every snapshot walks every task, and
// the program's own tgid check keeps the result right.
// A pid of 0 (a cgroup) links without the filter: the program finds the
// cgroup's tasks among all of them.
func attachTaskIter(prog *ebpf.Program, pid int) (it *link.Iter, filtered bool, err error) {
	if pid == 0 {
		it, err = linkTaskIter(prog, 0, false)
		return it, false, err
	}
	it, err = linkTaskIter(prog, pid, true)
	if errors.Is(err, unix.E2BIG) || errors.Is(err, unix.EINVAL) {
		it, err = linkTaskIter(prog, pid, false)
		return it, false, err
	}
	return it, err == nil, err
}

func linkTaskIter(prog *ebpf.Program, pid int, filter bool) (*link.Iter, error) {
	info := struct {
		tid, pid, pidFD uint32
	}{pid: uint32(pid)}
	infoPtr, infoLen := uint64(uintptr(unsafe.Pointer(&info))), uint32(unsafe.Sizeof(info))
	if !filter {
		infoPtr, infoLen = 0, 0
	}
	attr := struct {
		progFD      uint32
		targetFD    uint32
		attachType  uint32
		flags       uint32
		iterInfo    uint64
		iterInfoLen uint32
		_           [36]byte
	}{
		progFD:      uint32(prog.FD()),
		attachType:  unix.BPF_TRACE_ITER,
		iterInfo:    infoPtr,
		iterInfoLen: infoLen,
	}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_LINK_CREATE, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(&info)
	if errno != 0 {
		return nil, fmt.Errorf("creating task iterator link: %w", errno)
	}
	l, err := link.NewFromFD(int(fd))
	if err != nil {
		return nil, fmt.Errorf("wrapping task iterator link: %w", err)
	}
	it, ok := l.(*link.Iter)
	if !ok {
		l.Close()
		return nil, errors.New("kernel returned a link that is not an iterator")
	}
	return it, nil
}
