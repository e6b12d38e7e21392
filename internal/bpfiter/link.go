// Package bpfiter links BPF task and task_file iterators limited to one
// process, which cilium/ebpf's link package has no option for.
package bpfiter

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Link links prog (an iter/task or iter/task_file program) as an
// iterator over the tasks of process pid if filter is set (union
// bpf_iter_link_info.task, Linux 6.1), else over every task of the host.
func Link(prog *ebpf.Program, pid int, filter bool) (*link.Iter, error) {
	if !filter {
		return linkIter(prog, nil)
	}
	return linkIter(prog, &taskInfo{pid: uint32(pid)})
}

// LinkTask links prog (an iter/task program) as an iterator that visits
// one task, tid, alone (Linux 6.1): a program that walks the task's
// thread list itself (Linux 6.7's open-coded iterator) runs once.
func LinkTask(prog *ebpf.Program, tid int) (*link.Iter, error) {
	return linkIter(prog, &taskInfo{tid: uint32(tid)})
}

// taskInfo is union bpf_iter_link_info's task member: one of its fields
// set filters the walk, none walks every task.
type taskInfo struct {
	tid, pid, pidFD uint32
}

func linkIter(prog *ebpf.Program, info *taskInfo) (*link.Iter, error) {
	var infoPtr uint64
	var infoLen uint32
	if info != nil {
		infoPtr, infoLen = uint64(uintptr(unsafe.Pointer(info))), uint32(unsafe.Sizeof(*info))
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
	runtime.KeepAlive(info)
	if errno != 0 {
		return nil, fmt.Errorf("creating iterator link: %w", errno)
	}
	l, err := link.NewFromFD(int(fd))
	if err != nil {
		return nil, fmt.Errorf("wrapping iterator link: %w", err)
	}
	it, ok := l.(*link.Iter)
	if !ok {
		l.Close()
		return nil, errors.New("kernel returned a link that is not an iterator")
	}
	return it, nil
}

// HasFilter reports whether the kernel can limit prog's iterator to one
// process: it links prog filtered on this process and lets the link go.
// Kernels before 6.1 reject the larger link info (E2BIG, or EINVAL).
func HasFilter(prog *ebpf.Program) (bool, error) {
	it, err := Link(prog, os.Getpid(), true)
	if errors.Is(err, unix.E2BIG) || errors.Is(err, unix.EINVAL) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("probing the iterator's pid filter: %w", err)
	}
	return true, it.Close()
}
