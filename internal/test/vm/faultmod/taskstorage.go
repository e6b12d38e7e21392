package faultmod

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"
)

// TaskStorageLock is the kernel's per-CPU BPF task storage lock
// (kernel/bpf/bpf_task_storage.c), a static per-CPU int.
const TaskStorageLock = "bpf_task_storage_busy"

// storageHold mirrors struct faultmod_storage_hold.
type storageHold struct {
	Offset uint64
	CPU    uint32
	Pad    uint32
}

// storageHoldSize is unsafe.Sizeof(storageHold{}), as an untyped constant
// for the ioctl number; faultmod_test.go checks the two agree.
const storageHoldSize = 16

// HoldTaskStorage holds the kernel's BPF task storage lock on cpu, as a
// task preempted inside it would, until ReleaseTaskStorage or Close:
// meanwhile bpf_task_storage_get() in a tracing program on that CPU
// returns NULL for a task without storage (every kernel since 6.2) and,
// on 6.1, for every task. The kernel must list the lock in /proc/kallsyms
// (CONFIG_KALLSYMS_ALL, as Debian's kernels are built).
func (d *Device) HoldTaskStorage(cpu int) error {
	off, err := KernelSymbol(TaskStorageLock)
	if err != nil {
		return err
	}
	h := storageHold{Offset: off, CPU: uint32(cpu)}
	if _, err := d.ioctl(IoctlHoldTaskStorage, 0, unsafe.Pointer(&h)); err != nil {
		return fmt.Errorf("holding %s on CPU %d: %w", TaskStorageLock, cpu, err)
	}
	return nil
}

// ReleaseTaskStorage ends this device's HoldTaskStorage; without one it
// does nothing.
func (d *Device) ReleaseTaskStorage() error {
	_, err := d.Ioctl(IoctlReleaseTaskStorage, 0)
	return err
}

// KernelSymbol returns the address of a kernel symbol from /proc/kallsyms;
// for a per-CPU variable, its per-CPU offset. It needs the addresses shown
// (root, kernel.kptr_restrict below 2).
func KernelSymbol(name string) (uint64, error) {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return 0, fmt.Errorf("looking up %s: %w", name, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "ADDRESS TYPE NAME [MODULE]"
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[2] != name || len(fields) > 3 {
			continue
		}
		addr, err := strconv.ParseUint(fields[0], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("address of %s in /proc/kallsyms: %w", name, err)
		}
		return addr, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading /proc/kallsyms: %w", err)
	}
	return 0, fmt.Errorf("%s is not in /proc/kallsyms (a kernel without CONFIG_KALLSYMS_ALL, or without that lock)", name)
}
