package workload

import (
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// alloc maps MIB mebibytes of anonymous memory and touches every page, so
// that the process holds them resident: a large address space whose
// teardown at exit takes real time (for --kill-grace).
func (w *workload) alloc(args []string) ([]any, error) {
	mib, err := strconv.Atoi(args[0])
	if err != nil || mib <= 0 {
		return nil, fmt.Errorf("alloc: want a positive size in MiB, got %q", args[0])
	}
	mem, err := unix.Mmap(-1, 0, mib<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("alloc: %w", err)
	}
	page := unix.Getpagesize()
	for i := 0; i < len(mem); i += page {
		mem[i] = 1
	}
	w.held = append(w.held, mem)
	return []any{"mib", mib}, nil
}
